"""decide() and decide_many(): filter, then score, then explain, over one immutable snapshot.

The engine is Kueue's "nominate" step on our snapshot: no I/O, no clock but the snapshot's, the same
answer for the same input. decide_many() places workloads in priority order (then age, then name) and
claims capacity as it goes, so two workloads never get the same last GPUs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass

from mlplacement.api.constants import Reason
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import TargetKind
from mlplacement.core.placement.filters import (
    KIND_FILTERS,
    REGION_FILTERS,
    TARGET_FILTERS,
    TRANSIENT_FILTERS,
    Context,
    budget_limit,
    expected_latency_ms,
    hourly_cost_usd,
)
from mlplacement.core.placement.request import PlacementRequest
from mlplacement.core.placement.scores import SCORERS, weights
from mlplacement.core.snapshot import Snapshot, Target

TOP_CANDIDATES = 5
NOT_PINNED = "not the pinned target"
DEFAULT_POLICY = PlacementPolicySpec()
# Free capacity already claimed in this round, by target key.
Claims = MutableMapping[tuple[str, str], int]


@dataclass(frozen=True, slots=True)
class ScoredCandidate:
    target: Target
    score: float
    breakdown: Mapping[str, float]
    hourly_cost_usd: float
    expected_latency_ms: float


@dataclass(frozen=True, slots=True)
class Rejection:
    """Targets rejected for one reason; whole kinds or regions are rejected in one entry."""

    reason: str
    targets: tuple[Target, ...]
    transient: bool = False


@dataclass(frozen=True)
class Decision:
    request: PlacementRequest
    chosen: ScoredCandidate | None
    candidates: tuple[ScoredCandidate, ...]  # every feasible target, best first
    rejections: tuple[Rejection, ...]
    total_targets: int
    signals_age_seconds: float | None
    message: str

    @property
    def placed(self) -> bool:
        return self.chosen is not None

    @property
    def reason(self) -> Reason:
        if self.chosen is not None:
            return Reason.DISPATCHED
        if any(rejection.transient for rejection in self.rejections):
            return Reason.WAITING_FOR_CAPACITY
        return Reason.NO_FEASIBLE_TARGET

    @property
    def top(self) -> tuple[ScoredCandidate, ...]:
        return self.candidates[:TOP_CANDIDATES]

    def rejection_reasons(self) -> dict[tuple[str, str], str]:
        """Every rejected target's reason, by target key."""
        return {target.key: rejection.reason for rejection in self.rejections for target in rejection.targets}


def _explain(fitting: int, total: int, rejections: Iterable[Rejection], chosen: ScoredCandidate | None) -> str:
    counts: Counter[str] = Counter()
    for rejection in rejections:
        counts[rejection.reason] += len(rejection.targets)
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    head = f"{fitting}/{total} targets fit"
    if chosen is not None:
        target = chosen.target
        summary = (
            f"placed on {target.kind.value} {target.name} ({target.region}), score {chosen.score:.1f}, "
            f"${chosen.hourly_cost_usd:g}/h"
        )
        return f"{summary}; {head}" + (f": {parts}" if parts else "")
    return f"{head}" + (f": {parts}" if parts else "")


def _first_failure(
    checks: Iterable[Callable[..., str | None]], *args: object
) -> tuple[str, Callable[..., str | None]] | None:
    for check in checks:
        reason = check(*args)
        if reason is not None:
            return reason, check
    return None


def _feasible(
    request: PlacementRequest, snapshot: Snapshot, context: Context, claims: Mapping[tuple[str, str], int]
) -> tuple[list[Target], list[Rejection]]:
    feasible: list[Target] = []
    rejections: list[Rejection] = []
    for kind, regions in snapshot.by_kind_region.items():
        kind_failure = _first_failure(KIND_FILTERS, request, kind, context)
        if kind_failure is not None:
            rejections.append(Rejection(kind_failure[0], tuple(t for ts in regions.values() for t in ts)))
            continue
        for region, targets in regions.items():
            region_failure = _first_failure(REGION_FILTERS, request, kind, region, context)
            if region_failure is not None:
                rejections.append(Rejection(region_failure[0], targets))
                continue
            # Group this region's per-target rejections by reason: fewer objects, same explanation.
            grouped: dict[str, list[Target]] = {}
            transient: set[str] = set()
            for target in targets:
                if request.pinned is not None and request.pinned != (target.kind, target.name):
                    grouped.setdefault(NOT_PINNED, []).append(target)
                    continue
                free = target.capacity - claims.get(target.key, 0)
                failure = _first_failure(TARGET_FILTERS, request, target, free, context)
                if failure is None:
                    feasible.append(target)
                    continue
                grouped.setdefault(failure[0], []).append(target)
                if failure[1] in TRANSIENT_FILTERS:
                    transient.add(failure[0])
            rejections.extend(Rejection(reason, tuple(ts), reason in transient) for reason, ts in grouped.items())
    return feasible, rejections


