"""Scores, 0..100 each (higher is better), weighted by the policy. One small named function each."""

from __future__ import annotations

import math
from collections.abc import Callable

from mlplacement.api.workload import CostTolerance, SpotPreference, WorkloadType
from mlplacement.core.placement.filters import Context, comparable_cost_usd, expected_latency_ms
from mlplacement.core.placement.request import PlacementRequest
from mlplacement.core.snapshot import Target

# Egress bill (USD per run) at which the data-gravity score halves.
EGRESS_HALF_SCORE_USD = 10.0
# Carbon intensity (gCO2/kWh) that scores zero; unknown regions score the middle.
CARBON_ZERO_SCORE = 800.0
# Share of a run lost when a spot node is reclaimed, by workload type (training restarts from a checkpoint).
RESTART_COST = {WorkloadType.TRAINING: 0.6, WorkloadType.BATCH: 0.4, WorkloadType.INFERENCE: 1.0}
COST_WEIGHT_FACTOR = {CostTolerance.LOW: 2.0, CostTolerance.MEDIUM: 1.0, CostTolerance.HIGH: 0.5}


def cost(request: PlacementRequest, target: Target, cheapest_usd: float, context: Context) -> float:
    """Relative to the cheapest feasible candidate: the cheapest scores 100, twice its price scores 50. The price
    is per job (runtime on this target's GPUs, plus moving the data) when the workload says how much work a run
    is, else per hour."""
    mine = comparable_cost_usd(request, target, context)
    return 100.0 if mine <= 0 else 100.0 * cheapest_usd / mine


def latency(request: PlacementRequest, target: Target, cheapest_usd: float, context: Context) -> float:
    expected = expected_latency_ms(request, target, context)
    return 100.0 * max(0.0, 1.0 - expected / request.effective_latency_target_ms)


def data_gravity(request: PlacementRequest, target: Target, cheapest_usd: float, context: Context) -> float:
    egress = request.data_size_gb * context.snapshot.egress_usd_per_gb(request.data_region, target.region)
    return 100.0 / (1.0 + egress / EGRESS_HALF_SCORE_USD)


def carbon(request: PlacementRequest, target: Target, cheapest_usd: float, context: Context) -> float:
    intensity = context.snapshot.carbon_g_per_kwh(target.region)
    return 50.0 if intensity is None else 100.0 * max(0.0, 1.0 - intensity / CARBON_ZERO_SCORE)


def preemption(request: PlacementRequest, target: Target, cheapest_usd: float, context: Context) -> float:
    if not target.spot:
        return 100.0
    risk = target.preemption_probability * RESTART_COST[request.type]
    if request.spot is SpotPreference.PREFERRED:
        risk /= 2  # the workload said it checkpoints and wants the discount
    return 100.0 * math.exp(-3.0 * risk)


Scorer = Callable[[PlacementRequest, Target, float, Context], float]


def placement_traits(target: Target) -> tuple[object, ...]:
    """All every scorer but cost reads of a target: two targets alike here score alike on those, so a
    workload's points are computed once per distinct traits, not per target (tests/unit/test_placement_shortcuts.py)."""
    return (target.kind, target.region, target.rtt_ms, target.spot, target.preemption_probability)


# name -> (scorer, the policy weight it uses)
SCORERS: tuple[tuple[str, Scorer], ...] = (
    ("cost", cost),
    ("latency", latency),
    ("dataGravity", data_gravity),
    ("carbon", carbon),
    ("preemption", preemption),
)


def weights(request: PlacementRequest, context: Context) -> dict[str, float]:
    policy = context.policy.weights
    return {
        "cost": policy.cost * COST_WEIGHT_FACTOR[request.cost_tolerance],
        "latency": policy.latency,
        "dataGravity": policy.data_gravity,
        "carbon": policy.carbon,
        "preemption": policy.preemption,
    }
