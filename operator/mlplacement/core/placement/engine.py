"""decide() and decide_many(): filter, then score, then explain, over one immutable snapshot.

The engine is Kueue's "nominate" step on our snapshot: no I/O, no clock but the snapshot's, the same
answer for the same input. decide_many() places workloads in priority order (then age, then name) and
claims capacity as it goes, so two workloads never get the same last GPUs; then batch.rebalance() moves
placed workloads between targets where the batch as a whole does better (priority decides who runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from mlplacement.api.constants import PreemptReason, Reason
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import WorkloadType
from mlplacement.core.kinds import KINDS
from mlplacement.core.nodes import NodeBook, packs
from mlplacement.core.placement.batch import Option, RoomMaker, rebalance
from mlplacement.core.placement.filters import (
    FREE_DEPENDENT,
    KIND_FILTERS,
    REGION_FILTERS,
    TARGET_FILTERS,
    TRANSIENT_FILTERS,
    Context,
    TargetFilter,
    budget_limit,
    capacity_need,
    comparable_cost_usd,
    egress_usd,
    expected_latency_ms,
    fold_tails,
    hourly_cost_usd,
    job_cost_usd,
    region_traits,
    runtime_hours,
    served_cost_usd,
    served_replica_usd,
    static_traits,
    target_filters_for,
)
from mlplacement.core.placement.filters import capacity as capacity_filter
from mlplacement.core.placement.request import PlacementRequest
from mlplacement.core.placement.scores import SCORERS, placement_traits, weights
from mlplacement.core.scarcity import (
    Need,
    QuotaBook,
    Running,
    choose_victims,
    choose_victims_reclaiming,
    eligible_victims,
    victim_rank,
)
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
    job_cost_usd: float | None = None  # one run, when the workload says how much work it is
    runtime_hours: float | None = None
    served_replica_usd: float | None = None  # an hour of one replica's worth of serving, for GPU inference
    served_cost_usd: float | None = None  # an hour of serving the declared load there (per replica x replicas)
    runtime_basis: str = ""  # where the run's length comes from (PlacementRequest.runtime_basis)
    # Data the run reads from another region: (GB, from, to, $ a run); None when it stays in its region.
    moves_data: tuple[float, str, str, float] | None = None
    # Work whose length nobody knows is compared per hour: said in the message rather than done silently.
    per_hour_assumed: bool = False


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
    preempts: tuple[Running, ...] = ()  # what is stopped to make room for it, on the chosen target
    preempt_reason: PreemptReason | None = None  # set when ``preempts`` is
    quota_exceeded: bool = False  # it would fit, but not within its team's quota
    # The free GPUs of each node its pods were counted on at its turn (node-shaped pools; explain shows them).
    nodes: tuple[int, ...] = ()

    @property
    def placed(self) -> bool:
        return self.chosen is not None

    @property
    def reason(self) -> Reason:
        if self.chosen is not None:
            return Reason.DISPATCHED
        if self.quota_exceeded:
            return Reason.QUOTA_EXCEEDED
        if any(rejection.transient for rejection in self.rejections):
            return Reason.WAITING_FOR_CAPACITY
        return Reason.NO_FEASIBLE_TARGET

    @property
    def top(self) -> tuple[ScoredCandidate, ...]:
        return self.candidates[:TOP_CANDIDATES]


def _explain(fitting: int, total: int, rejections: Iterable[Rejection], chosen: ScoredCandidate | None) -> str:
    counts: Counter[str] = Counter()
    for rejection in rejections:
        counts[rejection.reason] += len(rejection.targets)
    counts = fold_tails(counts)
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    head = f"{fitting}/{total} targets fit"
    if chosen is not None:
        target = chosen.target
        summary = (
            f"placed on {target.kind.value} {target.name} ({target.region}), score {chosen.score:.1f}, "
            f"${chosen.hourly_cost_usd:g}/h" + _per_job(chosen)
        )
        return f"{summary}; {head}" + (f": {parts}" if parts else "")
    return f"{head}" + (f": {parts}" if parts else "")


def _stale(snapshot: Snapshot, policy: PlacementPolicySpec) -> str:
    """Why the latency, egress and carbon figures may be out of date (spot pools are refused outright)."""
    if snapshot.signals is None or snapshot.signals_age_seconds is None:
        return "signals of unknown age: latency, egress and carbon may be stale"
    limit = snapshot.signals.ttl_seconds
    if policy.max_signal_age_seconds is not None:
        limit = min(limit, policy.max_signal_age_seconds)
    return f"signals {snapshot.signals_age_seconds:.0f}s old (limit {limit}s): latency, egress and carbon may be stale"


def _per_job(candidate: ScoredCandidate) -> str:
    moved = ""
    if candidate.moves_data is not None:
        gigabytes, source, destination, dollars = candidate.moves_data
        moved = f", moves {gigabytes:g} GB {source} -> {destination}, ${dollars:,.2f} egress a run"
    if candidate.job_cost_usd is not None and candidate.runtime_hours is not None:
        basis = f", {candidate.runtime_basis}" if candidate.runtime_basis else ""
        return f", ${candidate.job_cost_usd:,.2f}/job ({candidate.runtime_hours:.1f}h a run{basis}){moved}"
    if candidate.served_replica_usd is not None:
        return f", ${candidate.served_replica_usd:,.2f}/h per served replica{moved}"
    if candidate.per_hour_assumed:
        # Without a run length the cost of a run is unknown: hourly prices are compared, egress left out.
        return f"{moved} (compared per hour: no run length stated or learned)"
    return moved


def _compared_cost(candidate: ScoredCandidate) -> float:
    """comparable_cost_usd() of a scored candidate: per job, else per served load, else per hour."""
    if candidate.job_cost_usd is not None:
        return candidate.job_cost_usd
    if candidate.served_cost_usd is not None:
        return candidate.served_cost_usd
    return candidate.hourly_cost_usd


def _node_shortfall(book: NodeBook, key: tuple[str, str], request: PlacementRequest, within: str | None) -> str | None:
    """Why the request's pods find no nodes of ``key`` to hold them (a gang: a node each, within one block of the
    policy's topology label if it names one), or None when they do."""
    if within is not None:
        if book.fits_block(key, within, request.gpus, request.replicas):
            return None
        return book.block_shortfall(key, within, request.gpus, request.replicas)
    if book.fits(key, request.gpus, request.replicas, request.gang):
        return None
    return book.shortfall(key, request.gpus, request.replicas, request.gang)


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
    memo: Memo | None = None,
    nodes: NodeBook | None = None,
) -> tuple[list[Target], list[Rejection]]:
    """Targets passing every filter, and the rejections; ``full`` collects those failing on capacity alone.

    ``memo`` keeps, across the requests of one batch under one policy, region verdicts and each target's
    verdict from the filters that ignore what is free, by the traits those read (filters.region_traits,
    filters.static_traits); only what depends on free capacity is checked per request then."""
    feasible: list[Target] = []
    rejections: list[Rejection] = []
    claimed = claims.get
    pinned = request.pinned
    # Pods of one GPU fit wherever the pool's free total says; larger ones need a node that holds them, and a
    # gang's pods a node each.
    book = nodes if request.gpus > 1 or (request.gang and request.gpus > 0) else None
    within = context.policy.gangs.topology_label if request.gang else None
    traits = region_traits(request) if memo is not None else ()
    for kind, regions in snapshot.by_kind_region.items():
        kind_failure = _first_failure(KIND_FILTERS, request, kind, context)
        if kind_failure is not None:
            rejections.append(Rejection(kind_failure[0], snapshot.by_kind[kind]))
            continue
        checks = target_filters_for(request, kind, context)
        # The filters before the first that reads free capacity give the same verdict to requests alike.
        split = next((i for i, check in enumerate(checks) if check in FREE_DEPENDENT), len(checks))
        static, dynamic = checks[:split], checks[split:]
        # Capacity alone left (no budget): checked inline, the hottest test of a busy round.
        need, lacking = capacity_need(request, kind)
        only_capacity = dynamic == (capacity_filter,)
        kind_traits = static_traits(request, kind, static, context) if memo is not None else ()
        # Group this kind's per-target rejections by reason: fewer objects, same explanation.
        grouped: dict[str, list[Target]] = {}
        transient: set[str] = set()
        for region, targets in regions.items():
            if memo is None:
                failure = _first_failure(REGION_FILTERS, request, kind, region, context)
                verdict = failure[0] if failure is not None else None
            else:
                key = (*traits, kind, region)
                if key in memo.regions:
                    verdict = memo.regions[key]
                else:
                    failure = _first_failure(REGION_FILTERS, request, kind, region, context)
                    verdict = memo.regions[key] = failure[0] if failure is not None else None
            if verdict is not None:
                rejections.append(Rejection(verdict, targets))
                continue
            if memo is None or pinned is not None:
                verdicts = [_first_failure(static, request, t, 0, context) for t in targets]
            else:
                static_key = (kind_traits, region)
                found = memo.targets.get(static_key)
                if found is None:
                    found = memo.targets[static_key] = [_first_failure(static, request, t, 0, context) for t in targets]
                verdicts = found
            for target, failure in zip(targets, verdicts, strict=True):
                if pinned is not None and pinned != (target.kind, target.name):
                    grouped.setdefault(NOT_PINNED, []).append(target)
                    continue
                check: TargetFilter
                reason: str | None
                if failure is None and only_capacity:
                    if need <= target.capacity - claimed(target.key, 0):
                        if book is None:
                            feasible.append(target)
                            continue
                        reason = _node_shortfall(book, target.key, request, within)
                        if reason is None:
                            feasible.append(target)
                            continue
                        check = capacity_filter
                    else:
                        reason, check = lacking, capacity_filter
                elif failure is None:
                    free = target.capacity - claimed(target.key, 0)
                    # The hottest loop of a round: the filters are called inline rather than via _first_failure.
                    for check in dynamic:
                        reason = check(request, target, free, context)
                        if reason is not None:
                            break
                    else:
                        if book is None:
                            feasible.append(target)
                            continue
                        reason = _node_shortfall(book, target.key, request, within)
                        if reason is None:
                            feasible.append(target)
                            continue
                        check = capacity_filter
                else:
                    reason, check = failure
                assert reason is not None  # every branch that gets here was rejected
                grouped.setdefault(reason, []).append(target)
                if check in TRANSIENT_FILTERS:
                    transient.add(reason)
                    if full is not None and check is capacity_filter:
                        full.append(target)
        rejections.extend(Rejection(reason, tuple(ts), reason in transient) for reason, ts in grouped.items())
    return feasible, rejections


