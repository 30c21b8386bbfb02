"""Hard filters, one small named function each, at three levels so whole groups are judged at once.

- kind filters see the workload, the policy and a target kind (e.g. "edge only below 50 ms");
- region filters also see one region (e.g. residency, data locality, latency feasibility);
- target filters see one target and the capacity still free on it.

Each returns None when the candidate passes, or a short reason phrased for humans that reads after a
count: "3 lack free GPUs (need 4)". Identical reasons are grouped in the decision's message.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import SpotPreference, TargetKind, WorkloadType
from mlplacement.core.kinds import KINDS
from mlplacement.core.latency import Queue, Served
from mlplacement.core.nodes import holding
from mlplacement.core.placement.request import PlacementRequest
from mlplacement.core.quantity import describe_cpu, describe_memory
from mlplacement.core.snapshot import Snapshot, Target

# Time a request spends inside the target before the model answers, by kind (ms): an edge site serves
# next to its callers, a pool behind a regional load balancer, Databricks only through job clusters.
SERVING_OVERHEAD_MS = {kind: facts.serving_overhead_ms for kind, facts in KINDS.items()}
# Hourly cost of a replica that asks for no GPU (CPU-only inference), so such work is still priced.
CPU_REPLICA_HOUR_USD = 0.1


@dataclass(frozen=True, slots=True)
class Context:
    """What filters and scorers may read besides the workload and the target."""

    policy: PlacementPolicySpec
    snapshot: Snapshot
    signals_fresh: bool
    # The tighter of the workload's and the policy's hourly budget, worked out once per decision.
    budget_usd: float | None = None


def round_trip_ms(source: str | None, target: Target, context: Context) -> float:
    """Network latency from ``source`` to the target plus its serving overhead. An edge's own measured round
    trip counts when it is worse than its region's: a slow link to one site is not hidden by a fast region."""
    network = context.snapshot.latency_ms(source, target.region)
    if target.rtt_ms is not None:
        network = max(network, target.rtt_ms)
    return network + SERVING_OVERHEAD_MS[target.kind]


def served_model(request: PlacementRequest, target: Target, context: Context) -> Served | None:
    """The latency model of ``request`` served on ``target`` (core.latency), when it declares its load."""
    if request.requests_per_second is None:
        return None
    sources = dict(request.requests_from) or {request.data_region or target.region: 1.0}
    total = sum(sources.values())
    speed = _relative_speed(request, target, context) if request.gpus > 0 else 1.0
    queue = Queue(max(1, request.replicas), request.requests_per_second, request.service_time_ms / speed)
    return Served(
        queue,
        {region: round_trip_ms(region, target, context) for region in sources},
        {region: share / total for region, share in sources.items()},
    )


def expected_latency_ms(request: PlacementRequest, target: Target, context: Context) -> float:
    """What a caller sees: with declared load, the latencyPercentile of requests predicted by the queueing model
    (network from each source plus wait and service at the replicas); else the round trip from the data's region
    plus the target's serving overhead."""
    served = served_model(request, target, context)
    if served is None:
        return round_trip_ms(request.data_region, target, context)
    return round(served.percentile_ms(request.latency_percentile / 100), 1)


