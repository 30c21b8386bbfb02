"""Impact analysis of a policy change: which workloads would move, become infeasible or placeable, at what cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.core.placement import Decision, PlacementRequest, decide_many
from mlplacement.core.scarcity import Running
from mlplacement.core.snapshot import Snapshot


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
        if self.before is None:
            return "becomes placeable"
        if self.after is None:
            return "becomes infeasible"
        return "moves"


def _target(decision: Decision) -> str | None:
    chosen = decision.chosen
    return f"{chosen.target.kind.value}/{chosen.target.name}" if chosen is not None else None


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
