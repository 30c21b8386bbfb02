"""Impact analysis of a policy change: which workloads would move, become infeasible or placeable, at what cost."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import MLWorkload
from mlplacement.core.placement import Decision, PlacementRequest, decide_many, request_from_workload
from mlplacement.core.scarcity import Running
from mlplacement.core.snapshot import Snapshot
from mlplacement.core.status import placement_target


@dataclass
class LiveState:
    """What a read-only look at a live cluster gives a what-if: the objects placement reads, as plain dicts."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    edge_clusters: list[dict[str, Any]] = field(default_factory=list)
    workspaces: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)
    workloads: list[dict[str, Any]] = field(default_factory=list)
    signals_configmap: dict[str, Any] | None = None


@dataclass(frozen=True)
class Change:
    key: str
    before: str | None  # "Kind/name", or None when not placeable
    after: str | None
    cost_delta_usd: float
    latency_delta_ms: float | None
    why: str

    @property
    def kind(self) -> str:
        return change_kind(self.before, self.after)


def change_kind(before: str | None, after: str | None) -> str:
    """What happens to a workload between two answers to "where does it run" (None: nowhere)."""
    if before is None:
        return "becomes placeable"
    if after is None:
        return "becomes infeasible"
    return "moves"


def _target(decision: Decision) -> str | None:
    chosen = decision.chosen
    if chosen is None:
        return None
    pin = chosen.target.pin  # a gang held to a topology block: another block is a move too
    return f"{chosen.target.kind.value}/{chosen.target.name}" + (f" ({pin[0]}={pin[1]})" if pin else "")


def whatif(
    requests: Sequence[PlacementRequest],
    snapshot: Snapshot,
    current: PlacementPolicySpec,
    proposed: PlacementPolicySpec,
    running: Sequence[Running] = (),
) -> tuple[list[Change], dict[str, Any]]:
    """Decide every workload under both policies on the same snapshot (and what runs now: quotas count it,
    preemption may stop it) and report what differs."""
    before = {d.request.key: d for d in decide_many(requests, {None: current}, snapshot, running=running)}
    after = {d.request.key: d for d in decide_many(requests, {None: proposed}, snapshot, running=running)}
    changes = []
    for key in sorted(before):
        old, new = before[key], after[key]
        if _target(old) == _target(new):
            continue
        cost = (new.chosen.hourly_cost_usd if new.chosen else 0.0) - (old.chosen.hourly_cost_usd if old.chosen else 0.0)
        latency = new.chosen.expected_latency_ms - old.chosen.expected_latency_ms if old.chosen and new.chosen else None
        changes.append(
            Change(
                key,
                _target(old),
                _target(new),
                round(cost, 4),
                round(latency, 1) if latency is not None else None,
                new.message,
            )
        )
    totals = {
        "workloads": len(before),
        "preempted": sum(len(d.preempts) for d in after.values()),
        "moves": sum(c.kind == "moves" for c in changes),
        "becomeInfeasible": sum(c.kind == "becomes infeasible" for c in changes),
        "becomePlaceable": sum(c.kind == "becomes placeable" for c in changes),
        "hourlyCostBeforeUSD": round(sum(d.chosen.hourly_cost_usd for d in before.values() if d.chosen), 2),
        "hourlyCostAfterUSD": round(sum(d.chosen.hourly_cost_usd for d in after.values() if d.chosen), 2),
    }
    return changes, totals


@dataclass(frozen=True)
class LiveChange:
    """What a proposed policy does to one live workload: where it runs (or waits) now and where it would."""

    key: str
    now: str | None  # "Kind/name" it runs on, or None while it waits
    after: str | None  # under the proposed policy: stays, moves, becomes placeable or infeasible (None)
    cost_delta_usd: float
    sla_met: bool | None  # the latency target, after (None: no target, or not placed)
    why: str

    @property
    def kind(self) -> str:
        return change_kind(self.now, self.after)