@dataclass
class Memo:
    """What _feasible() may reuse across the requests of one batch under one policy and snapshot."""

    regions: dict[tuple[object, ...], str | None] = field(default_factory=dict)
    targets: dict[tuple[object, ...], list[tuple[str, Callable[..., str | None]] | None]] = field(default_factory=dict)


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
        target,
        total,
        breakdown,
        hourly_cost_usd(request, target),
        expected_latency_ms(request, target, context),
        job_cost_usd(request, target, context),
        runtime_hours(request, target, context),
        served_replica_usd(request, target, context),
        served_cost_usd(request, target, context),
        request.runtime_basis,
        _moves_data(request, target, context),
        request.type is not WorkloadType.INFERENCE and request.expected_gpu_hours is None,
    )


def _moves_data(request: PlacementRequest, target: Target, context: Context) -> tuple[float, str, str, float] | None:
    if request.data_region is None or request.data_region == target.region or request.data_size_gb <= 0:
        return None
    return (request.data_size_gb, request.data_region, target.region, egress_usd(request, target, context))


def decide(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    claims: Mapping[tuple[str, str], int] | None = None,
) -> Decision:
    """Where ``request`` should run under ``policy`` on ``snapshot`` (given capacity already ``claims``ed)."""
    return _decide(request, policy, snapshot, claims or {}, nodes=NodeBook.of(snapshot))