def predicted_tail(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    """Declared load: the predicted tail at this target must meet the latency target (queueing included)."""
    if request.requests_per_second is None or request.latency_target_ms is None:
        return None
    tail = expected_latency_ms(request, target, context)
    if tail > request.latency_target_ms:
        return f"predicted p{request.latency_percentile} {tail:g}ms > {request.latency_target_ms:g}ms"
    return None


_TAIL_REASON = re.compile(r"^predicted (p\d+) ([\d.e+]+)ms > ([\d.e+]+)ms$")


def fold_tails(counts: Mapping[str, int]) -> Counter[str]:
    """Rejection counts with predicted tails folded: each tail is its own reason per target ("predicted p99 102ms
    > 95ms"), which read in a row as one line per target; several with one percentile and target read as one
    ("4 predicted p99 > 95ms (best 98ms)"). Other reasons are kept as they are."""
    folded: Counter[str] = Counter()
    tails: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for reason, count in counts.items():
        match = _TAIL_REASON.match(reason)
        if match is None:
            folded[reason] += count
        else:
            tails.setdefault((match[1], match[3]), []).append((float(match[2]), count))
    for (percentile, target), seen in tails.items():
        if len(seen) == 1:
            folded[f"predicted {percentile} {seen[0][0]:g}ms > {target}ms"] += seen[0][1]
        else:
            best = min(tail for tail, _ in seen)
            folded[f"predicted {percentile} > {target}ms (best {best:g}ms)"] += sum(count for _, count in seen)
    return folded


# Training throughput of one GPU relative to an A100, by family (first match in this order wins, so L40S is
# not read as L4 nor A100 as A10). Rough public figures for mixed-precision training; signals override them.
GPU_THROUGHPUT: tuple[tuple[str, float], ...] = (
    ("H100", 2.5),
    ("A100", 1.0),
    ("L40S", 0.8),
    ("A10G", 0.4),
    ("L4", 0.3),
    ("T4", 0.15),
)


SPOT_RESTART_HOURS = 5 / 60  # rescheduling and reloading after a preemption


def gpu_throughput(product: str | None, context: Context) -> float:
    """Relative training speed of one GPU of ``product`` (1.0 for an A100, and when unknown)."""
    if not product:
        return 1.0
    overrides = context.snapshot.signals.gpu_throughput_by_product if context.snapshot.signals is not None else {}
    if product in overrides:
        return overrides[product]
    upper = product.upper()
    for family, speed in GPU_THROUGHPUT:
        if family in upper:
            return overrides.get(family, speed)
    return 1.0


def work_hours(request: PlacementRequest, target: Target, context: Context) -> float | None:
    """How long one uninterrupted run takes on ``target``: its GPU-hours on the reference product, spread
    over its GPUs and scaled by their speed against the reference. None when the work is not known."""
    if request.expected_gpu_hours is None:
        return None
    return request.expected_gpu_hours / (max(1, request.gpus_needed) * _relative_speed(request, target, context))


def runtime_hours(request: PlacementRequest, target: Target, context: Context) -> float | None:
    """How long one run is expected to take on ``target``: work_hours() plus, on spot, the expected rework
    (see spot_rework_hours). None when the workload does not say how much work it is."""
    hours = work_hours(request, target, context)
    return None if hours is None else hours + spot_rework_hours(request, target, hours)


def spot_rework_hours(request: PlacementRequest, target: Target, hours: float) -> float:
    """Expected hours redone on a spot target: preemptions expected during the run (its hourly preemption
    probability times the hours), each losing half a checkpoint interval (half the run without checkpoints),
    plus a restart's overhead. Zero on on-demand capacity."""
    if not target.spot or target.preemption_probability <= 0:
        return 0.0
    preemptions = target.preemption_probability * hours
    lost = (request.checkpoint_interval_minutes / 60 / 2) if request.checkpoint_interval_minutes else hours / 2
    return preemptions * (min(lost, hours) + SPOT_RESTART_HOURS)


def egress_usd(request: PlacementRequest, target: Target, context: Context) -> float:
    """What moving one run's data to ``target`` costs (0 within its data's region)."""
    return round(request.data_size_gb * context.snapshot.egress_usd_per_gb(request.data_region, target.region), 4)


def job_cost_usd(request: PlacementRequest, target: Target, context: Context) -> float | None:
    """What one run costs on ``target``: its hours at the hourly price, plus moving its data there once."""
    hours = runtime_hours(request, target, context)
    if hours is None:
        return None
    return round(hourly_cost_usd(request, target) * hours + egress_usd(request, target, context), 4)


def served_replica_usd(request: PlacementRequest, target: Target, context: Context) -> float | None:
    """What one served replica costs an hour on ``target``: GPU inference sized on referenceGPUProduct
    serves ``speed`` replicas' worth of its load per replica on slower or faster GPUs, so the hourly price
    is divided by the replicas served, not deployed. None for other work, without GPUs, and when the load is
    declared: then the queueing model says what the deployed replicas serve (a faster GPU's shorter tail is
    its latency score), and the bill is for the replicas deployed, whatever their speed."""
    if request.type is not WorkloadType.INFERENCE or request.gpus <= 0 or request.requests_per_second is not None:
        return None
    speed = _relative_speed(request, target, context)
    return round(hourly_cost_usd(request, target) / (max(1, request.replicas) * speed), 4)


def _relative_speed(request: PlacementRequest, target: Target, context: Context) -> float:
    product = request.gpu_product or (min(target.gpu_products) if target.gpu_products else None)
    return gpu_throughput(product, context) / gpu_throughput(request.reference_gpu_product, context)


def served_cost_usd(request: PlacementRequest, target: Target, context: Context) -> float | None:
    """An hour of serving GPU inference's declared load on ``target`` (per served replica times the
    replicas it asked for); None for other work."""
    per_replica = served_replica_usd(request, target, context)
    return None if per_replica is None else round(per_replica * max(1, request.replicas), 4)


def comparable_cost_usd(request: PlacementRequest, target: Target, context: Context) -> float:
    """The price candidates are compared on: per job when the work of a run is known; for GPU inference
    an hour of serving its declared load; else per hour."""
    per_job = job_cost_usd(request, target, context)
    if per_job is not None:
        return per_job
    served = served_cost_usd(request, target, context)
    return served if served is not None else hourly_cost_usd(request, target)


def hourly_cost_usd(request: PlacementRequest, target: Target) -> float:
    if request.gpus > 0:
        gpu_cost = target.gpu_hour_usd * request.gpus_needed
    else:
        gpu_cost = CPU_REPLICA_HOUR_USD * request.replicas
    return round(target.base_hour_usd + gpu_cost, 4)


def _regions(regions: list[str]) -> str:
    return "[" + ", ".join(regions) + "]"


# --- kind level ---


def kind_allowed_by_workload(request: PlacementRequest, kind: TargetKind, context: Context) -> str | None:
    return None if kind in request.allowed else f"{kind.value} not allowed by the workload"


def kind_allowed_by_policy(request: PlacementRequest, kind: TargetKind, context: Context) -> str | None:
    return None if kind in context.policy.allowed_targets else f"{kind.value} not allowed by the policy"


def edge_only_for_low_latency(request: PlacementRequest, kind: TargetKind, context: Context) -> str | None:
    limit = context.policy.heuristics.edge_max_latency_ms
    if kind is TargetKind.EDGE and (request.latency_target_ms is None or request.latency_target_ms >= limit):
        return f"edge only for latency targets < {limit}ms"
    return None


def large_models_stay_central(request: PlacementRequest, kind: TargetKind, context: Context) -> str | None:
    limit = context.policy.heuristics.centralize_model_size_gb
    if kind is TargetKind.EDGE and request.model_size_gb > limit:
        return f"model {request.model_size_gb:g}GB > {limit:g}GB stays central"
    return None


def recurring_training_stays_central(request: PlacementRequest, kind: TargetKind, context: Context) -> str | None:
    frequencies = context.policy.heuristics.centralize_training_frequencies
    if kind is TargetKind.EDGE and request.type is WorkloadType.TRAINING and request.training_frequency in frequencies:
        return f"{request.training_frequency.value} training stays central"
    return None


def databricks_does_not_serve(request: PlacementRequest, kind: TargetKind, context: Context) -> str | None:
    if (
        kind is TargetKind.DATABRICKS
        and request.type is WorkloadType.INFERENCE
        and not context.policy.heuristics.databricks_for_inference
    ):
        return "Databricks does not serve inference"
    return None


def databricks_needs_a_task(request: PlacementRequest, kind: TargetKind, context: Context) -> str | None:
    if kind is TargetKind.DATABRICKS and not request.databricks_task:
        return "no spec.databricks task"
    return None


# --- region level ---


def residency(request: PlacementRequest, kind: TargetKind, region: str, context: Context) -> str | None:
    rules = context.policy.residency
    allowed = rules.by_data_region.get(request.data_region or "", rules.allowed_regions)
    if allowed and region not in allowed:
        return f"outside allowed regions {_regions(list(allowed))}"
    return None


def edge_needs_local_data(request: PlacementRequest, kind: TargetKind, region: str, context: Context) -> str | None:
    if (
        kind is TargetKind.EDGE
        and context.policy.heuristics.edge_requires_local_data
        and request.data_region is not None
        and region != request.data_region
    ):
        return f"data not local (in {request.data_region})"
    return None


def latency_feasible(request: PlacementRequest, kind: TargetKind, region: str, context: Context) -> str | None:
    if request.latency_target_ms is None or request.requests_per_second is not None:
        return None  # declared load: judged per target, on the predicted tail (predicted_tail)
    expected = context.snapshot.latency_ms(request.data_region, region) + SERVING_OVERHEAD_MS[kind]
    if expected > request.latency_target_ms:
        return f"too far for {request.latency_target_ms:g}ms latency"
    return None


# --- target level ---


def healthy(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    """Healthy, and not a target this workload's pods could not be scheduled on a moment ago.

    One filter for both: it runs for every workload and target, and ``avoid`` is almost always empty."""
    if not target.healthy:
        return f"unhealthy: {target.health_detail}" if target.health_detail else "unhealthy"
    if request.avoid and target.key in request.avoid:
        return "left after pods stayed unschedulable there"
    return None


def gpu_product(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    if request.gpu_product and target.gpu_products and request.gpu_product not in target.gpu_products:
        return f"lack {request.gpu_product} GPUs"
    return None


def model_fits_edge(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    limit = target.max_model_size_gb
    if target.kind is TargetKind.EDGE and limit is not None and request.model_size_gb > limit:
        return f"model {request.model_size_gb:g}GB > edge limit {limit:g}GB"
    return None


def edge_round_trip(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    """The region may be near enough while this edge's measured link is not."""
    if target.rtt_ms is None or request.latency_target_ms is None or request.requests_per_second is not None:
        return None
    if expected_latency_ms(request, target, context) > request.latency_target_ms:
        return f"too far for {request.latency_target_ms:g}ms latency (measured RTT {target.rtt_ms:g}ms)"
    return None


def spot_rules(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    if not target.spot:
        return None
    if request.spot is SpotPreference.NEVER:
        return "are spot (workload says spot: Never)"
    floor = context.policy.spot.min_priority_for_on_demand_only
    if floor is not None and request.priority >= floor:
        return f"are spot (priority >= {floor} runs on-demand)"
    if not context.signals_fresh:
        return "are spot with stale signals"
    if target.preemption_probability > context.policy.spot.max_preemption_probability:
        return f"preemption risk > {context.policy.spot.max_preemption_probability:.0%}"
    return None


def finishes_in_time(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    """A run that cannot end by its deadline, or within its maximum runtime, on this target."""
    if request.deadline is None and request.max_runtime_minutes is None:
        return None
    hours = runtime_hours(request, target, context)
    if hours is None:
        return None
    if request.max_runtime_minutes is not None and hours * 60 > request.max_runtime_minutes:
        return f"too slow for maxRuntimeMinutes {request.max_runtime_minutes} (a run takes {hours * 60:.0f} min)"
    if request.deadline is not None:
        # Its data must reach the target first: moving it counts against the deadline too.
        moving = context.snapshot.transfer_hours(request.data_size_gb, request.data_region, target.region)
        if context.snapshot.now + timedelta(hours=hours + moving) > request.deadline:
            by = request.deadline.astimezone(UTC)
            move = f" + {moving:.1f}h to move {request.data_size_gb:g} GB" if moving >= 0.05 else ""
            return f"cannot finish by {by:%Y-%m-%dT%H:%MZ} (a run takes {hours:.1f}h{move})"
    return None


def fits_at_all(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    """Work larger than the whole target never fits there: not worth waiting for (NoFeasibleTarget)."""
    if KINDS[target.kind].claims_gpus and 0 < target.gpus_total < request.gpus_needed:
        gpus = f"{target.gpus_total} GPU{'' if target.gpus_total == 1 else 's'}"
        return f"have {gpus} in all (need {request.gpus_needed})"
    if 0 < target.node_gpus < request.gpus:  # a pod's GPUs sit on one node
        return f"have no node with {request.gpus} GPUs (the largest has {target.node_gpus})"
    if request.cpu_millis > target.node_cpu_millis > 0:
        largest = describe_cpu(target.node_cpu_millis)
        return f"have no node with {describe_cpu(request.cpu_millis)} CPU (the largest has {largest})"
    if request.memory_bytes > target.node_memory_bytes > 0:
        return (
            f"have no node with {describe_memory(request.memory_bytes)} memory "
            f"(the largest has {describe_memory(target.node_memory_bytes)})"
        )
    if request.gang and target.node_sizes and request.gpus > 0:
        nodes = holding(target.node_sizes, request.gpus)
        if nodes < request.replicas:  # a gang's workers each need a node of their own
            return (
                f"have {nodes} nodes with {request.gpus} GPUs (a {request.replicas}-worker gang needs a node per "
                "worker)"
            )
    return None


def node_room(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    """Some node must have the pod's GPUs, CPU and memory free at once (as the scheduler's NodeResourcesFit
    checks). Read from the snapshot: claims a round makes are counted in GPUs only."""
    if not target.node_room:
        return None
    key = (target.key, request.gpus, request.cpu_millis, request.memory_bytes)
    verdicts = context.snapshot.room_verdicts
    fits = verdicts.get(key)
    if fits is None:
        gpus, cpu, memory = request.gpus, request.cpu_millis, request.memory_bytes
        fits = verdicts[key] = any(g >= gpus and c >= cpu and m >= memory for g, c, m in target.node_room)
    if fits:
        return None
    return (
        f"have no node with {request.gpus} GPUs, {describe_cpu(request.cpu_millis)} CPU and "
        f"{describe_memory(request.memory_bytes)} memory free"
    )


def capacity(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    need, lacking = capacity_need(request, target.kind)
    return None if need <= free else lacking


def capacity_need(request: PlacementRequest, kind: TargetKind) -> tuple[int, str]:
    """What ``request`` claims on a target of ``kind`` and the capacity filter's reason when it is not free."""
    if not KINDS[kind].claims_gpus:
        return 1, "have no free run slots"
    need = request.gpus_needed
    # The reason of most rejections in a busy round: formatted once per size, not per target.
    reason = _LACKING.get(need)
    if reason is None:
        reason = _LACKING[need] = f"lack free GPUs (need {need})"
    return need, reason


_LACKING: dict[int, str] = {}


def budget_limit(request: PlacementRequest, policy: PlacementPolicySpec) -> float | None:
    limits = [
        limit
        for limit in (request.max_hourly_cost_usd, policy.budget.max_hourly_cost_usd_per_workload)
        if limit is not None
    ]
    return min(limits) if limits else None


def budget(request: PlacementRequest, target: Target, free: int, context: Context) -> str | None:
    limit = context.budget_usd
    if limit is not None and hourly_cost_usd(request, target) > limit:
        # Both said: raising the budget alone would not place it on a target that is full as well.
        full = KINDS[target.kind].claims_gpus and request.gpus_needed > free
        return f"over budget ${limit:g}/h" + (" and lack free GPUs" if full else "")
    return None


KindFilter = Callable[[PlacementRequest, TargetKind, Context], str | None]
RegionFilter = Callable[[PlacementRequest, TargetKind, str, Context], str | None]
TargetFilter = Callable[[PlacementRequest, Target, int, Context], str | None]

KIND_FILTERS: tuple[KindFilter, ...] = (
    kind_allowed_by_workload,
    kind_allowed_by_policy,
    databricks_does_not_serve,
    databricks_needs_a_task,
    edge_only_for_low_latency,
    large_models_stay_central,
    recurring_training_stays_central,
)
REGION_FILTERS: tuple[RegionFilter, ...] = (residency, edge_needs_local_data, latency_feasible)


def region_traits(request: PlacementRequest) -> tuple[object, ...]:
    """All REGION_FILTERS read of a request: under one policy and snapshot, requests alike here get the same
    region verdicts, so a batch computes them once per distinct traits (tests/unit/test_placement_shortcuts.py)."""
    return (request.data_region, request.latency_target_ms, request.requests_per_second is not None)


# Capacity comes late: a target rejected for capacity alone is worth waiting for, others are not.
TARGET_FILTERS: tuple[TargetFilter, ...] = (
    healthy,
    gpu_product,
    model_fits_edge,
    edge_round_trip,
    predicted_tail,
    spot_rules,
    budget,
    finishes_in_time,
    fits_at_all,
    node_room,
    capacity,
)
TRANSIENT_FILTERS: frozenset[TargetFilter] = frozenset({capacity, healthy, node_room})

# When a target filter can reject anything at all: one that cannot, for this workload on targets of this kind,
# is left out of that decision's loop over targets (the hottest loop of a round). Order and reasons stay.
_CAN_REJECT: dict[TargetFilter, Callable[[PlacementRequest, TargetKind, Context], bool]] = {
    gpu_product: lambda request, kind, context: bool(request.gpu_product),
    model_fits_edge: lambda request, kind, context: kind is TargetKind.EDGE,
    edge_round_trip: lambda request, kind, context: (
        request.latency_target_ms is not None and kind in context.snapshot.rtt_kinds
    ),
    predicted_tail: lambda request, kind, context: (
        request.requests_per_second is not None and request.latency_target_ms is not None
    ),
    spot_rules: lambda request, kind, context: kind in context.snapshot.spot_kinds,
    budget: lambda request, kind, context: context.budget_usd is not None,
    finishes_in_time: lambda request, kind, context: (
        request.deadline is not None or request.max_runtime_minutes is not None
    ),
    fits_at_all: lambda request, kind, context: KINDS[kind].claims_gpus,
    node_room: lambda request, kind, context: (
        (request.cpu_millis > 0 or request.memory_bytes > 0) and kind in context.snapshot.room_kinds
    ),
}


def target_filters_for(request: PlacementRequest, kind: TargetKind, context: Context) -> tuple[TargetFilter, ...]:
    """TARGET_FILTERS, in order, without those that cannot reject ``request`` on a target of ``kind``."""
    snapshot = context.snapshot
    case = (
        kind,
        bool(request.gpu_product),
        request.latency_target_ms is not None,
        request.requests_per_second is not None,
        context.budget_usd is not None,
        request.deadline is not None or request.max_runtime_minutes is not None,
        kind in snapshot.spot_kinds,
        kind in snapshot.rtt_kinds,
        (request.cpu_millis > 0 or request.memory_bytes > 0) and kind in snapshot.room_kinds,
    )
    found = _FILTERS_BY_CASE.get(case)
    if found is None:
        found = tuple(f for f in TARGET_FILTERS if f not in _CAN_REJECT or _CAN_REJECT[f](request, kind, context))
        _FILTERS_BY_CASE[case] = found
    return found


# Filters whose verdict on a target depends on what is free there (capacity, and budget's message): never memoized.
FREE_DEPENDENT: frozenset[TargetFilter] = frozenset({budget, capacity})


def static_traits(
    request: PlacementRequest, kind: TargetKind, checks: tuple[TargetFilter, ...], context: Context
) -> tuple[object, ...]:
    """All ``checks`` (target filters that ignore what is free) read of a request and the context: under one
    policy and snapshot, requests alike here get the same verdict on every target of ``kind``, so a batch
    computes them once per distinct traits (tests/unit/test_placement_shortcuts.py)."""
    traits: list[object] = [kind, checks, request.avoid, context.signals_fresh]
    if gpu_product in checks:
        traits.append(request.gpu_product)
    if model_fits_edge in checks:
        traits.append(request.model_size_gb)
    if edge_round_trip in checks:
        traits += (request.latency_target_ms, request.data_region, request.requests_per_second is not None)
    if predicted_tail in checks:
        traits += (
            request.latency_target_ms,
            request.data_region,
            request.requests_per_second,
            request.requests_from,
            request.latency_percentile,
            request.service_time_ms,
            request.replicas,
            request.gpus,
            request.gpu_product,
            request.reference_gpu_product,
        )
    if spot_rules in checks:
        floor = context.policy.spot.min_priority_for_on_demand_only
        traits += (request.spot, floor is not None and request.priority >= floor)
    if finishes_in_time in checks:
        traits += (
            request.expected_gpu_hours,
            request.deadline,
            request.max_runtime_minutes,
            request.gpus_needed,
            request.gpu_product,
            request.reference_gpu_product,
            request.checkpoint_interval_minutes,
            request.deadline is not None and request.data_size_gb,  # moving the data counts against a deadline
            request.deadline is not None and request.data_region,
        )
    if fits_at_all in checks:
        traits += (
            request.gpus_needed,
            request.gpus,
            request.gang and request.replicas,
            request.cpu_millis,
            request.memory_bytes,
        )
    return tuple(traits)


# Keyed by everything _CAN_REJECT reads (a test keeps the two in step): a few dozen cases per process.
_FILTERS_BY_CASE: dict[tuple[object, ...], tuple[TargetFilter, ...]] = {}
