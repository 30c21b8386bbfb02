"""decide() and decide_many(): filter, then score, then explain, over one immutable snapshot.

The engine is Kueue's "nominate" step on our snapshot: no I/O, no clock but the snapshot's, the same
answer for the same input. decide_many() places workloads in priority order (then age, then name) and
claims capacity as it goes, so two workloads never get the same last GPUs; then batch.rebalance() moves
placed workloads between targets where the batch as a whole does better (priority decides who runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import NamedTuple

from mlplacement.api.constants import Reason
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import TargetKind
from mlplacement.core.placement.batch import Option, rebalance
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
from mlplacement.core.placement.filters import capacity as capacity_filter
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


class Rejection(NamedTuple):
    """Targets rejected for one reason; whole kinds or regions are rejected in one entry.

    A NamedTuple, not a dataclass: a round builds one per reason per region per workload, and a frozen
    dataclass costs several times as much to construct.
    """

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
    request: PlacementRequest,
    snapshot: Snapshot,
    context: Context,
    claims: Mapping[tuple[str, str], int],
    full: list[Target] | None = None,
) -> tuple[list[Target], list[Rejection]]:
    """Targets passing every filter, and the rejections; ``full`` collects those failing on capacity alone."""
    feasible: list[Target] = []
    rejections: list[Rejection] = []
    for kind, regions in snapshot.by_kind_region.items():
        kind_failure = _first_failure(KIND_FILTERS, request, kind, context)
        if kind_failure is not None:
            rejections.append(Rejection(kind_failure[0], snapshot.by_kind[kind]))
            continue
        for region, targets in regions.items():
            region_failure = _first_failure(REGION_FILTERS, request, kind, region, context)
            if region_failure is not None:
                rejections.append(Rejection(region_failure[0], targets))
                continue
            # Group this region's per-target rejections by reason: fewer objects, same explanation.
            grouped: dict[str, list[Target]] = {}
            transient: set[str] = set()
            pinned = request.pinned
            for target in targets:
                if pinned is not None and pinned != (target.kind, target.name):
                    grouped.setdefault(NOT_PINNED, []).append(target)
                    continue
                free = target.capacity - claims.get(target.key, 0)
                # The hottest loop of a round: the filters are called inline rather than via _first_failure.
                for check in TARGET_FILTERS:
                    reason = check(request, target, free, context)
                    if reason is not None:
                        break
                else:
                    feasible.append(target)
                    continue
                grouped.setdefault(reason, []).append(target)
                if check in TRANSIENT_FILTERS:
                    transient.add(reason)
                    if full is not None and check is capacity_filter:
                        full.append(target)
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
    return _decide(request, policy, snapshot, claims or {})


def _decide(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    claims: Mapping[tuple[str, str], int],
    full: list[Target] | None = None,
    moved: tuple[Target, tuple[str, str]] | None = None,
) -> Decision:
    """decide(); ``full`` collects targets rejected for claims alone, ``moved`` is (first choice, final target)."""
    context = make_context(request, policy, snapshot)
    feasible, rejections = _feasible(request, snapshot, context, claims, full)
    scored: list[ScoredCandidate] = []
    if feasible:
        cheapest = min(hourly_cost_usd(request, target) for target in feasible)
        weight = weights(request, context)
        scored = [score_target(request, target, context, cheapest, weight) for target in feasible]
        # Deterministic: best score, then cheapest, then name.
        scored.sort(key=lambda c: (-c.score, c.hourly_cost_usd, c.target.name, c.target.kind.value))
    chosen = scored[0] if scored else None
    if moved is not None:
        chosen = next(c for c in scored if c.target.key == moved[1])
    message = _explain(len(scored), len(snapshot.targets), rejections, chosen)
    if moved is not None:
        message += f"; rebalanced for the batch (alone it would take {moved[0].name})"
    return Decision(
        request=request,
        chosen=chosen,
        candidates=tuple(scored),
        rejections=tuple(rejections),
        total_targets=len(snapshot.targets),
        signals_age_seconds=snapshot.signals_age_seconds,
        message=message,
    )


def batch_options(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    candidates: Iterable[ScoredCandidate],
    full: Iterable[Target],
) -> dict[tuple[str, str], Option]:
    """Every target ``request`` may use with capacity left aside, with the utility rebalance() compares.

    The utility is the weighted score with its cost part counted in dollars (minus the hourly price) and
    every other score point worth 1% of the workload's cheapest price: to first order the same ranking as
    the score, in a unit that adds up across workloads. Under a cost-only policy it is minus the hourly bill.
    ``candidates`` are already scored (their non-cost scores do not depend on capacity); ``full`` are not.
    """
    context = make_context(request, policy, snapshot)
    weight = weights(request, context)
    total_weight = sum(weight.values()) or 1.0
    # (target, hourly cost, weighted non-cost points); candidates' scores are reused, not recomputed.
    rows = [
        (c.target, c.hourly_cost_usd, sum(weight[name] * v for name, v in c.breakdown.items() if name != "cost"))
        for c in candidates
    ]
    others = [(name, scorer) for name, scorer in SCORERS if name != "cost" and weight[name]]
    rows += [
        (
            t,
            hourly_cost_usd(request, t),
            sum(weight[name] * scorer(request, t, 0.0, context) for name, scorer in others),
        )
        for t in full
        if claim_amount(request, t) <= t.capacity  # too big for the target even when it is empty
    ]
    reference = max(min(cost for _, cost, _ in rows), 0.01)
    return {
        target.key: Option(
            (points * reference / 100 - weight["cost"] * cost) / total_weight, claim_amount(request, target)
        )
        for target, cost, points in sorted(rows, key=lambda row: row[0].key)
    }


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
    *,
    rebalance_batch: bool = True,
) -> list[Decision]:
    """Decide every request against one snapshot, in placement order, claiming capacity as it goes.

    Priority (then age, then name) decides who is placed; batch.rebalance() then moves placed workloads
    between targets when the batch as a whole does better (``rebalance_batch=False`` skips that step, for
    comparisons). ``policy_by_name[None]`` is the default policy for requests without a policyRef; a request
    whose policy is missing from the mapping is decided under the built-in defaults (callers refuse those).
    """
    claims: dict[tuple[str, str], int] = {}
    decisions = []
    options: dict[str, dict[tuple[str, str], Option]] = {}
    policies = {}
    for request in sorted(requests, key=placement_order):
        policy = policies[request.key] = policy_by_name.get(request.policy, policy_by_name.get(None, DEFAULT_POLICY))
        full: list[Target] | None = [] if rebalance_batch else None  # targets full now, options for the batch
        decision = _decide(request, policy, snapshot, claims, full)
        if decision.chosen is not None:
            target = decision.chosen.target
            claims[target.key] = claims.get(target.key, 0) + claim_amount(request, target)
        if decision.chosen is not None and full is not None:
            options[request.key] = batch_options(request, policy, snapshot, decision.candidates, full)
        decisions.append(decision)
    placed = [d for d in decisions if d.chosen is not None]
    if not rebalance_batch:
        return decisions
    start = {d.request.key: d.chosen.target.key for d in placed if d.chosen is not None}
    capacity = {t.key: t.capacity for t in snapshot.targets}
    final = rebalance([d.request.key for d in placed], options, capacity, start)
    if final == start:
        return decisions
    final_claims: dict[tuple[str, str], int] = {}
    for decision in placed:
        key = final[decision.request.key]
        final_claims[key] = final_claims.get(key, 0) + options[decision.request.key][key].need
    rebuilt = []
    for decision in decisions:
        request = decision.request
        if decision.chosen is None or final[request.key] == start[request.key]:
            rebuilt.append(decision)
            continue
        # Explained against everyone else's final placement, so the candidates shown are the real choices.
        key = final[request.key]
        others = {**final_claims, key: final_claims[key] - options[request.key][key].need}
        first_choice = decision.chosen.target
        rebuilt.append(_decide(request, policies[request.key], snapshot, others, moved=(first_choice, key)))
    return rebuilt


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