def _decide(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    claims: Mapping[tuple[str, str], int],
    full: list[Target] | None = None,
    moved: tuple[Target | None, tuple[str, str]] | None = None,
    memo: Memo | None = None,
    nodes: NodeBook | None = None,
) -> Decision:
    """decide(); ``full`` collects targets rejected for claims alone, ``moved`` is (first choice, final target).

    A first choice of None: the workload fitted nowhere until the batch moved others to make room.
    """
    context = make_context(request, policy, snapshot)
    feasible, rejections = _feasible(request, snapshot, context, claims, full, memo, nodes)
    scored: list[ScoredCandidate] = []
    if feasible:
        cheapest = min(comparable_cost_usd(request, target, context) for target in feasible)
        weight = weights(request, context)
        scored = [score_target(request, target, context, cheapest, weight) for target in feasible]
        # Deterministic: best score, then cheapest, then name.
        scored.sort(key=lambda c: (-c.score, _compared_cost(c), c.target.name, c.target.kind.value))
    chosen = scored[0] if scored else None
    if moved is not None:
        chosen = next(c for c in scored if c.target.key == moved[1])
    message = _explain(len(scored), len(snapshot.targets), rejections, chosen)
    if not context.signals_fresh and snapshot.signals is not None:  # none at all is a choice, not news
        message += "; " + _stale(snapshot, policy)
    if moved is not None and moved[0] is None:
        message += "; placed once the batch moved others to make room"
    elif moved is not None and moved[0] is not None:
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
        (c.target, _compared_cost(c), sum(weight[name] * v for name, v in c.breakdown.items() if name != "cost"))
        for c in candidates
    ]
    others = [(name, scorer) for name, scorer in SCORERS if name != "cost" and weight[name]]
    points_by_traits: dict[tuple[object, ...], float] = {}
    for t in full:
        if claim_amount(request, t) > t.capacity:  # too big for the target even when it is empty
            continue
        traits = placement_traits(t)
        points = points_by_traits.get(traits)
        if points is None:
            points = sum(weight[name] * scorer(request, t, 0.0, context) for name, scorer in others)
            points_by_traits[traits] = points
        rows.append((t, comparable_cost_usd(request, t, context), points))
    reference = max(min(cost for _, cost, _ in rows), 0.01)
    return {
        target.key: Option(
            (points * reference / 100 - weight["cost"] * cost) / total_weight, claim_amount(request, target)
        )
        for target, cost, points in sorted(rows, key=lambda row: row[0].key)
    }