def whatif_live(
    workloads: Sequence[tuple[PlacementRequest, str | None, float]],
    snapshot: Snapshot,
    proposed: PlacementPolicySpec,
    running: Sequence[Running] = (),
) -> tuple[list[LiveChange], dict[str, Any]]:
    """A proposed policy against the cluster as it is: each workload with the target it runs on now (None
    while it waits) and its hourly cost there. A running workload the proposed rules still allow where it runs
    stays (as the operator keeps it); the others are decided under the proposed policy together."""
    from mlplacement.core.placement.engine import recheck

    stays: dict[str, tuple[str, float]] = {}
    deciding: list[PlacementRequest] = []
    why_leaving: dict[str, str] = {}
    for request, where, cost in workloads:
        if where is not None:
            kind, _, name = where.partition("/")
            reason = recheck(request, proposed, snapshot, (kind, name))
            if reason is None:
                stays[request.key] = (where, cost)
                continue
            why_leaving[request.key] = f"{where}: {reason}"
        deciding.append(request)
    decided = {d.request.key: d for d in decide_many(deciding, {None: proposed}, snapshot, running=running)}
    changes: list[LiveChange] = []
    before_cost = sum(cost for _, where, cost in workloads if where is not None)
    after_cost = sum(cost for _, cost in stays.values())
    for request, where, cost in sorted(workloads, key=lambda item: item[0].key):
        decision = decided.get(request.key)
        if decision is None:
            continue
        after = _target(decision)
        new_cost = decision.chosen.hourly_cost_usd if decision.chosen else 0.0
        after_cost += new_cost
        if where is None and after is None:
            continue  # waits now, would wait then
        target = request.latency_target_ms
        sla = None if decision.chosen is None or target is None else decision.chosen.expected_latency_ms <= target
        why = why_leaving.get(request.key, "")
        changes.append(
            LiveChange(
                request.key,
                where,
                after,
                round(new_cost - (cost if where else 0.0), 4),
                sla,
                f"{why}; {decision.message}" if why else decision.message,
            )
        )
    totals = {
        "workloads": len(workloads),
        "moves": sum(c.kind == "moves" for c in changes),
        "becomeInfeasible": sum(c.kind == "becomes infeasible" for c in changes),
        "becomePlaceable": sum(c.kind == "becomes placeable" for c in changes),
        "slaLost": sum(c.sla_met is False for c in changes),
        "hourlyCostBeforeUSD": round(before_cost, 2),
        "hourlyCostAfterUSD": round(after_cost, 2),
    }
    return changes, totals


def live_workloads(
    objects: Sequence[Mapping[str, Any]],
    snapshot: Snapshot,
    under_policy: Callable[[MLWorkload], bool] = lambda workload: True,
) -> list[tuple[PlacementRequest, str | None, float]]:
    """The live MLWorkloads whatif_live weighs: each with where it runs now (None while it waits) and its
    hourly cost there. Finished, refused and invalid ones are left out (nothing of theirs can move)."""
    from mlplacement.core.placement.filters import hourly_cost_usd

    targets = {f"{t.kind.value}/{t.name}": t for t in snapshot.targets}
    found = []
    for obj in objects:
        status = obj.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "Refused"):
            continue
        try:
            workload = MLWorkload.model_validate(obj)
        except ValidationError:
            continue  # the operator refuses it too: nothing to move
        if not under_policy(workload):
            continue
        request = request_from_workload(workload)
        target = placement_target(status) or {}
        where = f"{target.get('kind')}/{target.get('name')}" if status.get("phase") in ("Placed", "Running") else None
        cost = hourly_cost_usd(request, targets[where]) if where in targets else 0.0
        found.append((request, where, cost))
    return found


WARNING_CHARS = 200  # kubectl prints each warning on a line; the API server truncates long ones
WARNINGS_LISTED = 3


def impact_warnings(policy: str, changes: Sequence[LiveChange], totals: Mapping[str, Any]) -> list[str]:
    """What `kubectl apply` of a policy change shows as warnings: the what-if summary, then the first moves."""
    if not changes:
        return [f"what-if: no workload under PlacementPolicy {policy} changes ({totals['workloads']} checked)"]
    summary = (
        f"what-if for PlacementPolicy {policy}: {totals['moves']} move, {totals['becomeInfeasible']} become "
        f"infeasible, {totals['becomePlaceable']} become placeable, {totals['slaLost']} lose their latency target; "
        f"hourly cost ${totals['hourlyCostBeforeUSD']} -> ${totals['hourlyCostAfterUSD']}"
    )
    listed = sorted(changes, key=lambda c: (c.kind != "becomes infeasible", c.kind != "moves", c.key))
    lines = [summary]
    for change in listed[:WARNINGS_LISTED]:
        line = f"what-if: {change.key} {change.kind}: {change.now or 'waiting'} -> {change.after or 'nowhere'}"
        lines.append(f"{line} ({change.why})" if change.why else line)
    if len(changes) > WARNINGS_LISTED:
        lines.append(f"what-if: {len(changes) - WARNINGS_LISTED} more; `mlplacement whatif --live` lists them all")
    return [line if len(line) <= WARNING_CHARS else line[: WARNING_CHARS - 3] + "..." for line in lines]
