"""Capacity the operator has committed to its own children, until their pods hold it themselves.

A pool's free GPUs come from Nodes minus the requests of bound, non-terminal pods. A child the operator
has just created has no pods yet, or pods the scheduler has not bound: for seconds, or minutes on a busy
cluster, they claim nothing. So each child in the ledger holds its GPUs from the moment it is created
until its pods are bound (from then on they are counted as pods), it finishes or it is deleted; a child
that cannot be created is released at once. The ledger is rebuilt from the children that exist after a
restart (each carries the workload uid and its target), so successive rounds, and a restart between
them, never hand out the same GPUs twice. Kueue accounts admitted workloads, not pods, for the same reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlplacement.api.constants import ANNOTATION_TARGET, LABEL_WORKLOAD_UID
from mlplacement.core.kinds import KINDS
from mlplacement.core.nodes import PodGroup
from mlplacement.core.snapshot import TERMINAL_POD_PHASES, pod_gpu_requests

TargetKey = tuple[str, str]
_FINISHED_JOB_CONDITIONS = frozenset({"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"})


@dataclass(frozen=True, slots=True)
class Commitment:
    """``gpus`` promised to one workload's child on ``target`` (kind, name), in pods of ``pod_gpus`` each."""

    target: TargetKey
    gpus: int
    pod_gpus: int = 0  # 0: one pod holding all of them
    gang: bool = False  # a distributed training: its pods on distinct nodes


def workload_uid(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_WORKLOAD_UID) or "")