def placement_order(request: PlacementRequest, now: datetime | None = None) -> tuple[int, float, str]:
    """Priority (raised by urgency when ``now`` is given), then the oldest, then by name: decide_many()'s order."""
    created = request.created.timestamp() if request.created is not None else 0.0
    priority = request.priority if now is None else effective_priority(request, now)
    return (-priority, created, request.key)


URGENCY_MAX = 100  # at most this much priority is added as a deadline comes near
URGENCY_WINDOW_HOURS = 24.0  # urgency starts when a run's slack (time left minus its runtime) drops below this


def effective_priority(request: PlacementRequest, now: datetime) -> int:
    """The workload's priority plus its urgency: 0 while the slack before its deadline (on reference GPUs) is
    a day or more, rising linearly to URGENCY_MAX as the slack reaches zero. Bounded, so a deadline never
    overtakes work whose priority is higher by more than URGENCY_MAX; it never lowers anything."""
    if request.deadline is None or request.expected_gpu_hours is None:
        return request.priority
    runtime = request.expected_gpu_hours / max(1, request.gpus_needed)
    slack = (request.deadline - now).total_seconds() / 3600 - runtime
    pressure = 1.0 - min(1.0, max(0.0, slack / URGENCY_WINDOW_HOURS))
    return request.priority + round(URGENCY_MAX * pressure)


def claim_amount(request: PlacementRequest, target: Target) -> int:
    return KINDS[target.kind].claim(request.gpus_needed)


