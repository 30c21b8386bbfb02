"""The queue as the next round would take it: position, why each waits, its team's usage, what would make it fit,
and when it is expected to start.

Position is the order `decide_many` considers pending workloads in (priority plus deadline urgency, then the
team with the smallest share, then age), read from the engine itself rather than restated here. The ETA replays
the running workloads' expected ends through the same engine: at each end, what it frees is free, and the
waiting work is decided again in queue order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from mlplacement.api.constants import ACTIVE_PHASES, Phase
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import MLWorkload, TargetKind
from mlplacement.core.counterfactual import Counterfactual, counterfactuals
from mlplacement.core.placement import Decision, PlacementRequest, decide_many, request_from_workload
from mlplacement.core.scarcity import QuotaBook, Running, running_from
from mlplacement.core.snapshot import Snapshot
from mlplacement.core.whatif import LiveState

MAX_COUNTERFACTUAL_ENTRIES = 20  # waiting workloads, from the head of the queue, that get counterfactuals
MAX_ETA_STEPS = 24  # expected ends replayed; later ones are beyond what an estimate is worth


@dataclass(frozen=True)
class Ending:
    """A running workload and when it is expected to end (None: nothing says)."""

    running: Running
    ends: datetime | None
    basis: str = ""  # "expectedGPUHours 12 on 8 x A100", "maxRuntimeMinutes 90"


class RuntimeBook:
    """Observed runtimes of finished runs, to estimate a running workload's end when it states no work: by
    (namespace, type, GPUs), else by (namespace, type); the median of the runs seen, with how many."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, ...], list[float]] = {}

    @staticmethod
    def _keys(request: PlacementRequest) -> tuple[tuple[str, ...], tuple[str, ...]]:
        namespace = request.key.partition("/")[0]
        return (namespace, request.type.value, str(request.gpus_needed)), (namespace, request.type.value)

    def observe(self, request: PlacementRequest, seconds: float) -> None:
        for key in self._keys(request):
            self._runs.setdefault(key, []).append(seconds)

    def estimate(self, request: PlacementRequest) -> tuple[float, str] | None:
        """(seconds, basis) or None when no similar run has finished."""
        for key in self._keys(request):
            runs = self._runs.get(key)
            if runs:
                ordered = sorted(runs)
                median = ordered[len(ordered) // 2]
                what = f"{key[1]} runs of {key[0]}" + (f" with {key[2]} GPUs" if len(key) > 2 else "")
                return median, f"{median / 3600:.1f} h, the median of {len(runs)} earlier {what}"
        return None


@dataclass(frozen=True)
class Eta:
    at: datetime | None  # None: no estimate
    basis: str  # "when team-a/train-7 is expected to end" / why there is none


@dataclass(frozen=True)
class QueueEntry:
    position: int  # 1: the first the next round decides
    key: str
    priority: int
    team: str
    waiting_seconds: float | None
    decision: Decision
    quota: str  # "team-a uses 12/16 GPUs" or "team-a uses 12 GPUs (no quota)"
    fits_if: tuple[Counterfactual, ...] = ()
    eta: Eta | None = None

    @property
    def placeable(self) -> bool:
        """The next round would place it now (it waits only for that round)."""
        return self.decision.chosen is not None


def build_queue(
    pending: Sequence[PlacementRequest],
    policies: Mapping[str | None, PlacementPolicySpec],
    snapshot: Snapshot,
    running: Sequence[Ending] = (),
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    waiting_since: Mapping[str, datetime] | None = None,
    with_counterfactuals: bool = True,
) -> list[QueueEntry]:
    """Every pending workload in the order the next round takes them, with why each waits, what would make it
    fit now (the first MAX_COUNTERFACTUAL_ENTRIES waiting ones) and when it is expected to start."""
    holding = [e.running for e in running]
    decisions = decide_many(pending, policies, snapshot, running=holding, namespace_labels=namespace_labels)
    etas = estimate_starts(pending, policies, snapshot, running, namespace_labels, decisions)
    since = waiting_since or {}
    entries = []
    explained = 0
    total = sum(t.gpus_total or t.capacity for t in snapshot.targets)
    books: dict[int, QuotaBook] = {}  # one per policy: a book counts every running workload once
    for position, decision in enumerate(decisions, start=1):
        request = decision.request
        policy = policies.get(request.policy, policies.get(None, PlacementPolicySpec()))
        book = books.get(id(policy))
        if book is None:
            book = books[id(policy)] = QuotaBook(policy.quotas, namespace_labels, holding, total)
        namespace = request.key.partition("/")[0]
        fits: tuple[Counterfactual, ...] = ()
        if with_counterfactuals and decision.chosen is None and explained < MAX_COUNTERFACTUAL_ENTRIES:
            explained += 1
            fits = tuple(counterfactuals(request, policy, snapshot, holding, decision))
        began = since.get(request.key) or request.created
        entries.append(
            QueueEntry(
                position=position,
                key=request.key,
                priority=request.priority,
                team=book.team(namespace),
                waiting_seconds=(snapshot.now - began).total_seconds() if began is not None else None,
                decision=decision,
                quota=usage_line(book, namespace),
                fits_if=fits,
                eta=etas.get(request.key),
            )
        )
    return entries


def usage_line(book: QuotaBook, namespace: str) -> str:
    """What the namespace's team uses against its quota: 'team-a uses 12/16 GPUs'."""
    team = book.team(namespace)
    usage = book.usage.get(team)
    gpus = usage.gpus if usage is not None else 0
    quota = book.quotas.get(team)
    if quota is None or quota.nominal.gpus is None:
        return f"{team} uses {gpus} GPUs (no GPU quota)"
    return f"{team} uses {gpus}/{quota.nominal.gpus:g} GPUs"


def estimate_starts(
    pending: Sequence[PlacementRequest],
    policies: Mapping[str | None, PlacementPolicySpec],
    snapshot: Snapshot,
    running: Sequence[Ending],
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    decisions: Sequence[Decision] | None = None,
    wanted: set[str] | None = None,
) -> dict[str, Eta]:
    """When each pending workload is expected to start: now if the next round places it; else at the first
    expected end of running work after which the engine places it, freed capacity and all. Work placed in the
    replay holds its target until its own expected end (when known). With ``wanted``, the replay stops once
    those have an estimate (the others may then have none)."""
    holding = [e.running for e in running]
    if decisions is None:
        decisions = decide_many(pending, policies, snapshot, running=holding, namespace_labels=namespace_labels)
    etas: dict[str, Eta] = {}
    waiting: list[PlacementRequest] = []
    active = list(running)
    free = {t.key: t.capacity for t in snapshot.targets}
    for decision in decisions:
        if decision.chosen is not None:
            etas[decision.request.key] = Eta(snapshot.now, "placed by the next round")
            target = decision.chosen.target
            free[target.key] = free.get(target.key, 0) - _claim(decision)
            active.append(_ending_of(decision, snapshot.now))
        else:
            waiting.append(decision.request)
    unknown = sum(1 for e in running if e.ends is None)
    steps = 0
    while waiting and steps < MAX_ETA_STEPS:
        if wanted is not None and wanted <= etas.keys():
            break
        upcoming = sorted((e for e in active if e.ends is not None), key=lambda e: (e.ends, e.running.key))
        if not upcoming:
            break
        moment = upcoming[0].ends
        assert moment is not None
        ended = [e for e in upcoming if e.ends == moment]
        steps += 1
        for ending in ended:
            active.remove(ending)
            held = ending.running.target
            if held in free:
                free[held] += ending.running.claim
        at = max(moment, snapshot.now)
        targets = tuple(dataclasses.replace(t, capacity=max(0, free[t.key])) for t in snapshot.targets)
        later = dataclasses.replace(snapshot, targets=targets, now=at)
        decided = decide_many(
            waiting,
            policies,
            later,
            running=[e.running for e in active],
            namespace_labels=namespace_labels,
            rebalance_batch=False,
        )
        still = []
        names = ", ".join(e.running.key for e in ended[:2]) + (f" and {len(ended) - 2} more" if len(ended) > 2 else "")
        for decision in decided:
            if decision.chosen is None:
                still.append(decision.request)
                continue
            etas[decision.request.key] = Eta(at, f"when {names} {'is' if len(ended) == 1 else 'are'} expected to end")
            free[decision.chosen.target.key] -= _claim(decision)
            active.append(_ending_of(decision, at))
        waiting = still
    for request in waiting:
        why = f"no estimate: {unknown} running workload{'s' if unknown != 1 else ''} without a runtime"
        etas[request.key] = Eta(None, why if unknown else "no estimate: nothing running is expected to end for it")
    return etas


def _claim(decision: Decision) -> int:
    from mlplacement.core.placement.engine import claim_amount

    assert decision.chosen is not None
    return claim_amount(decision.request, decision.chosen.target)


def _ending_of(decision: Decision, start: datetime) -> Ending:
    """A workload the replay places, as running work that ends after its expected runtime (when known)."""
    from mlplacement.core.placement.engine import target_product

    assert decision.chosen is not None
    chosen = decision.chosen
    request = decision.request
    running = Running(
        key=request.key,
        namespace=request.key.partition("/")[0],
        priority=request.priority,
        target=chosen.target.key,
        claim=_claim(decision),
        gpus=request.gpus_needed,
        product=target_product(chosen.target),
        hourly_usd=chosen.hourly_cost_usd,
        started=start.timestamp(),
        preemptible=request.preemptible,
    )
    hours = chosen.runtime_hours
    if hours is None and request.max_runtime_minutes is not None:
        hours = request.max_runtime_minutes / 60
    return Ending(running, start + timedelta(hours=hours) if hours is not None else None)


@dataclass(frozen=True)
class LiveQueueInputs:
    """What build_queue needs, read from a live cluster's objects."""

    pending: list[PlacementRequest]
    policies: dict[str | None, PlacementPolicySpec]
    snapshot: Snapshot
    running: list[Ending]
    waiting_since: dict[str, datetime]
    objects: Mapping[str, Mapping[str, Any]]  # workload key -> its object, as listed


def live_queue_inputs(state: LiveState, now: datetime) -> LiveQueueInputs:
    """The pending and running MLWorkloads of a live cluster, each under the policy the operator would use (a
    workload whose policy is missing or invalid is left out: the operator refuses it), and the snapshot."""
    from mlplacement.core.ledger import bound_gpus_by_workload
    from mlplacement.core.placement.engine import make_context, target_product
    from mlplacement.core.placement.filters import work_hours
    from mlplacement.core.reconcile import Refusal, resolve_policy
    from mlplacement.core.snapshot import build_snapshot

    def live_snapshot(reserved: Mapping[tuple[str, str], int] | None = None) -> Snapshot:
        return build_snapshot(
            now=now,
            nodes=state.nodes,
            pods=state.pods,
            edge_clusters=state.edge_clusters,
            databricks_workspaces=state.workspaces,
            signals_configmap=state.signals_configmap,
            reserved=reserved,
        )

    snapshot = live_snapshot()
    by_name = {str((p.get("metadata") or {}).get("name")): p for p in state.policies}
    specs: dict[str | None, PlacementPolicySpec] = {None: PlacementPolicySpec()}
    for name, obj in by_name.items():
        try:
            specs[name] = PlacementPolicySpec.model_validate(obj.get("spec") or {})
        except ValidationError:
            continue
    targets = {t.key: t for t in snapshot.targets}
    products = {key: target_product(t) for key, t in targets.items()}
    pending, running, since, objects = [], [], {}, {}
    book = RuntimeBook()
    for obj in state.workloads:
        status = obj.get("status") or {}
        phase = status.get("phase")
        if phase == Phase.SUCCEEDED.value:
            took = _run_seconds(status)
            if took is not None:
                try:
                    done = MLWorkload.model_validate({k: v for k, v in obj.items() if k != "status"})
                    book.observe(request_from_workload(done), took)
                except ValidationError:
                    pass
        if phase in (Phase.SUCCEEDED.value, Phase.FAILED.value, Phase.REFUSED.value):
            continue
        try:
            workload = MLWorkload.model_validate({k: v for k, v in obj.items() if k != "status"})
        except ValidationError:
            continue
        resolved = resolve_policy(workload, by_name)
        if isinstance(resolved, Refusal) or resolved[0] not in specs:
            continue
        policy_name = resolved[0]
        request = dataclasses.replace(request_from_workload(workload), policy=policy_name)
        objects[request.key] = obj
        if phase in ACTIVE_PHASES:
            holding = running_from(workload, status, products)
            if holding is None:
                continue
            target = targets.get(holding.target)
            hours = (
                work_hours(request, target, make_context(request, specs[policy_name], snapshot))
                if target is not None
                else None
            )
            basis = f"expectedGPUHours {request.expected_gpu_hours:g}" if hours is not None else ""
            if hours is None and request.max_runtime_minutes is not None:
                hours, basis = request.max_runtime_minutes / 60, f"maxRuntimeMinutes {request.max_runtime_minutes}"
            if hours is None and (learned := book.estimate(request)) is not None:
                hours, basis = learned[0] / 3600, learned[1]
            started = datetime.fromtimestamp(holding.started, tz=now.tzinfo) if holding.started else now
            ends = max(now, started + timedelta(hours=hours)) if hours is not None else None
            running.append(Ending(holding, ends, basis))
            continue
        pending.append(request)
        since[request.key] = _waiting_since(status) or request.created or now
    # What placed work holds before its pods are bound (a Job just created, pods not scheduled yet) is not in
    # the pods' requests: held for it, as the operator's ledger holds it.
    bound = bound_gpus_by_workload(state.pods)
    uids = {
        f"{(o.get('metadata') or {}).get('namespace')}/{(o.get('metadata') or {}).get('name')}": str(
            (o.get("metadata") or {}).get("uid") or ""
        )
        for o in state.workloads
    }
    reserved: dict[tuple[str, str], int] = {}
    for ending in running:
        held = ending.running
        if held.target[0] == TargetKind.GPU_POOL.value:
            unbound = max(0, held.claim - bound.get(uids.get(held.key, ""), 0))
            if unbound:
                reserved[held.target] = reserved.get(held.target, 0) + unbound
    if reserved:
        snapshot = live_snapshot(reserved)
    return LiveQueueInputs(pending, specs, snapshot, running, since, objects)


def _run_seconds(status: Mapping[str, Any]) -> float | None:
    """How long a finished run took, from its status history: its last start to its end."""
    started = ended = None
    for entry in status.get("history") or []:
        try:
            moment = datetime.fromisoformat(str(entry.get("time")).replace("Z", "+00:00"))
        except ValueError:
            continue
        if entry.get("phase") == Phase.RUNNING.value:
            started = moment
        elif entry.get("phase") == Phase.SUCCEEDED.value and started is not None:
            ended = moment
    return (ended - started).total_seconds() if started is not None and ended is not None else None


def _waiting_since(status: Mapping[str, Any]) -> datetime | None:
    """When the workload last started waiting: its newest history entry that is not a placement."""
    for entry in reversed(status.get("history") or []):
        if entry.get("phase") in (Phase.WAITING.value, Phase.PENDING.value):
            try:
                return datetime.fromisoformat(str(entry.get("time")).replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


__all__ = [
    "Ending",
    "Eta",
    "LiveQueueInputs",
    "QueueEntry",
    "build_queue",
    "estimate_starts",
    "live_queue_inputs",
    "usage_line",
]
