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
# A node's values of the topology labels the policies name, in the snapshot's order ("" where it has none).
Domain = tuple[str, ...]
Domains = tuple[tuple[Domain, tuple[int, ...]], ...]  # free blocks (ascending) per domain


class _Shaped(Protocol):
    @property
    def key(self) -> TargetKey: ...

    @property
    def blocks(self) -> tuple[int, ...]: ...

    @property
    def domain_labels(self) -> tuple[str, ...]: ...

    @property
    def domains(self) -> Domains: ...


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


def take(
    blocks: list[int], pod_gpus: int, pods: int = 1, distinct: bool = False, taken: list[int] | None = None
) -> bool:
    """Claim ``pods`` pods of ``pod_gpus`` GPUs on ``blocks`` (sorted ascending, changed in place), best fit each:
    the smallest block that holds the pod, so large blocks stay whole for large pods. ``distinct``: a gang, one
    pod per node (the smallest ``pods`` blocks that hold one). False (and nothing claimed) when they do not all
    fit. ``taken`` collects the free GPUs of each node a pod went to, as they were before."""
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
        if taken is not None:
            taken += chosen
        return True
    if pods > 1 and pods_that_fit(blocks, pod_gpus) < pods:
        return False
    for _ in range(pods):
        at = bisect.bisect_left(blocks, pod_gpus)
        if at == len(blocks):
            return False  # only a single pod gets here unchecked: nothing was claimed
        block = blocks.pop(at)
        bisect.insort(blocks, block - pod_gpus)
        if taken is not None:
            taken.append(block)
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


def describe_block_shortfall(
    parts: Mapping[Domain, Sequence[int]], at: int, label: str, pod_gpus: int, pods: int
) -> str:
    """Why a gang fits no single topology block: "have no rack with 3 nodes of 8 free GPUs (the most in one: 2)"."""
    most = max(_holding_by_value(parts, at, pod_gpus).values(), default=0)
    return f"have no {label} block with {pods} nodes of {pod_gpus} free GPUs (the most in one: {most})"


def _holding_by_value(parts: Mapping[Domain, Sequence[int]], at: int, pod_gpus: int) -> dict[str, int]:
    """Nodes holding a pod of ``pod_gpus`` per value of the label at ``at`` (nodes without the label left out)."""
    found: dict[str, int] = {}
    for domain, blocks in parts.items():
        if domain[at]:
            found[domain[at]] = found.get(domain[at], 0) + holding(blocks, pod_gpus)
    return found