def target_product(target: Target) -> str | None:
    """The GPU product a per-product quota counts on ``target`` (one product, or none to count)."""
    return min(target.gpu_products) if len(target.gpu_products) == 1 else None


def _namespace(request: PlacementRequest) -> str:
    return request.key.partition("/")[0]


class _Scarcity:
    """One quota book per policy in the batch (team usage, for quotas and fair share), what runs now, the victims."""

    def __init__(
        self,
        running: Sequence[Running],
        namespace_labels: Mapping[str, Mapping[str, str]] | None,
        snapshot: Snapshot,
    ) -> None:
        self.running = list(running)
        self.namespace_labels = namespace_labels
        self.total_gpus = sum(t.gpus_total or t.capacity for t in snapshot.targets if KINDS[t.kind].claims_gpus)
        self.books: dict[int, QuotaBook] = {}
        self.placed: list[tuple[str, Need]] = []  # (namespace, need) placed in this batch, replayed into new books
        self.stopped: list[Running] = []
        self.by_target: dict[tuple[str, str], list[Running]] = {}
        for workload in self.running:
            self.by_target.setdefault(workload.target, []).append(workload)

    def book(self, policy: PlacementPolicySpec) -> QuotaBook:
        book = self.books.get(id(policy))
        if book is None:
            book = QuotaBook(policy.quotas, self.namespace_labels, self.running, self.total_gpus)
            for namespace, need in self.placed:
                book.add(namespace, need)
            for victim in self.stopped:
                book.add(victim.namespace, Need(victim.gpus, victim.product, victim.hourly_usd), -1)
            self.books[id(policy)] = book
        return book

    def place(self, namespace: str, need: Need) -> None:
        self.placed.append((namespace, need))
        for book in self.books.values():
            book.add(namespace, need)

    def stop(self, victim: Running) -> None:
        self.stopped.append(victim)
        self.by_target[victim.target].remove(victim)
        for book in self.books.values():
            book.add(victim.namespace, Need(victim.gpus, victim.product, victim.hourly_usd), -1)

    def order(
        self,
        requests: Iterable[PlacementRequest],
        policy_of: Callable[[PlacementRequest], PlacementPolicySpec],
        now: datetime | None = None,
    ) -> Iterator[PlacementRequest]:
        """Priority (plus urgency near a deadline) first; within a priority, the team with the smallest dominant
        share next (its oldest request first), re-judged after every placement; without fair sharing, oldest
        first."""
        levels: dict[int, list[tuple[tuple[int, float, str], PlacementRequest]]] = {}
        for request in requests:
            order = placement_order(request, now)
            levels.setdefault(-order[0], []).append((order, request))
        books: dict[int, QuotaBook | None] = {}  # by policy: None when it does not share fairly
        for priority in sorted(levels, reverse=True):
            level = sorted(levels[priority], key=lambda item: item[0])
            # One queue per (policy, team); the head of each competes on its team's share, then on age.
            queues: dict[
                tuple[int, str], tuple[QuotaBook | None, str, list[tuple[tuple[int, float, str], PlacementRequest]]]
            ] = {}
            for item in level:
                policy = policy_of(item[1])
                if id(policy) not in books:
                    books[id(policy)] = self.book(policy) if policy.fair_sharing else None
                book = books[id(policy)]
                namespace = _namespace(item[1])
                team = book.team(namespace) if book is not None else ""
                queues.setdefault((id(policy), team), (book, namespace, []))[2].append(item)
            if len(queues) == 1:  # nobody to be fair to: age order
                yield from (request for _, request in level)
                continue
            heads = dict.fromkeys(queues, 0)
            while heads:
                key = min(heads, key=lambda k, q=queues, h=heads: _fair_rank(q[k], h[k]))  # type: ignore[misc]
                items = queues[key][2]
                request = items[heads[key]][1]
                heads[key] += 1
                if heads[key] == len(items):
                    del heads[key]
                yield request