def job_finished(job: Mapping[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in _FINISHED_JOB_CONDITIONS and c.get("status") == "True" for c in conditions)


_GPU_KINDS = frozenset(kind.value for kind, facts in KINDS.items() if facts.claims_gpus)


def child_commitment(child: Mapping[str, Any]) -> Commitment | None:
    """What a live child holds on its target (a GPU pool, or an edge cluster): its pod template's GPUs times its
    pods; None if it holds nothing (finished, no GPUs, or a target whose capacity is not counted in GPUs)."""
    annotations = (child.get("metadata") or {}).get("annotations") or {}
    kind, _, name = str(annotations.get(ANNOTATION_TARGET) or "").partition("/")
    if kind not in _GPU_KINDS or not name:
        return None
    spec = child.get("spec") or {}
    gang = False
    if child.get("kind") == "Job":
        if job_finished(child):
            return None
        pods = spec.get("parallelism", 1)
        # The operator makes an Indexed Job of several pods for a distributed training only.
        gang = spec.get("completionMode") == "Indexed" and int(pods or 1) > 1
    elif child.get("kind") == "Deployment":
        pods = spec.get("replicas", 1)
    else:
        return None
    per_pod = pod_gpu_requests(spec.get("template") or {})
    gpus = per_pod * int(pods if pods is not None else 1)
    return Commitment((kind, name), gpus, per_pod, gang) if gpus > 0 else None


def pod_bound_gpus(pod: Mapping[str, Any]) -> tuple[str, int] | None:
    """(workload uid, GPUs) of a bound, non-terminal pod of ours: what it holds of its workload's commitment."""
    uid = workload_uid(pod)
    if not uid or not (pod.get("spec") or {}).get("nodeName"):
        return None
    if (pod.get("status") or {}).get("phase") in TERMINAL_POD_PHASES:
        return None
    return uid, pod_gpu_requests(pod)


def bound_gpus_by_workload(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """GPUs of bound, non-terminal pods per workload uid: the part of a commitment the pods now hold."""
    bound: dict[str, int] = {}
    for pod in pods:
        holds = pod_bound_gpus(pod)
        if holds is not None:
            bound[holds[0]] = bound.get(holds[0], 0) + holds[1]
    return bound


_Part = tuple[TargetKey, int, PodGroup, int]  # (target, GPUs still held, pod group, pods of that group)


class CapacityLedger:
    """Commitments by workload uid (one child set per workload, so a new target replaces the old claim).

    What is still held (each commitment less what its bound pods hold) is kept summed per target as commitments
    and bound pods change, so a snapshot reads it without a pass over every workload ever placed."""

    def __init__(self) -> None:
        self._by_uid: dict[str, Commitment] = {}
        self._bound: dict[str, int] = {}  # uid -> GPUs its bound pods hold, here and on edges
        self._parts: dict[str, _Part] = {}  # uid -> what it adds to the sums below
        self._held: dict[TargetKey, int] = {}
        self._waiting: dict[TargetKey, Counter[PodGroup]] = {}
        # uid -> target given up on while its child still exists (pods unschedulable there): the child's
        # watch events must not claim that target again until the workload is placed anew.
        self._given_up: dict[str, TargetKey] = {}

    def __len__(self) -> int:
        return len(self._by_uid)

    def get(self, uid: str) -> Commitment | None:
        return self._by_uid.get(uid)

    def commit(self, uid: str, commitment: Commitment | None) -> None:
        """The operator has just created or replaced ``uid``'s child (None: the child holds nothing)."""
        self._given_up.pop(uid, None)
        self._record(uid, commitment)

    def release(self, uid: str, give_up_target: bool = False) -> bool:
        """Free what ``uid`` holds; ``give_up_target`` keeps it freed while the old child lingers there."""
        released = self._by_uid.get(uid)
        self._record(uid, None)
        if give_up_target and released is not None:
            self._given_up[uid] = released.target
        return released is not None

    def set_bound(self, uid: str, gpus: int) -> None:
        """The GPUs ``uid``'s bound pods hold now (0: none bound, or none left)."""
        if gpus:
            self._bound[uid] = gpus
        else:
            self._bound.pop(uid, None)
        self._sum(uid)

    def observe_child(self, child: Mapping[str, Any], deleted: bool) -> None:
        """Follow a child seen on the watch: a finished or deleted child releases, a live one (re)commits."""
        uid = workload_uid(child)
        if not uid:
            return
        if deleted:
            self._given_up.pop(uid, None)
            self._record(uid, None)
            return
        commitment = child_commitment(child)
        if commitment is not None and self._given_up.get(uid) == commitment.target:
            return
        self._record(uid, commitment)

    def _record(self, uid: str, commitment: Commitment | None) -> None:
        if commitment is None:
            self._by_uid.pop(uid, None)
        else:
            self._by_uid[uid] = commitment
        self._sum(uid)

    def _sum(self, uid: str) -> None:
        """Take ``uid``'s old part out of the sums and put its current one in."""
        old = self._parts.pop(uid, None)
        if old is not None:
            self._add(old, -1)
        commitment = self._by_uid.get(uid)
        if commitment is None:
            return
        left = commitment.gpus - self._bound.get(uid, 0)
        if left <= 0:
            return
        size = commitment.pod_gpus or commitment.gpus
        unbound = -(-left // size)
        part = (
            (commitment.target, left, (size, unbound), 1)
            if commitment.gang and unbound > 1
            else (commitment.target, left, (size, 1), unbound)
        )
        self._parts[uid] = part
        self._add(part, 1)

    def _add(self, part: _Part, sign: int) -> None:
        target, left, group, count = part
        held = self._held[target] = self._held.get(target, 0) + sign * left
        waiting = self._waiting.setdefault(target, Counter())
        waiting[group] += sign * count
        if waiting[group] <= 0:
            del waiting[group]
        if held <= 0:
            del self._held[target]
            del self._waiting[target]

    def outstanding(self, bound_by_uid: Mapping[str, int] | None = None) -> dict[TargetKey, int]:
        """GPUs still held per target: each commitment minus what its bound pods hold."""
        return self.outstanding_pods(bound_by_uid)[0]

    def outstanding_pods(
        self, bound_by_uid: Mapping[str, int] | None = None
    ) -> tuple[dict[TargetKey, int], dict[TargetKey, Counter[PodGroup]]]:
        """(GPUs still held per target, and per target the pods not bound yet: (GPUs per pod, width) -> how many,
        width being a gang's pods still unbound): the snapshot's free blocks lose those pods where they would
        land (core.nodes.reserve). ``bound_by_uid``, when given, replaces every bound count first."""
        if bound_by_uid is not None:
            for uid in set(self._bound) - set(bound_by_uid):
                self.set_bound(uid, 0)
            for uid, gpus in bound_by_uid.items():
                self.set_bound(uid, gpus)
        return dict(self._held), {target: Counter(groups) for target, groups in self._waiting.items()}