def make_context(request: PlacementRequest, policy: PlacementPolicySpec, snapshot: Snapshot) -> Context:
    """What the filters and scorers of one decision may read besides the request and the target."""
    return Context(
        policy=policy,
        snapshot=snapshot,
        signals_fresh=snapshot.signals_fresh(policy.max_signal_age_seconds),
        budget_usd=budget_limit(request, policy),
    )


def score_target(
    request: PlacementRequest, target: Target, context: Context, cheapest_usd: float, weight: Mapping[str, float]
) -> ScoredCandidate:
    """Every score of ``target`` for ``request`` and their weighted total (0..100)."""
    breakdown = {name: round(scorer(request, target, cheapest_usd, context), 2) for name, scorer in SCORERS}
    total = round(sum(weight[name] * value for name, value in breakdown.items()) / (sum(weight.values()) or 1.0), 2)
    return ScoredCandidate(
        target, total, breakdown, hourly_cost_usd(request, target), expected_latency_ms(request, target, context)
    )


def decide(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    claims: Mapping[tuple[str, str], int] | None = None,
) -> Decision:
    """Where ``request`` should run under ``policy`` on ``snapshot`` (given capacity already ``claims``ed)."""
    context = make_context(request, policy, snapshot)
    feasible, rejections = _feasible(request, snapshot, context, claims or {})
    scored: list[ScoredCandidate] = []
    if feasible:
        cheapest = min(hourly_cost_usd(request, target) for target in feasible)
        weight = weights(request, context)
        scored = [score_target(request, target, context, cheapest, weight) for target in feasible]
        # Deterministic: best score, then cheapest, then name.
        scored.sort(key=lambda c: (-c.score, c.hourly_cost_usd, c.target.name, c.target.kind.value))
    chosen = scored[0] if scored else None
    return Decision(
        request=request,
        chosen=chosen,
        candidates=tuple(scored),
        rejections=tuple(rejections),
        total_targets=len(snapshot.targets),
        signals_age_seconds=snapshot.signals_age_seconds,
        message=_explain(len(scored), len(snapshot.targets), rejections, chosen),
    )


def placement_order(request: PlacementRequest) -> tuple[int, float, str]:
    """Priority first, then the oldest, then by name: the order decide_many() places in."""
    created = request.created.timestamp() if request.created is not None else 0.0
    return (-request.priority, created, request.key)


def claim_amount(request: PlacementRequest, target: Target) -> int:
    return 1 if target.kind is TargetKind.DATABRICKS else request.gpus_needed


def decide_many(
    requests: Iterable[PlacementRequest],
    policy_by_name: Mapping[str | None, PlacementPolicySpec],
    snapshot: Snapshot,
) -> list[Decision]:
    """Decide every request against one snapshot, in placement order, claiming capacity as it goes.

    ``policy_by_name[None]`` is the default policy for requests without a policyRef; a request whose
    policy is missing from the mapping is decided under the built-in defaults (callers refuse those earlier).
    """
    claims: dict[tuple[str, str], int] = {}
    decisions = []
    for request in sorted(requests, key=placement_order):
        policy = policy_by_name.get(request.policy, policy_by_name.get(None, DEFAULT_POLICY))
        decision = decide(request, policy, snapshot, claims)
        if decision.chosen is not None:
            target = decision.chosen.target
            claims[target.key] = claims.get(target.key, 0) + claim_amount(request, target)
        decisions.append(decision)
    return decisions


def first_rejection(
    request: PlacementRequest,
    target: Target,
    free: int,
    context: Context,
    skip: frozenset[Callable[..., str | None]] = frozenset(),
) -> str | None:
    """The first reason any filter (kind, region, then target level) rejects ``target``, or None."""
    failure = (
        _first_failure(KIND_FILTERS, request, target.kind, context)
        or _first_failure(REGION_FILTERS, request, target.kind, target.region, context)
        or _first_failure([f for f in TARGET_FILTERS if f not in skip], request, target, free, context)
    )
    return failure[0] if failure is not None else None


def recheck(
    request: PlacementRequest, policy: PlacementPolicySpec, snapshot: Snapshot, target_key: tuple[str, str]
) -> str | None:
    """Why ``request`` may no longer stay on the target it runs on (gone or now forbidden), else None.

    Capacity and health are not rechecked: the workload's own pods already hold the GPUs a fresh decision
    would need, and an unhealthy target is failover's business, not a spec change's.
    """
    target = next((t for t in snapshot.targets if t.key == target_key), None)
    if target is None:
        return "target no longer exists"
    context = make_context(request, policy, snapshot)
    return first_rejection(request, target, target.capacity, context, skip=TRANSIENT_FILTERS)