def _fair_rank(
    queue: tuple[QuotaBook | None, str, list[tuple[tuple[int, float, str], PlacementRequest]]], head: int
) -> tuple[float, tuple[int, float, str]]:
    book, namespace, items = queue
    return (book.dominant_share(namespace) if book is not None else 0.0), items[head][0]


def _within_quota(
    request: PlacementRequest, decision: Decision, book: QuotaBook
) -> tuple[ScoredCandidate | None, str | None]:
    """The best candidate whose GPUs and cost fit the team's quota, or None and why the first one did not."""
    first_problem = None
    for candidate in decision.candidates:
        need = Need(request.gpus_needed, target_product(candidate.target), candidate.hourly_cost_usd)
        problem = book.exceeded(_namespace(request), need)
        if problem is None:
            return candidate, None
        first_problem = first_problem or problem
    return None, first_problem


def _preempt(
    request: PlacementRequest,
    policy: PlacementPolicySpec,
    snapshot: Snapshot,
    claims: Mapping[tuple[str, str], int],
    full: Sequence[Target],
    scarcity: _Scarcity,
    budget: int,
) -> tuple[ScoredCandidate, tuple[Running, ...], PreemptReason] | None:
    """The target where the cheapest set of victims makes ``request`` fit, that set and why (Priority or
    ReclaimQuota); None if no target has one."""
    book = scarcity.book(policy)
    namespace = _namespace(request)
    context = make_context(request, policy, snapshot)
    weight = weights(request, context)
    best: tuple[tuple[object, ...], ScoredCandidate, tuple[Running, ...], PreemptReason] | None = None
    for target in full:
        need = Need(request.gpus_needed, target_product(target), hourly_cost_usd(request, target))
        if book.exceeded(namespace, need) is not None:
            continue
        deficit = claim_amount(request, target) - (target.capacity - claims.get(target.key, 0))
        candidates = eligible_victims(scarcity.by_target.get(target.key, ()), request.priority, policy.preemption, ())
        why = PreemptReason.PRIORITY
        if book.within_nominal(namespace, need):
            borrowers = [c for c in candidates if book.borrowing(c.namespace)]
            others = [c for c in candidates if not book.borrowing(c.namespace)]
            victims = choose_victims_reclaiming(deficit, borrowers, others, budget)
            if victims and any(v in borrowers for v in victims):
                why = PreemptReason.RECLAIM_QUOTA
        else:
            victims = choose_victims(deficit, candidates, budget)
        if not victims:
            continue
        scored = score_target(request, target, context, need.usd, weight)
        rank = (*victim_rank(victims), -scored.score, target.name)
        if best is None or rank < best[0]:
            best = (rank, scored, victims, why)
    return (best[1], best[2], best[3]) if best is not None else None


def _displacing(victims: Sequence[Running]) -> str:
    names = ", ".join(f"{v.key} (priority {v.priority})" for v in victims)
    return f"preempting {names}"


