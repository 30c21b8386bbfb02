"""What would make a waiting workload placeable now: the smallest changes, each checked by the real engine.

A change is proposed only when `decide_many` places the workload with it, on the same snapshot and next to the
same running work: more free GPUs on one target, a looser latency target, spot allowed, a larger hourly budget.
The work is bounded (at most ``MAX_ENGINE_CALLS`` decisions per workload), so a round or a CLI call can afford it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import SpotPreference
from mlplacement.core.kinds import KINDS
from mlplacement.core.placement import Decision, PlacementRequest, decide_many
from mlplacement.core.placement.engine import make_context
from mlplacement.core.placement.filters import expected_latency_ms, hourly_cost_usd
from mlplacement.core.scarcity import Running
from mlplacement.core.snapshot import Snapshot, Target

MAX_ENGINE_CALLS = 8  # per workload: every change is a decision of the real engine, and there are few kinds
TRIED_PER_KIND = 3  # the nearest values of one kind (latency targets, budgets, targets short of GPUs)


class Change(StrEnum):
    """The kinds of change a counterfactual names (stable: scripts read them in -o json)."""

    MORE_FREE_GPUS = "MoreFreeGPUs"
    LATENCY_TARGET = "LatencyTarget"
    SPOT_ALLOWED = "SpotAllowed"
    BUDGET = "Budget"


@dataclass(frozen=True)
class Counterfactual:
    change: Change
    target: str  # "GPUPool a100-euw1": where it would then run
    text: str  # "fits on GPUPool a100-euw1 if 2 more GPUs free there (2 workloads of lower priority hold them)"
    value: float | None = None  # the GPUs, milliseconds or dollars the change is about


def _where(decision: Decision) -> str:
    assert decision.chosen is not None
    return f"{decision.chosen.target.kind.value} {decision.chosen.target.name}"


def counterfactuals(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    running: Sequence[Running] = (),
    decision: Decision | None = None,
) -> list[Counterfactual]:
    """The smallest changes that would place ``request`` now, nearest first within each kind; empty when it is
    placed already or nothing within reach helps. ``decision`` is its decision as it stands (made if absent)."""
    calls = [0]

    def decide(
        changed: PlacementRequest, on: Snapshot = snapshot, under: PlacementPolicySpec = policy
    ) -> Decision | None:
        if calls[0] >= MAX_ENGINE_CALLS:
            return None
        calls[0] += 1
        others = [r for r in running if r.key != changed.key]
        (made,) = decide_many([changed], {changed.policy: under, None: under}, on, running=others)
        return made

    now = decision or decide(request)
    if now is None or now.chosen is not None:
        return []
    found: list[Counterfactual] = []
    for finder in (_more_free_gpus, _spot_allowed, _latency_target, _budget):
        found += finder(request, policy, snapshot, running, now, decide)
    return found


Decide = Callable[..., Decision | None]


def _more_free_gpus(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    running: Sequence[Running],
    now: Decision,
    decide: Decide,
) -> list[Counterfactual]:
    """Targets it was turned away from for capacity alone (a transient rejection): how many more GPUs free there."""
    short = [
        t
        for rejection in now.rejections
        if rejection.transient
        for t in rejection.targets
        if KINDS[t.kind].claims_gpus and t.gpus_total >= request.gpus_needed
    ]
    short.sort(key=lambda t: (request.gpus_needed - t.capacity, t.kind.value, t.name))
    found = []
    for target in short[:TRIED_PER_KIND]:
        deficit = max(1, request.gpus_needed - target.capacity)
        roomier = _with_free(snapshot, target, request, deficit)
        placed = decide(request, roomier)
        if placed is None or placed.chosen is None or placed.chosen.target.key != target.key:
            continue
        holders = [r for r in running if r.target == target.key and r.priority < request.priority]
        held = (
            f" ({len(holders)} workload{'s' if len(holders) != 1 else ''} of lower priority hold them)"
            if holders and sum(r.claim for r in holders) >= deficit
            else ""
        )
        where = f"{target.kind.value} {target.name}"
        text = f"fits on {where} if {deficit} more GPU{'s' if deficit != 1 else ''} free there{held}"
        found.append(Counterfactual(Change.MORE_FREE_GPUS, where, text, float(deficit)))
    return found


def _with_free(snapshot: Snapshot, target: Target, request: PlacementRequest, extra: int) -> Snapshot:
    """The snapshot with ``extra`` more GPUs free on ``target``, on nodes that could hold the request's pods."""
    pods = max(1, -(-extra // max(1, request.gpus)))
    changed = dataclasses.replace(
        target,
        capacity=target.capacity + extra,
        blocks=tuple(sorted(target.blocks + (max(1, request.gpus),) * pods)) if target.blocks else (),
        node_room=(
            target.node_room + ((max(1, request.gpus), request.cpu_millis, request.memory_bytes),) * pods
            if target.node_room
            else ()
        ),
    )
    targets = tuple(changed if t.key == target.key else t for t in snapshot.targets)
    return dataclasses.replace(snapshot, targets=targets)


def _spot_allowed(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    running: Sequence[Running],
    now: Decision,
    decide: Decide,
) -> list[Counterfactual]:
    if request.spot is not SpotPreference.NEVER or not any(t.spot for t in snapshot.targets):
        return []
    placed = decide(dataclasses.replace(request, spot=SpotPreference.ALLOWED))
    if placed is None or placed.chosen is None:
        return []
    return [Counterfactual(Change.SPOT_ALLOWED, _where(placed), f"fits on {_where(placed)} if spot: Allowed")]


def _latency_target(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    running: Sequence[Running],
    now: Decision,
    decide: Decide,
) -> list[Counterfactual]:
    """The nearest looser latency targets that some target meets."""
    if request.latency_target_ms is None:
        return []
    context = make_context(request, policy, snapshot)
    looser = sorted(
        {
            round(latency + 0.5)
            for t in snapshot.targets
            if (latency := expected_latency_ms(request, t, context)) > request.latency_target_ms
        }
    )
    for target_ms in looser[:TRIED_PER_KIND]:
        placed = decide(dataclasses.replace(request, latency_target_ms=float(target_ms)))
        if placed is not None and placed.chosen is not None:
            where = _where(placed)
            text = f"fits on {where} if latencyTargetMs >= {target_ms:g}"
            return [Counterfactual(Change.LATENCY_TARGET, where, text, float(target_ms))]
    return []


def _budget(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    running: Sequence[Running],
    now: Decision,
    decide: Decide,
) -> list[Counterfactual]:
    """The nearest larger hourly budgets some target fits under (the workload's own, or the policy's when that
    is the one that binds)."""
    context = make_context(request, policy, snapshot)
    limit = context.budget_usd
    if limit is None:
        return []
    dearer = sorted({round(cost, 2) for t in snapshot.targets if (cost := hourly_cost_usd(request, t)) > limit})
    own = request.max_hourly_cost_usd is not None and request.max_hourly_cost_usd <= limit
    for cost in dearer[:TRIED_PER_KIND]:
        if own:
            changed, relaxed = dataclasses.replace(request, max_hourly_cost_usd=cost), policy
        else:
            budget = policy.budget.model_copy(update={"max_hourly_cost_usd_per_workload": cost})
            changed, relaxed = request, policy.model_copy(update={"budget": budget})
        placed = decide(changed, snapshot, relaxed)
        if placed is not None and placed.chosen is not None:
            field = "maxHourlyUSD" if own else "the policy's budget.maxHourlyCostUSDPerWorkload"
            text = f"fits on {_where(placed)} under budget if {field} >= {cost:g}"
            return [Counterfactual(Change.BUDGET, _where(placed), text, cost)]
    return []


def summary(found: Sequence[Counterfactual], most: int = 2) -> str:
    """For a Waiting message: "would fit: on GPUPool a (2 more GPUs free there); ..." or ""."""
    if not found:
        return ""
    return "would fit " + "; or ".join(c.text.removeprefix("fits ") for c in found[:most])


__all__ = ["MAX_ENGINE_CALLS", "Change", "Counterfactual", "counterfactuals", "summary"]
