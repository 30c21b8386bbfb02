"""Trace-driven simulation: replay arrivals and fleet events through a placement strategy, measure it.

Pure and deterministic: the same fleet, trace and strategies give the same report. The engine strategy is
the real decide_many; baselines are what a naive operator would do (they honour capacity, GPU product and
the workload's allowed kinds, and nothing else).
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError

from mlplacement.api.errors import describe_validation_error
from mlplacement.api.fleet import Fleet
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.trace import Trace, TraceEvent
from mlplacement.api.workload import LatencyClass, MLWorkload, TargetKind, WorkloadType
from mlplacement.core.latency import UNSTABLE_MS, Served
from mlplacement.core.placement import PlacementRequest, decide_many, request_from_workload
from mlplacement.core.placement.engine import claim_amount, make_context, target_product
from mlplacement.core.placement.filters import (
    SPOT_RESTART_HOURS,
    expected_latency_ms,
    gpu_throughput,
    hourly_cost_usd,
    served_model,
    work_hours,
)
from mlplacement.core.queue import Ending, RuntimeBook, estimate_starts
from mlplacement.core.samples import generate_workloads
from mlplacement.core.scarcity import Running
from mlplacement.core.snapshot import Snapshot, Target, snapshot_from_fleet

# Share of the remaining run that is redone after a preemption or failover (work since the last checkpoint).
RESTART_OVERHEAD = 0.1
# Latency-class inference in a replay: requests a second when the workload declares none (its latency is then the
# round trip alone, so the figure only weights runs by their length), and the size of one response.
DEFAULT_REQUESTS_PER_SECOND = 1.0
RESPONSE_KB = 4.0
# A replica's cold start after a start or a move: the container starts, then pulls and loads its model (about
# 2 Gbit/s from object storage to GPU memory). Requests meanwhile wait, half of it on average. Replicas do not scale
# with load: an MLWorkload's Deployment has the replicas its spec names.
COLD_START_BASE_S = 10.0
COLD_START_S_PER_GB = 4.0


def cold_start_s(request: PlacementRequest) -> float:
    """Seconds before a started or moved inference workload answers: a base plus loading its model."""
    return COLD_START_BASE_S + COLD_START_S_PER_GB * request.model_size_gb


class Placement(NamedTuple):
    request: PlacementRequest
    target: Target | None
    preempts: tuple[str, ...] = ()  # keys of running workloads stopped to make room


Assignment = list[Placement]
# Decides a queue on a snapshot, given what runs now (only the engine uses it: baselines never preempt).
Strategy = Callable[[list[PlacementRequest], Snapshot, Sequence[Running]], Assignment]


# --- strategies ---


@dataclass(frozen=True)
class EngineStrategy:
    """The engine under one policy; the replay also asks it when waiting work should start (core.queue)."""

    policy: PlacementPolicySpec

    def __call__(self, requests: list[PlacementRequest], snapshot: Snapshot, running: Sequence[Running]) -> Assignment:
        decisions = decide_many(requests, {None: self.policy}, snapshot, running=running)
        return [
            Placement(d.request, d.chosen.target if d.chosen else None, tuple(v.key for v in d.preempts))
            for d in decisions
        ]


def engine_strategy(policy: PlacementPolicySpec) -> Strategy:
    return EngineStrategy(policy)


def per_hour_engine_strategy(policy: PlacementPolicySpec) -> Strategy:
    """The engine told nothing about the work of a run (no expectedGPUHours, deadline or checkpoints): what it
    would do pricing GPU-hours, the baseline work-normalized placement is measured against."""

    def place(requests: list[PlacementRequest], snapshot: Snapshot, running: Sequence[Running]) -> Assignment:
        by_key = {r.key: r for r in requests}
        blind = [
            replace(
                r, expected_gpu_hours=None, deadline=None, max_runtime_minutes=None, checkpoint_interval_minutes=None
            )
            for r in requests
        ]
        decisions = decide_many(blind, {None: policy}, snapshot, running=running)
        return [
            Placement(by_key[d.request.key], d.chosen.target if d.chosen else None, tuple(v.key for v in d.preempts))
            for d in decisions
        ]

    return place


def _naive_fits(request: PlacementRequest, target: Target, free: int) -> bool:
    if not target.healthy or target.kind not in request.allowed:
        return False
    if target.kind is TargetKind.DATABRICKS and not request.databricks_task:
        return False  # nothing to submit: not naive, impossible
    if request.gpu_product and target.gpu_products and request.gpu_product not in target.gpu_products:
        return False
    return claim_amount(request, target) <= free


def _greedy_baseline(choose: Callable[[PlacementRequest, list[Target]], Target]) -> Strategy:
    def place(requests: list[PlacementRequest], snapshot: Snapshot, running: Sequence[Running] = ()) -> Assignment:
        claims: dict[tuple[str, str], int] = {}
        out: Assignment = []
        for request in sorted(requests, key=lambda r: (-r.priority, r.key)):
            fitting = [t for t in snapshot.targets if _naive_fits(request, t, t.capacity - claims.get(t.key, 0))]
            target = choose(request, fitting) if fitting else None
            if target is not None:
                claims[target.key] = claims.get(target.key, 0) + claim_amount(request, target)
            out.append(Placement(request, target))
        return out

    return place


def centralize_strategy() -> Strategy:
    """Everything on the cheapest GPU pool that fits: the 'one big central cluster' habit."""

    def choose(request: PlacementRequest, fitting: list[Target]) -> Target:
        pools = [t for t in fitting if t.kind is TargetKind.GPU_POOL] or fitting
        return min(pools, key=lambda t: (t.kind is not TargetKind.GPU_POOL, hourly_cost_usd(request, t), t.name))

    def place(requests: list[PlacementRequest], snapshot: Snapshot, running: Sequence[Running] = ()) -> Assignment:
        pools_only = replace(snapshot, targets=tuple(t for t in snapshot.targets if t.kind is TargetKind.GPU_POOL))
        return _greedy_baseline(choose)(requests, pools_only, running)

    return place


def central_region_strategy() -> Strategy:
    """Everything in one region, the fleet's with the most GPU-pool GPUs, as one central platform team would run
    it: latency-class inference on the pool there whose GPUs serve it fastest, the rest on the cheapest. Nothing
    goes to another region: a central cluster that is full queues."""

    def place(requests: list[PlacementRequest], snapshot: Snapshot, running: Sequence[Running] = ()) -> Assignment:
        pools = [t for t in snapshot.targets if t.kind is TargetKind.GPU_POOL]
        by_region: dict[str, int] = {}
        for pool in pools:
            by_region[pool.region] = by_region.get(pool.region, 0) + pool.gpus_total
        central = min(by_region, key=lambda region: (-by_region[region], region), default=None)
        context = make_context(requests[0], PlacementPolicySpec(), snapshot) if requests else None

        def choose(request: PlacementRequest, fitting: list[Target]) -> Target:
            if request.latency_class is LatencyClass.BATCH or request.latency_target_ms is None or context is None:
                return min(fitting, key=lambda t: (hourly_cost_usd(request, t), t.name))
            return min(
                fitting,
                key=lambda t: (-gpu_throughput(target_product(t), context), hourly_cost_usd(request, t), t.name),
            )

        there = replace(snapshot, targets=tuple(t for t in pools if t.region == central))
        return _greedy_baseline(choose)(requests, there, running)

    return place


def cheapest_first_strategy() -> Strategy:
    return _greedy_baseline(lambda request, fitting: min(fitting, key=lambda t: (hourly_cost_usd(request, t), t.name)))


def round_robin_strategy() -> Strategy:
    counter = itertools.count()

    def choose(request: PlacementRequest, fitting: list[Target]) -> Target:
        return fitting[next(counter) % len(fitting)]

    return _greedy_baseline(choose)


# --- the replay ---


@dataclass
class Run:
    request: PlacementRequest
    target: Target
    started: float
    ends: float
    hourly_usd: float
    # Work known (expectedGPUHours): the share of it left when this run started, a whole run's seconds on this
    # target, and the restart overhead the run began with.
    left: float = 1.0
    full_s: float | None = None
    overhead_s: float = 0.0
    nodes: tuple[tuple[int, int], ...] = ()  # (node, GPUs) its pods hold on a node-shaped pool


@dataclass
class WorkloadRecord:
    arrived: float
    duration_s: float
    namespace: str = ""
    priority: int = 0
    first_start: float | None = None
    first_kind: str | None = None
    latency_ms: float | None = None
    finished: bool = False
    restarts: int = 0
    deadline_s: float | None = None  # seconds from the start of the replay
    request_curve: tuple[float, ...] | None = None  # share of the peak rate by hour of the day (the trace's)


@dataclass
class StrategyReport:
    name: str
    placements_by_kind: dict[str, int] = field(default_factory=dict)
    total_cost_usd: float = 0.0
    egress_usd: float = 0.0
    preemptions: int = 0
    failovers: int = 0
    overcommits: int = 0
    arrivals: int = 0
    refused: int = 0
    finished: int = 0
    running_at_end: int = 0
    waiting_at_end: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    sla_met: int = 0
    sla_total: int = 0
    waits_minutes: list[float] = field(default_factory=list)
    # Minutes from arrival to first start (or to the end of the replay, for those never started), by team and
    # by priority: what fair sharing and preemption change.
    waits_by_namespace: dict[str, list[float]] = field(default_factory=dict)
    waits_by_priority: dict[int, list[float]] = field(default_factory=dict)
    priority_preemptions: int = 0  # workloads stopped for higher-priority work (not spot reclaims)
    # Work-known runs: hours redone after interruptions (work since the last checkpoint, plus restarts), and
    # deadlines judged (finished, or never finishing by the end of the replay) and missed.
    rework_hours: float = 0.0
    deadlines_judged: int = 0
    deadline_misses: int = 0
    # Node-shaped pools: placements whose pods no node could hold (they wait where a scheduler would leave them
    # Pending), and GPUs free but stranded (in blocks smaller than any waiting workload's pod), integrated.
    unschedulable: int = 0
    stranded_gpu_hours: float = 0.0
    stranded_peak: int = 0
    # The engine's start estimates (core.queue.estimate_starts) made when a workload first waits, against when it
    # did start: minutes late (positive) or early; and how many waited without an estimate.
    # Request-weighted latency of latency-class inference (core.latency): (requests, model) per run, and requests
    # served during a replica's cold start after a start or a move (requests, extra ms).
    request_latency: list[tuple[float, Served | float]] = field(default_factory=list)
    egress_model_usd: float = 0.0  # the model artifact moved to each start's region (from the data's region)
    egress_responses_usd: float = 0.0  # responses sent back to callers in other regions
    eta_errors_minutes: list[float] = field(default_factory=list)
    eta_missing: int = 0
    # Run lengths not stated but learned from similar finished runs (core.queue.RuntimeBook): predicted - actual.
    runtime_errors_minutes: list[float] = field(default_factory=list)
    # Work conservation, checked after every round of an engine strategy: a workload left waiting while the
    # engine, asked about it alone on what the round left, would place it ("at 312 min team-a/x: GPUPool a").
    idle_violations: list[str] = field(default_factory=list)
    idle_checks: int = 0
    # Every workload that never started, with the engine's words for why at the end of the replay.
    never_started: list[tuple[str, str]] = field(default_factory=list)
    cost_series: list[tuple[float, float]] = field(default_factory=list)  # (minutes, cumulative USD)
    kind_series: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # (minutes, running by kind)

    def summary(self) -> dict[str, Any]:
        placed = sum(self.placements_by_kind.values())

        def percentile(q: float) -> float | None:
            if not self.latencies_ms:
                return None
            ordered = sorted(self.latencies_ms)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

        return {
            "strategy": self.name,
            "arrivals": self.arrivals,
            "placed": placed,
            "placementsByKind": dict(sorted(self.placements_by_kind.items())),
            "finished": self.finished,
            "runningAtEnd": self.running_at_end,
            "waitingAtEnd": self.waiting_at_end,
            "refused": self.refused,
            "totalCostUSD": round(self.total_cost_usd, 2),
            "costPerWorkloadUSD": round(self.total_cost_usd / placed, 2) if placed else None,
            "egressUSD": round(self.egress_usd, 2),
            "slaAttainment": round(self.sla_met / self.sla_total, 3) if self.sla_total else None,
            "latencyMs": {"p50": percentile(0.50), "p95": percentile(0.95), "p99": percentile(0.99)},
            "preemptions": self.preemptions,
            "failovers": self.failovers,
            "meanWaitMinutes": round(statistics.fmean(self.waits_minutes), 1) if self.waits_minutes else None,
            "overcommits": self.overcommits,
            "priorityPreemptions": self.priority_preemptions,
            "waitMinutesByNamespace": {ns: _quantiles(w) for ns, w in sorted(self.waits_by_namespace.items())},
            "waitMinutesByPriority": {str(p): _quantiles(w) for p, w in sorted(self.waits_by_priority.items())},
            "costPerFinishedUSD": round(self.total_cost_usd / self.finished, 2) if self.finished else None,
            "reworkHours": round(self.rework_hours, 1),
            "deadlinesJudged": self.deadlines_judged,
            "deadlineMisses": self.deadline_misses,
            "unschedulablePlacements": self.unschedulable,
            "strandedGPUHours": round(self.stranded_gpu_hours, 1),
            "strandedGPUsPeak": self.stranded_peak,
            "requestLatencyMs": _request_percentiles(self.request_latency),
            "requestLatencyAtTargetMs": _at_target_percentiles(self.request_latency),
            "egressModelUSD": round(self.egress_model_usd, 2),
            "egressResponsesUSD": round(self.egress_responses_usd, 2),
            "egressTotalUSD": round(self.egress_usd + self.egress_model_usd + self.egress_responses_usd, 2),
            "etaErrorMinutes": _error_quantiles(self.eta_errors_minutes),
            "etaEstimated": len(self.eta_errors_minutes),
            "etaMissing": self.eta_missing,
            "learnedRuntimeErrorMinutes": _error_quantiles(self.runtime_errors_minutes),
            "learnedRuntimes": len(self.runtime_errors_minutes),
            "workConservingChecks": self.idle_checks,
            "workConservingViolations": self.idle_violations[:20],
            "workConservingViolationCount": len(self.idle_violations),
            "neverStarted": [{"workload": key, "why": why} for key, why in self.never_started],
        }


def hour_spans(
    origin: datetime, begin: float, end: float, curve: Sequence[float] | None
) -> Iterator[tuple[float, float, float]]:
    """(from, to, share of the peak rate) over [begin, end] seconds of a replay starting at ``origin``: one span
    without a curve, else one per hour of the day the span crosses."""
    if curve is None:
        if end > begin:
            yield begin, end, 1.0
        return
    at = begin
    while at < end:
        moment = origin + timedelta(seconds=at)
        into_hour = moment.minute * 60 + moment.second + moment.microsecond / 1e6
        until = min(end, at + 3600 - into_hour)
        yield at, until, curve[moment.hour]
        at = until


def _at_target_percentiles(parts: list[tuple[float, Served | float]]) -> dict[str, float] | None:
    """The same requests without the network in front: what their replicas alone give (placement changes this
    only by the GPUs it picks), so the rest of the request percentiles is the round trips. None without load."""
    if not any(isinstance(part, Served) for _, part in parts):
        return None
    alone = [(weight, part.without_network() if isinstance(part, Served) else part) for weight, part in parts]
    return _request_percentiles(alone)


def _request_percentiles(parts: list[tuple[float, Served | float]]) -> dict[str, float] | None:
    """p50/p95/p99 over every request of every run (a mixture weighted by requests), by bisection."""
    total = sum(weight for weight, _ in parts)
    if total <= 0:
        return None

    def exceeds(t: float) -> float:
        return (
            sum(weight * (part.exceeds(t) if isinstance(part, Served) else float(part > t)) for weight, part in parts)
            / total
        )

    def percentile(q: float) -> float:
        low, high = 0.0, 1.0
        while exceeds(high) > 1 - q and high < UNSTABLE_MS:
            high *= 2
        while high - low > 0.05:
            middle = (low + high) / 2
            low, high = (middle, high) if exceeds(middle) > 1 - q else (low, middle)
        return round(min(high, UNSTABLE_MS), 1)

    return {"p50": percentile(0.5), "p95": percentile(0.95), "p99": percentile(0.99)}


def _error_quantiles(errors: list[float]) -> dict[str, float] | None:
    """|predicted - actual start| in minutes, p50 and p90, and the median signed error (positive: started late)."""
    if not errors:
        return None
    ordered = sorted(abs(e) for e in errors)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p90": at(0.9), "medianSigned": round(statistics.median(errors), 1)}


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 1), "count": len(ordered)}


class _Fleet:
    """Mutable fleet state during a replay: totals, health and prices per target; usage from runs."""

    def __init__(self, base: Snapshot) -> None:
        self.base = {t.key: t for t in base.targets}
        self.signals = base.signals
        self.start = base.now
        self.total = {k: t.capacity for k, t in self.base.items()}
        self.healthy = {k: t.healthy for k, t in self.base.items()}
        self.prices = {k: (t.gpu_hour_usd, t.preemption_probability) for k, t in self.base.items()}
        self.used: dict[tuple[str, str], int] = {}
        # Node-shaped pools, node by node as a scheduler binds: free GPUs per node (the fleet file's shapes).
        self.node_free: dict[tuple[str, str], list[int]] = {k: list(t.blocks) for k, t in self.base.items() if t.blocks}

    def bind(self, request: PlacementRequest, key: tuple[str, str]) -> tuple[tuple[int, int], ...] | None:
        """Bind the request's pods on the target's nodes as kube-scheduler would (each on the fullest node that
        holds it; a gang's on distinct nodes): the (node, GPUs) held, () off node-shaped pools, None when some pod
        fits no node (it would stay Pending)."""
        free = self.node_free.get(key)
        if free is None or request.gpus <= 0:
            return ()
        held: list[tuple[int, int]] = []
        for _ in range(request.replicas):
            taken = {node for node, _ in held} if request.gang else set()
            best = min(((f, n) for n, f in enumerate(free) if f >= request.gpus and n not in taken), default=None)
            if best is None:
                self.unbind(key, held)
                return None
            free[best[1]] -= request.gpus
            held.append((best[1], request.gpus))
        return tuple(held)

    def unbind(self, key: tuple[str, str], held: Sequence[tuple[int, int]]) -> None:
        free = self.node_free.get(key)
        for node, gpus in held:
            if free is not None:
                free[node] += gpus

    def grow(self, key: tuple[str, str], total: int) -> None:
        """A pool's total changed: node-shaped pools gain nodes of their largest node's size (or lose free ones)."""
        free, base = self.node_free.get(key), self.base[key]
        if free is None or base.node_gpus <= 0:
            return
        wanted = len(base.blocks) + max(0, (total - base.gpus_total) // base.node_gpus)
        while len(free) < wanted:
            free.append(base.node_gpus)
        while len(free) > wanted and free[-1] == base.node_gpus:  # only nodes nothing runs on go
            free.pop()

    def stranded(self, queue: Iterable[PlacementRequest]) -> int:
        """Free GPUs on healthy node-shaped pools in blocks smaller than every waiting pool workload's pod."""
        smallest = min((r.gpus for r in queue if r.gpus > 0 and TargetKind.GPU_POOL in r.allowed), default=None)
        if smallest is None:
            return 0
        return sum(f for key, free in self.node_free.items() if self.healthy[key] for f in free if 0 < f < smallest)

    def _free(self, key: tuple[str, str]) -> int:
        free = max(0, self.total[key] - self.used.get(key, 0))
        nodes = self.node_free.get(key)
        return free if nodes is None else min(free, sum(nodes))  # what its nodes hold, no more

    def find(self, name: str | None) -> tuple[str, str] | None:
        return next((k for k in self.base if k[1] == name), None)

    def snapshot(self, seconds: float) -> Snapshot:
        now = self.start + timedelta(seconds=seconds)
        targets = tuple(
            replace(
                t,
                capacity=self._free(k),
                healthy=self.healthy[k],
                gpu_hour_usd=self.prices[k][0],
                preemption_probability=self.prices[k][1],
                blocks=tuple(sorted(self.node_free[k])) if k in self.node_free else t.blocks,
            )
            for k, t in self.base.items()
        )
        # A replay's signals are as fresh as its fleet events: the trace is the feed.
        signals = self.signals.model_copy(update={"updated_at": now}) if self.signals is not None else None
        return Snapshot(now=now, targets=targets, signals=signals)


def _parse(event: TraceEvent, index: int) -> PlacementRequest | None:
    try:
        workload = MLWorkload.model_validate(event.workload or {})
    except ValidationError:
        return None
    request = request_from_workload(workload)
    return replace(request, key=f"{request.key}#{index}")


def invalid_arrivals(trace: Trace) -> list[str]:
    """Arrivals whose workload the operator would refuse (InvalidSpec), each as "event N (name): problem". A
    replay would count them as arrivals never placed, which says nothing about any strategy."""
    problems = []
    for index, event in enumerate(trace.events):
        if event.type != "arrive":
            continue
        try:
            MLWorkload.model_validate(event.workload or {})
        except ValidationError as exc:
            name = ((event.workload or {}).get("metadata") or {}).get("name", "?")
            problems.append(f"event {index + 1} ({name}): {describe_validation_error(exc)}")
    return problems


def knows_work(trace: Trace) -> bool:
    """Whether any arrival says how much work a run is (then per-job outcomes are worth reporting)."""
    return any(
        (((e.workload or {}).get("spec") or {}).get("intent") or {}).get("expectedGPUHours") is not None
        for e in trace.events
        if e.type == "arrive"
    )


def simulate(
    fleet: Fleet,
    trace: Trace,
    strategy: Strategy,
    name: str,
    start: datetime,
    progress: Callable[[int], None] | None = None,
) -> StrategyReport:
    """Replay ``trace`` on ``fleet`` with ``strategy``; the report carries totals and time series."""
    state = _Fleet(snapshot_from_fleet(fleet, start))
    report = StrategyReport(name=name)
    events = sorted(enumerate(trace.events), key=lambda item: (item[1].at, item[0]))
    records: dict[str, WorkloadRecord] = {}
    queue: dict[str, PlacementRequest] = {}
    remaining: dict[str, float] = {}
    left: dict[str, float] = {}  # work-known: the share of a run still to do after an interruption
    running: dict[str, Run] = {}
    judge = PlacementPolicySpec()  # the replay's own view of a product's speed: the signals', as the engine's
    completions: list[tuple[float, str]] = []
    cost = 0.0
    index = 0
    clock = 0.0
    unschedulable: set[str] = set()  # workloads a strategy sent where no node could hold their pods
    stranded, stranded_since = 0, 0.0
    predicted: dict[str, float | None] = {}  # when a waiting workload was expected to start (seconds), or None
    observed = RuntimeBook()  # what finished runs took, as the operator sees runs start and end

    def stop(key: str, at: float, finished: bool) -> None:
        nonlocal cost
        run = running.pop(key)
        cost += run.hourly_usd * (at - run.started) / 3600
        served(run, at)
        state.used[run.target.key] -= claim_amount(run.request, run.target)
        state.unbind(run.target.key, run.nodes)
        record = records[key]
        if finished:
            observed.observe(run.request, at - run.started)
            record.finished = True
            report.finished += 1
            if record.deadline_s is not None:
                report.deadlines_judged += 1
                report.deadline_misses += at > record.deadline_s
            return
        record.restarts += 1
        queue[key] = run.request
        if run.full_s is None:
            remaining[key] = (run.ends - at) * (1 + RESTART_OVERHEAD) + 1.0
            return
        # Work since the last checkpoint is lost (all of this run's without checkpoints).
        worked = max(0.0, at - run.started - run.overhead_s)
        interval = (run.request.checkpoint_interval_minutes or 0) * 60
        saved = (worked // interval) * interval if interval else 0.0
        left[key] = max(0.0, run.left - saved / run.full_s)
        report.rework_hours += (worked - saved) / 3600

    def served(run: Run, at: float) -> None:
        """The requests a latency-class inference served from its start to ``at``: their latency (the model at its
        target; the round trip alone without declared load), its cold start, and the responses' egress. With a
        request curve, hour by hour at that hour's rate."""
        request = run.request
        if request.latency_class is LatencyClass.BATCH or request.latency_target_ms is None:
            return
        snapshot = state.snapshot(run.started)
        context = make_context(request, judge, snapshot)
        peak = request.requests_per_second or DEFAULT_REQUESTS_PER_SECOND
        curve = records[request.key].request_curve
        warm_from = run.started + cold_start_s(request)
        sources = dict(request.requests_from) or {request.data_region or run.target.region: 1.0}
        share = sum(sources.values())
        per_gb = {region: snapshot.egress_usd_per_gb(run.target.region, region) for region in sources}
        models: dict[float, Served | float] = {}
        for begin, end, factor in hour_spans(state.start, run.started, at, curve):
            rate = peak * factor
            if rate <= 0:
                continue
            if rate not in models:
                declared = replace(request, requests_per_second=rate) if request.requests_per_second else request
                model = served_model(declared, run.target, context)
                models[rate] = model if model is not None else expected_latency_ms(declared, run.target, context)
            latency = models[rate]
            cold = max(0.0, min(end, warm_from) - begin)
            report.request_latency.append((rate * (end - begin - cold), latency))
            if cold > 0:
                baseline = latency.mean_ms() if isinstance(latency, Served) else latency
                report.request_latency.append((rate * cold, baseline + cold_start_s(request) * 500))
            for region, weight in sources.items():
                responses_gb = rate * (end - begin) * weight / share * RESPONSE_KB / 1e6
                report.egress_responses_usd += responses_gb * per_gb[region]

    def interrupt(target_key: tuple[str, str], at: float) -> int:
        victims = sorted(k for k, r in running.items() if r.target.key == target_key)
        for key in victims:
            stop(key, at, finished=False)
        return len(victims)

    def now_running() -> list[Running]:
        return [
            Running(
                key=key,
                namespace=key.partition("/")[0],
                priority=run.request.priority,
                target=run.target.key,
                claim=claim_amount(run.request, run.target),
                gpus=run.request.gpus_needed,
                product=target_product(run.target),
                hourly_usd=run.hourly_usd,
                started=run.started,
                preemptible=run.request.preemptible,
            )
            for key, run in running.items()
        ]

    def waited(record: WorkloadRecord, minutes: float) -> None:
        report.waits_by_namespace.setdefault(record.namespace, []).append(minutes)
        report.waits_by_priority.setdefault(record.priority, []).append(minutes)

    def place(at: float) -> None:
        if not queue:
            return
        snapshot = state.snapshot(at)
        for request, target, preempts in strategy(list(queue.values()), snapshot, now_running()):
            if target is None:
                continue
            for victim in preempts:  # stopped before the preemptor claims what they held
                if victim in running:
                    stop(victim, at, finished=False)
                    report.priority_preemptions += 1
            key = request.key
            nodes = state.bind(request, target.key)
            if nodes is None:  # no node holds a pod: Pending where a scheduler would leave it, and waiting here
                if key not in unschedulable:
                    unschedulable.add(key)
                    report.unschedulable += 1
                continue
            queue.pop(key)
            state.used[target.key] = state.used.get(target.key, 0) + claim_amount(request, target)
            if state.used[target.key] > state.total[target.key] or not state.healthy[target.key]:
                report.overcommits += 1
            hourly = hourly_cost_usd(request, target)
            full_hours = work_hours(request, target, make_context(request, judge, snapshot))
            if full_hours is None:
                duration = remaining.pop(key, records[key].duration_s)
                running[key] = Run(request, target, at, at + duration, hourly, nodes=nodes)
            else:
                share = left.pop(key, 1.0)
                overhead = SPOT_RESTART_HOURS * 3600 if records[key].restarts else 0.0
                report.rework_hours += overhead / 3600
                duration = share * full_hours * 3600 + overhead
                running[key] = Run(
                    request, target, at, at + duration, hourly, share, full_hours * 3600, overhead, nodes
                )
            heapq.heappush(completions, (at + duration, key))
            if request.model_size_gb > 0:  # the model artifact goes where it is served, at every start
                report.egress_model_usd += request.model_size_gb * snapshot.egress_usd_per_gb(
                    request.data_region, target.region
                )
            learned = observed.estimate(request)
            if learned is not None and full_hours is None:  # a run length not stated, predicted from earlier runs
                report.runtime_errors_minutes.append((learned[0] - duration) / 60)
            record = records[key]
            if record.first_start is None:
                expected = predicted.pop(key, None)
                if expected is not None:
                    report.eta_errors_minutes.append((at - expected) / 60)
                record.first_start = at
                record.first_kind = target.kind.value
                report.placements_by_kind[target.kind.value] = report.placements_by_kind.get(target.kind.value, 0) + 1
                report.waits_minutes.append((at - record.arrived) / 60)
                waited(record, (at - record.arrived) / 60)
                report.egress_usd += request.data_size_gb * snapshot.egress_usd_per_gb(
                    request.data_region, target.region
                )
                if request.latency_class is not LatencyClass.BATCH and request.latency_target_ms is not None:
                    # With declared load, the predicted percentile of its requests (core.latency), as the engine judges.
                    latency = expected_latency_ms(request, target, make_context(request, judge, snapshot))
                    record.latency_ms = latency
                    report.latencies_ms.append(latency)
                    report.sla_total += 1
                    report.sla_met += latency <= request.latency_target_ms

    def estimate(at: float, policy: PlacementPolicySpec) -> None:
        """Workloads that wait for the first time get the estimate the operator would give (core.queue), from
        what it would know of the running work: its runtime when the workload states its work or a limit."""
        new = {key for key in queue if key not in predicted and records[key].first_start is None}
        if not new:
            return
        endings = []
        for held, run in zip(now_running(), running.values(), strict=True):
            ends = None
            if run.full_s is not None:
                ends = run.ends
            elif run.request.max_runtime_minutes is not None:
                ends = run.started + run.request.max_runtime_minutes * 60
            elif (learned := observed.estimate(run.request)) is not None:
                ends = max(at, run.started + learned[0])  # overdue by the median: expected any moment
            endings.append(Ending(held, state.start + timedelta(seconds=ends) if ends is not None else None))
        etas = estimate_starts(list(queue.values()), {None: policy}, state.snapshot(at), endings, wanted=new)
        for key in new:
            eta = etas.get(key)
            if eta is None or eta.at is None:
                predicted[key] = None
                report.eta_missing += 1
            else:
                predicted[key] = (eta.at - state.start).total_seconds()

    def conserving(at: float, policy: PlacementPolicySpec) -> None:
        """A workload still waiting after the round must not fit, alone, on what the round left (its hard
        constraints, its team's quota and preemption as the engine applies them). Shapes alike are asked once."""
        if not queue:
            return
        snapshot = state.snapshot(at)
        if not any(t.capacity > 0 and t.healthy for t in snapshot.targets):
            return
        holding = now_running()
        asked: dict[PlacementRequest, str | None] = {}
        for request in queue.values():
            shape = replace(request, key=request.key.partition("/")[0] + "/", created=None)
            if shape not in asked:
                report.idle_checks += 1
                (alone,) = decide_many([request], {None: policy}, snapshot, running=holding)
                target = alone.chosen.target if alone.chosen is not None else None
                asked[shape] = None if target is None else f"{target.kind.value} {target.name}"
            if asked[shape] is not None:
                report.idle_violations.append(f"at {at / 60:.0f} min {request.key.partition('#')[0]}: {asked[shape]}")

    def record_point(at: float) -> None:
        nonlocal stranded, stranded_since
        report.stranded_gpu_hours += stranded * (at - stranded_since) / 3600
        stranded, stranded_since = state.stranded(queue.values()), at
        report.stranded_peak = max(report.stranded_peak, stranded)
        accrued = cost + sum(r.hourly_usd * (at - r.started) / 3600 for r in running.values())
        by_kind: dict[str, int] = {}
        for run in running.values():
            by_kind[run.target.kind.value] = by_kind.get(run.target.kind.value, 0) + 1
        report.cost_series.append((round(at / 60, 2), round(accrued, 4)))
        report.kind_series.append((round(at / 60, 2), by_kind))

    def apply(event: TraceEvent, event_index: int, at: float) -> None:
        target_key = state.find(event.target)
        if event.type == "arrive":
            report.arrivals += 1
            request = _parse(event, event_index)
            if request is None:
                report.refused += 1
                return
            records[request.key] = WorkloadRecord(
                arrived=at,
                duration_s=event.duration_minutes * 60,
                namespace=request.key.partition("/")[0],
                priority=request.priority,
                deadline_s=(request.deadline - state.start).total_seconds() if request.deadline else None,
                request_curve=tuple(event.request_curve) if event.request_curve else None,
            )
            queue[request.key] = request
        elif target_key is None:
            return
        elif event.type == "spotPrice":
            old_price, old_risk = state.prices[target_key]
            state.prices[target_key] = (
                event.gpu_hour_usd if event.gpu_hour_usd is not None else old_price,
                event.preemption_probability if event.preemption_probability is not None else old_risk,
            )
        elif event.type == "preempt":
            report.preemptions += interrupt(target_key, at)
        elif event.type == "outage":
            state.healthy[target_key] = False
            report.failovers += interrupt(target_key, at)
        elif event.type == "recover":
            state.healthy[target_key] = True
        elif event.type == "capacity" and event.gpus_total is not None:
            state.total[target_key] = event.gpus_total
            state.grow(target_key, event.gpus_total)

    while index < len(events) or completions:
        next_event = events[index][1].at if index < len(events) else float("inf")
        next_completion = completions[0][0] if completions else float("inf")
        clock = min(next_event, next_completion)
        while completions and completions[0][0] <= clock:
            end, key = heapq.heappop(completions)
            run = running.get(key)
            if run is not None and run.ends == end:  # else a stale entry of a run that was interrupted
                stop(key, end, finished=True)
        while index < len(events) and events[index][1].at <= clock:
            event_index, event = events[index]
            apply(event, event_index, clock)
            index += 1
            if progress is not None:
                progress(1)
        place(clock)
        if isinstance(strategy, EngineStrategy):
            estimate(clock, strategy.policy)
            conserving(clock, strategy.policy)
        record_point(clock)
        if index >= len(events) and not running:
            break
    for key in list(running):
        stop(key, clock, finished=False)
        report.running_at_end += 1
        queue.pop(key, None)
    final = state.snapshot(clock)
    judge_by = strategy.policy if isinstance(strategy, EngineStrategy) else judge
    for key, request in queue.items():  # never started: they waited the whole replay, and that counts
        if records[key].first_start is None:
            waited(records[key], (clock - records[key].arrived) / 60)
            (why,) = decide_many([request], {None: judge_by}, final, running=now_running())
            # A target the engine would choose on what is left means the strategy, not the fleet, kept it waiting.
            words = why.message if why.chosen is None else f"a target fits, this strategy did not use it: {why.message}"
            report.never_started.append((key.partition("#")[0], words))
            if request.latency_class is not LatencyClass.BATCH and request.latency_target_ms is not None:
                report.sla_total += 1  # a service that never ran met no one's target
    # Nothing runs and nothing arrives any more: a run with a deadline that has not finished never will.
    unfinished = [r for r in records.values() if r.deadline_s is not None and not r.finished]
    report.deadlines_judged += len(unfinished)
    report.deadline_misses += len(unfinished)
    report.total_cost_usd = cost
    report.waiting_at_end = len(queue)
    return report


StrategyFactory = Callable[[], Strategy]


def strategies_for(
    policies: Sequence[tuple[str, PlacementPolicySpec]], per_hour: bool = False
) -> list[tuple[str, StrategyFactory]]:
    """The engine under each policy (and, with ``per_hour``, under each priced per GPU-hour, blind to the work
    of a run), then the baselines; each made fresh for every replay (round-robin has state)."""

    def engine(policy: PlacementPolicySpec) -> StrategyFactory:
        return lambda: engine_strategy(policy)

    def blind(policy: PlacementPolicySpec) -> StrategyFactory:
        return lambda: per_hour_engine_strategy(policy)

    return [
        *((f"engine:{name}", engine(policy)) for name, policy in policies),
        *((f"engine:{name}:per-hour", blind(policy)) for name, policy in policies if per_hour),
        ("centralize", centralize_strategy),
        ("central-region", central_region_strategy),
        ("cheapest-first", cheapest_first_strategy),
        ("round-robin", round_robin_strategy),
    ]


# --- trace generation ---

DURATION_MINUTES = {WorkloadType.TRAINING: (60, 360), WorkloadType.BATCH: (20, 180), WorkloadType.INFERENCE: (120, 720)}


def generate_trace(fleet: Fleet, workloads: int, seed: int, hours: float = 24.0) -> Trace:
    """A realistic trace: arrivals spread over ``hours``, spot price moves, a preemption, an edge outage."""
    rng = random.Random(seed)
    regions = tuple(
        sorted(
            {p.region for p in fleet.pools}
            | {e.region for e in fleet.edge_clusters}
            | {w.region for w in fleet.databricks_workspaces}
        )
    )
    events: list[dict[str, Any]] = []
    horizon = hours * 3600
    for manifest in generate_workloads(workloads, seed, regions or ("eu-west-1",)):
        low, high = DURATION_MINUTES[WorkloadType(manifest["spec"]["type"])]
        events.append(
            {
                "at": round(rng.uniform(0, horizon * 0.8), 1),
                "type": "arrive",
                "workload": manifest,
                "durationMinutes": rng.randint(low, high),
            }
        )
    # Multi-node trainings, the biggest jobs users bring: a gang of 2-4 workers of a whole node each.
    node_sizes = sorted({p.gpus_per_node for p in fleet.pools if p.gpus_per_node}) or [8]
    for serial in range(max(1, workloads // 40)):
        gpus = rng.choice(node_sizes)
        manifest = {
            "apiVersion": "mlplacement.io/v1alpha1",
            "kind": "MLWorkload",
            "metadata": {"name": f"gang-{serial:03d}", "namespace": "team-research"},
            "spec": {
                "type": "Training",
                "image": "registry.example.com/research/pretrain:1",
                "resources": {"gpus": gpus, "workers": rng.choice([2, 3, 4])},
                "intent": {"dataRegion": rng.choice(regions or ("eu-west-1",)), "priority": rng.randint(100, 600)},
                "targets": {"allowed": ["GPUPool"]},
            },
        }
        events.append(
            {
                "at": round(rng.uniform(0, horizon * 0.8), 1),
                "type": "arrive",
                "workload": manifest,
                "durationMinutes": rng.randint(120, 480),
            }
        )
    spot_pools = [p.name for p in fleet.pools if p.capacity_type.value == "spot"]
    for pool in spot_pools:
        for _ in range(3):
            events.append(
                {
                    "at": round(rng.uniform(0, horizon), 1),
                    "type": "spotPrice",
                    "target": pool,
                    "preemptionProbability": round(rng.uniform(0.05, 0.4), 2),
                }
            )
        events.append({"at": round(rng.uniform(horizon * 0.2, horizon * 0.7), 1), "type": "preempt", "target": pool})
    healthy_edges = [e.name for e in fleet.edge_clusters if e.healthy]
    if healthy_edges:
        edge = rng.choice(healthy_edges)
        down = round(rng.uniform(horizon * 0.3, horizon * 0.5), 1)
        events.append({"at": down, "type": "outage", "target": edge})
        events.append({"at": round(down + rng.uniform(1800, 7200), 1), "type": "recover", "target": edge})
    if fleet.pools:
        grown = rng.choice(fleet.pools)
        events.append(
            {
                "at": round(rng.uniform(0, horizon), 1),
                "type": "capacity",
                "target": grown.name,
                "gpusTotal": grown.gpus_total * 2,
            }
        )
    events.sort(key=lambda e: (e["at"], e["type"]))
    return Trace.model_validate(
        {"apiVersion": "mlplacement.io/trace/v1", "kind": "Trace", "seed": seed, "events": events}
    )


def iter_reports(
    fleet: Fleet,
    trace: Trace,
    strategies: Sequence[tuple[str, StrategyFactory]],
    start: datetime,
    progress: Callable[[int], None] | None = None,
) -> Iterator[StrategyReport]:
    for name, make in strategies:
        yield simulate(fleet, trace, make(), name, start, progress)