def decide_many(
    requests: Iterable[PlacementRequest],
    policy_by_name: Mapping[str | None, PlacementPolicySpec],
    snapshot: Snapshot,
    *,
    rebalance_batch: bool = True,
    running: Sequence[Running] = (),
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Decision]:
    """Decide every request against one snapshot, claiming capacity as it goes.

    Priority decides who is placed first; among equal priorities the team furthest below its quota (fair
    sharing), then the oldest. A placement must fit its team's quota (``QuotaExceeded`` otherwise). A request
    that fits nowhere may preempt ``running`` workloads its policy lets it (core.scarcity): the capacity they
    free is claimed by it at once. batch.rebalance() then moves placed workloads between targets when the
    batch as a whole does better (``rebalance_batch=False`` skips that; preemptors and quota-bound workloads
    stay where they were put). ``policy_by_name[None]`` is the default policy; a request whose policy is
    missing is decided under the built-in defaults (callers refuse those).
    """
    requests = list(requests)  # a second pass may be needed (see the node check at the end)
    claims: dict[tuple[str, str], int] = {}
    nodes = NodeBook.of(snapshot)  # node-shaped pools: a pod's GPUs must fit one node
    decisions = []
    options: dict[str, dict[tuple[str, str], Option]] = {}
    policies: dict[str, PlacementPolicySpec] = {}
    scarcity = _Scarcity(running, namespace_labels, snapshot)
    victims_left = max((p.preemption.max_victims_per_round for p in policy_by_name.values()), default=0)
    memos: dict[str | None, Memo] = {}  # per policy: filter verdicts requests alike share
    # Places what fits once placed workloads move, each at its turn (so priority still decides who runs).
    room = RoomMaker(options, {t.key: t.capacity for t in snapshot.targets}) if rebalance_batch else None
    start: dict[str, tuple[str, str]] = {}  # where the greedy put each workload it placed

    def policy_of(request: PlacementRequest) -> PlacementPolicySpec:
        return policy_by_name.get(request.policy, policy_by_name.get(None, DEFAULT_POLICY))

    for request in scarcity.order(requests, policy_of, snapshot.now):
        policy = policies[request.key] = policy_of(request)
        preempting = policy.preemption.enabled and bool(scarcity.running)
        full: list[Target] | None = [] if (rebalance_batch or preempting) else None
        memo = memos.setdefault(request.policy, Memo())
        decision = _decide(request, policy, snapshot, claims, full, memo=memo, nodes=nodes)
        book = scarcity.book(policy)
        if decision.chosen is not None and policy.quotas:
            allowed, problem = _within_quota(request, decision, book)
            if allowed is None:
                decision = replace(decision, chosen=None, message=problem or decision.message, quota_exceeded=True)
            elif allowed is not decision.chosen:
                decision = replace(
                    decision,
                    chosen=allowed,
                    message=_explain(len(decision.candidates), decision.total_targets, decision.rejections, allowed)
                    + f"; the better targets are over {book.team(_namespace(request))}'s quota",
                )
        pinned_here = False
        if decision.chosen is None and not decision.quota_exceeded and preempting and full and victims_left > 0:
            found = _preempt(
                request,
                policy,
                snapshot,
                claims,
                full,
                scarcity,
                min(victims_left, policy.preemption.max_victims_per_round),
            )
            if found is not None:
                chosen, victims, why = found
                for victim in victims:
                    scarcity.stop(victim)
                    claims[victim.target] = claims.get(victim.target, 0) - victim.claim
                    if room is not None and victim.target in room.capacity:
                        room.grow(victim.target, victim.claim)
                victims_left -= len(victims)
                target = chosen.target
                message = (
                    f"placed on {target.kind.value} {target.name} ({target.region}), score {chosen.score:.1f}, "
                    f"${chosen.hourly_cost_usd:g}/h{_per_job(chosen)}, {_displacing(victims)}; "
                    f"without that: {decision.message}"
                )
                decision = replace(
                    decision, chosen=chosen, candidates=(chosen,), preempts=victims, preempt_reason=why, message=message
                )
                pinned_here = True
        if decision.chosen is not None:
            target = decision.chosen.target
            claims[target.key] = claims.get(target.key, 0) + claim_amount(request, target)
            hourly = decision.chosen.hourly_cost_usd
            if nodes is not None:
                decision = _claim_nodes(nodes, decision, decision.chosen, policy)
            scarcity.place(_namespace(request), Need(request.gpus_needed, target_product(target), hourly))
            if room is not None and full is not None:
                every = batch_options(request, policy, snapshot, decision.candidates, full)
                # Moves count GPUs per target, not per node: a pod of several GPUs stays on the node the greedy
                # found for it (pods of one GPU fit wherever the target's free total says, so they may move).
                stays = pinned_here or bool(policy.quotas) or (nodes is not None and (request.gpus > 1 or request.gang))
                options[request.key] = {target.key: every[target.key]} if stays and target.key in every else every
                if target.key not in options[request.key]:
                    options[request.key] = {target.key: Option(0.0, claim_amount(request, target))}
                start[request.key] = target.key
                room.add(request.key, target.key)
        elif (
            room is not None
            and full
            and not decision.quota_exceeded
            and not policy.quotas
            and (nodes is None or (request.gpus <= 1 and not request.gang))
        ):
            # It may still fit on a full target once placed workloads move.
            gpus = request.gpus_needed
            needs = {t.key: need for t in full if (need := KINDS[t.kind].claim(gpus)) <= t.capacity}
            made = room.insert(request.key, needs)
            if made is not None:
                key, moves = made
                for workload, origin, destination in moves:
                    claims[origin] -= options[workload][origin].need
                    claims[destination] = claims.get(destination, 0) + options[workload][destination].need
                claims[key] = claims.get(key, 0) + needs[key]
                options[request.key] = batch_options(request, policy, snapshot, (), full)
                placed_on = next(t for t in full if t.key == key)
                scarcity.place(
                    _namespace(request),
                    Need(request.gpus_needed, target_product(placed_on), hourly_cost_usd(request, placed_on)),
                )
        decisions.append(decision)
    if room is None:
        return decisions
    with_room = room.assignment
    order = [d.request.key for d in decisions if d.request.key in with_room]
    final = rebalance(order, options, room.capacity, with_room)
    if final == start:
        return decisions
    if nodes is not None and not _packs_on_nodes(decisions, final, snapshot):
        # Moves and room-making count GPUs per target, not per node: a batch they would pack onto nodes that
        # cannot hold it is not taken. The greedy pass, checked node by node, stands, decided again without
        # room-making: later decisions of this pass counted on the room that moves (now not made) would free.
        return decide_many(
            requests,
            policy_by_name,
            snapshot,
            rebalance_batch=False,
            running=running,
            namespace_labels=namespace_labels,
        )
    final_claims: dict[tuple[str, str], int] = {}
    for workload, key in final.items():
        final_claims[key] = final_claims.get(key, 0) + options[workload][key].need
    rebuilt = []
    for decision in decisions:
        request = decision.request
        if request.key not in final or final[request.key] == start.get(request.key):
            rebuilt.append(decision)
            continue
        # Explained against everyone else's final placement, so the candidates shown are the real choices.
        key = final[request.key]
        others = {**final_claims, key: final_claims[key] - options[request.key][key].need}
        first_choice = decision.chosen.target if decision.chosen is not None else None
        rebuilt.append(_decide(request, policies[request.key], snapshot, others, moved=(first_choice, key)))
    return rebuilt