class NodeBook:
    """Free blocks per node-shaped target as a round claims them; targets not touched read the snapshot's.

    A target whose nodes carry topology labels a policy names is also kept per domain (its values of those
    labels), so a gang can be held to one block (a rack, an NVLink domain) and every claim lands in a domain."""

    def __init__(
        self,
        blocks: Mapping[TargetKey, Sequence[int]],
        domains: Mapping[TargetKey, tuple[tuple[str, ...], Domains]] | None = None,
    ) -> None:
        self._snapshot = blocks
        self._claimed: dict[TargetKey, list[int]] = {}
        self._domains = domains or {}
        self._parts: dict[TargetKey, dict[Domain, list[int]]] = {}
        # The free GPUs of the nodes the last claim went to, as they were (what explain shows of a decision).
        self.last_taken: list[int] = []

    @classmethod
    def of(cls, snapshot: HasTargets) -> NodeBook | None:
        """The book of a snapshot's node-shaped targets; None when it has none (every pool one bucket)."""
        shaped = {t.key: t.blocks for t in snapshot.targets if t.blocks}
        domains = {t.key: (t.domain_labels, t.domains) for t in snapshot.targets if t.blocks and t.domains}
        return cls(shaped, domains) if shaped else None

    @property
    def shaped(self) -> Mapping[TargetKey, Sequence[int]]:
        """The targets whose node shapes are known (the others are one bucket of GPUs)."""
        return self._snapshot

    def _parts_of(self, key: TargetKey) -> dict[Domain, list[int]]:
        parts = self._parts.get(key)
        if parts is None:
            parts = self._parts[key] = {domain: sorted(blocks) for domain, blocks in self._domains[key][1]}
        return parts

    def fits_block(self, key: TargetKey, label: str, pod_gpus: int, pods: int) -> bool:
        """Whether a gang of ``pods`` workers fits nodes of ``key`` that share one value of ``label`` (always,
        without node shapes: the pool is one bucket)."""
        if key not in self._snapshot:
            return True
        if key not in self._domains or label not in self._domains[key][0]:
            return False  # no node of it carries the label
        at = self._domains[key][0].index(label)
        return any(n >= pods for n in _holding_by_value(self._parts_of(key), at, pod_gpus).values())

    def block_shortfall(self, key: TargetKey, label: str, pod_gpus: int, pods: int) -> str:
        if key not in self._domains or label not in self._domains[key][0]:
            return f"have no node labelled {label} (the policy holds a gang to one {label})"
        at = self._domains[key][0].index(label)
        return describe_block_shortfall(self._parts_of(key), at, label, pod_gpus, pods)

    def take_block(self, key: TargetKey, label: str, pod_gpus: int, pods: int) -> str | None:
        """Claim a gang's ``pods`` nodes in one value of ``label``: the block with the fewest nodes that hold a
        worker (big blocks stay whole for big gangs), the smallest such nodes in it. The value, or None."""
        if key not in self._domains or label not in self._domains[key][0]:
            return None
        at = self._domains[key][0].index(label)
        parts = self._parts_of(key)
        counts = _holding_by_value(parts, at, pod_gpus)
        fitting = sorted((n, value) for value, n in counts.items() if n >= pods)
        if not fitting:
            return None
        value = fitting[0][1]
        self.last_taken = []
        self._claim_in(key, [d for d in parts if d[at] == value], pod_gpus, pods)
        return value

    def _claim_in(self, key: TargetKey, domains: Sequence[Domain], pod_gpus: int, pods: int) -> None:
        """One pod per node on the smallest blocks of ``domains`` that hold one (checked by the caller)."""
        parts = self._parts_of(key)
        candidates = sorted((block, domain) for domain in domains for block in parts[domain] if block >= pod_gpus)[
            :pods
        ]
        self.last_taken += [block for block, _ in candidates]
        for block, domain in candidates:
            blocks = parts[domain]
            blocks.pop(bisect.bisect_left(blocks, block))
            bisect.insort(blocks, block - pod_gpus)
        self._claimed[key] = sorted(block for blocks in parts.values() for block in blocks)

    def _take_parts(self, key: TargetKey, pod_gpus: int, pods: int, distinct: bool) -> bool:
        """take() on a target kept per domain: best fit across its domains, the flat view rebuilt from them."""
        parts = self._parts_of(key)
        every = [block for blocks in parts.values() for block in blocks]
        enough = holding(sorted(every), pod_gpus) >= pods if distinct else pods_that_fit(every, pod_gpus) >= pods
        if not enough:
            return False
        if distinct and pods > 1:
            self._claim_in(key, list(parts), pod_gpus, pods)
            return True
        for _ in range(pods):
            self._claim_in(key, list(parts), pod_gpus, 1)
        return True

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
        self.last_taken = []
        if key not in self._snapshot or pod_gpus <= 0 or pods <= 0:
            return True
        if key in self._domains:
            return self._take_parts(key, pod_gpus, pods, distinct)
        blocks = self._claimed.setdefault(key, sorted(self._snapshot[key]))
        return take(blocks, pod_gpus, pods, distinct, self.last_taken)


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


def reserve_domains(
    labels: tuple[str, ...], domains: Domains, pods: Mapping[PodGroup, int]
) -> tuple[tuple[int, ...], Domains]:
    """reserve() for a target kept per topology domain: (the free blocks, and per domain), pods not bound yet
    counted where they would land (best fit across the domains, a gang on distinct nodes)."""
    key = ("", "")
    flat = tuple(sorted(block for _, blocks in domains for block in blocks))
    book = NodeBook({key: flat}, {key: (labels, domains)})
    parts = book._parts_of(key)
    for size, width in sorted(pods, reverse=True):
        for _ in range(pods[size, width]):
            if book.take(key, size, width, distinct=width > 1):
                continue
            for _pod in range(width):  # as the pool's free total counts it: taken whole from the largest
                if not book.take(key, size, 1):
                    largest = max(parts, key=lambda d: parts[d][-1] if parts[d] else -1)
                    if parts[largest]:
                        parts[largest][-1] = max(0, parts[largest][-1] - size)
                        parts[largest].sort()
    return (
        tuple(sorted(block for blocks in parts.values() for block in blocks)),
        tuple((domain, tuple(blocks)) for domain, blocks in sorted(parts.items())),
    )


def packs(blocks: Mapping[TargetKey, Sequence[int]], placed: Iterable[tuple[TargetKey, int, int, bool]]) -> bool:
    """Whether every (target, pod GPUs, pods, gang) placed fits the targets' free blocks together, in the order
    given."""
    book = NodeBook(blocks)
    return all(book.take(key, pod_gpus, pods, gang) for key, pod_gpus, pods, gang in placed)
