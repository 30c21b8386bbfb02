"""A pool's GPUs as the scheduler sees them: per node, since a pod's GPUs must all sit on one node.

A pool target carries its free blocks (free GPUs per schedulable node, largest first). A round claims on a
``NodeBook``, so two workloads of one round are never counted on the same node's GPUs, and the snapshot takes
what the ledger reserves for pods not bound yet the same way (best fit: the smallest block that holds the pod,
as kube-scheduler's MostAllocated scoring and a packing operator would), so successive rounds agree too.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

TargetKey = tuple[str, str]


class _Shaped(Protocol):
    @property
    def key(self) -> TargetKey: ...

    @property
    def blocks(self) -> tuple[int, ...]: ...


class HasTargets(Protocol):
    @property
    def targets(self) -> tuple[_Shaped, ...]: ...


def pods_that_fit(blocks: Sequence[int], pod_gpus: int) -> int:
    """How many pods of ``pod_gpus`` GPUs the blocks hold (pods of one workload may share a node)."""
    if pod_gpus <= 0:
        return len(blocks) and 1_000_000
    return sum(block // pod_gpus for block in blocks)


def holding(blocks: Sequence[int], pod_gpus: int) -> int:
    """How many of the blocks (ascending) hold a pod of ``pod_gpus`` GPUs: the nodes a gang's workers can take."""
    return len(blocks) - bisect.bisect_left(blocks, pod_gpus)


def take(blocks: list[int], pod_gpus: int, pods: int = 1, distinct: bool = False) -> bool:
    """Claim ``pods`` pods of ``pod_gpus`` GPUs on ``blocks`` (sorted ascending, changed in place), best fit each:
    the smallest block that holds the pod, so large blocks stay whole for large pods. ``distinct``: a gang, one
    pod per node (the smallest ``pods`` blocks that hold one). False (and nothing claimed) when they do not all
    fit."""
    if pod_gpus <= 0 or pods <= 0:
        return True
    if distinct and pods > 1:
        at = bisect.bisect_left(blocks, pod_gpus)
        if len(blocks) - at < pods:
            return False
        chosen = blocks[at : at + pods]
        del blocks[at : at + pods]
        for block in chosen:
            bisect.insort(blocks, block - pod_gpus)
        return True
    if pods > 1 and pods_that_fit(blocks, pod_gpus) < pods:
        return False
    for _ in range(pods):
        at = bisect.bisect_left(blocks, pod_gpus)
        if at == len(blocks):
            return False  # only a single pod gets here unchecked: nothing was claimed
        left = blocks.pop(at) - pod_gpus
        bisect.insort(blocks, left)
    return True


def describe_shortfall(blocks: Sequence[int], pod_gpus: int, pods: int, nodes: int, distinct: bool = False) -> str:
    """Why the pods do not fit, after a count of targets: "have no node with 4 free GPUs (0/4 nodes, largest
    free block: 2)"."""
    largest = max(blocks, default=0)
    able = sum(1 for block in blocks if block >= pod_gpus)
    if pods == 1:
        return f"have no node with {pod_gpus} free GPUs ({able}/{nodes} nodes, largest free block: {largest})"
    if distinct:
        return (
            f"have {able} of the {pods} nodes with {pod_gpus} free GPUs a {pods}-worker gang needs "
            f"({able}/{nodes} nodes, largest free block: {largest})"
        )
    fit = pods_that_fit(blocks, pod_gpus)
    return f"hold {fit}/{pods} pods of {pod_gpus} GPUs on their nodes (largest free block: {largest})"


class NodeBook:
    """Free blocks per node-shaped target as a round claims them; targets not touched read the snapshot's."""

    def __init__(self, blocks: Mapping[TargetKey, Sequence[int]]) -> None:
        self._snapshot = blocks
        self._claimed: dict[TargetKey, list[int]] = {}

    @classmethod
    def of(cls, snapshot: HasTargets) -> NodeBook | None:
        """The book of a snapshot's node-shaped targets; None when it has none (every pool one bucket)."""
        shaped = {t.key: t.blocks for t in snapshot.targets if t.blocks}
        return cls(shaped) if shaped else None

    def blocks(self, key: TargetKey) -> Sequence[int]:
        """Free GPUs per node of ``key``, smallest first ([] for a target without node shapes)."""
        found = self._claimed.get(key)
        return found if found is not None else self._snapshot.get(key, ())

    def fits(self, key: TargetKey, pod_gpus: int, pods: int, distinct: bool = False) -> bool:
        """Whether ``pods`` pods of ``pod_gpus`` GPUs fit on the nodes of ``key``, on distinct nodes for a gang
        (always, without node shapes: the pool is one bucket and the capacity check decides)."""
        blocks: Sequence[int] | None = self._claimed.get(key)
        if blocks is None:
            blocks = self._snapshot.get(key)
            if blocks is None:
                return True
        if pods == 1:
            return bool(blocks) and blocks[-1] >= pod_gpus  # smallest first: the last is the largest
        if distinct:
            return holding(blocks, pod_gpus) >= pods
        return pods_that_fit(blocks, pod_gpus) >= pods

    def shortfall(self, key: TargetKey, pod_gpus: int, pods: int, distinct: bool = False) -> str:
        """Why they do not fit, after a count of targets (see describe_shortfall)."""
        blocks = self.blocks(key)
        return describe_shortfall(blocks, pod_gpus, pods, len(blocks), distinct)

    def take(self, key: TargetKey, pod_gpus: int, pods: int, distinct: bool = False) -> bool:
        if key not in self._snapshot:
            return True
        blocks = self._claimed.setdefault(key, sorted(self._snapshot[key]))
        return take(blocks, pod_gpus, pods, distinct)


PodGroup = tuple[int, int]  # (GPUs per pod, width): width 1 for pods that may share nodes, n for a gang of n


def reserve(blocks: Iterable[int], pods: Mapping[PodGroup, int]) -> list[int]:
    """Free blocks (ascending) once pods not bound yet ((GPUs per pod, width) -> how many groups) are counted
    where they would land, largest pods first, a gang's pods on distinct nodes; a pod no block holds takes from
    the largest what it can (as the pool's free total counts it whole). Pods of one GPU, most of them, go in one
    pass over the blocks."""
    free = sorted(blocks)
    for size, width in sorted(pods, reverse=True):
        count = pods[size, width]
        if width > 1:
            for _ in range(count):
                if not take(free, size, width, distinct=True):
                    for _pod in range(width):
                        if not take(free, size) and free:
                            free[-1] = max(0, free[-1] - size)
                            free.sort()
            continue
        if size == 1:
            for index, block in enumerate(free):  # smallest first: best fit for a 1-GPU pod
                used = min(block, count)
                free[index] -= used
                count -= used
                if not count:
                    break
            free.sort()
            continue
        for _ in range(count):
            if not take(free, size) and free:
                free[-1] = max(0, free[-1] - size)
                free.sort()
    return free


def packs(blocks: Mapping[TargetKey, Sequence[int]], placed: Iterable[tuple[TargetKey, int, int, bool]]) -> bool:
    """Whether every (target, pod GPUs, pods, gang) placed fits the targets' free blocks together, in the order
    given."""
    book = NodeBook(blocks)
    return all(book.take(key, pod_gpus, pods, gang) for key, pod_gpus, pods, gang in placed)