def _claim_nodes(nodes: NodeBook, decision: Decision, chosen: ScoredCandidate, policy: PlacementPolicySpec) -> Decision:
    """Claim the chosen target's nodes for the decision; a gang the policy holds to one topology block is pinned
    to the block counted for it (its pods get that label in their nodeSelector)."""
    request, target = decision.request, chosen.target
    within = policy.gangs.topology_label if request.gang else None
    if within is None or target.key not in nodes.shaped:
        nodes.take(target.key, request.gpus, request.replicas, request.gang)
        return replace(decision, nodes=tuple(nodes.last_taken)) if nodes.last_taken else decision
    value = nodes.take_block(target.key, within, request.gpus, request.replicas)
    if value is None:
        return decision
    pinned = replace(chosen, target=replace(target, pin=(within, value)))
    return replace(decision, chosen=pinned, nodes=tuple(nodes.last_taken))


def _packs_on_nodes(decisions: Sequence[Decision], final: Mapping[str, tuple[str, str]], snapshot: Snapshot) -> bool:
    """Whether the batch's final assignment fits the node-shaped pools node by node, in priority order."""
    by_key = {d.request.key: d.request for d in decisions}
    shaped = {t.key: t.blocks for t in snapshot.targets if t.blocks}
    placed = [
        (final[key], by_key[key].gpus, by_key[key].replicas, by_key[key].gang)
        for key in (d.request.key for d in decisions)
        if key in final and final[key] in shaped
    ]
    return packs(shaped, sorted(placed, key=lambda item: -item[1]))  # largest pods first, as a packer would


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
