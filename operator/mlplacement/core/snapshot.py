"""An immutable snapshot of the fleet: every placeable target plus the signals, at one instant.

Targets are few (tens to hundreds: pools, edge clusters, workspaces), never nodes. The snapshot is built
either from raw Kubernetes object dicts (the operator) or from a fleet file (explain, demo, simulator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mlplacement.api.constants import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    LABEL_PLACEHOLDER_FOR,
    POOL_LABEL_KEYS,
    REGION_LABEL,
)
from mlplacement.api.fleet import CapacityType, Fleet
from mlplacement.api.signals import DEFAULT_BANDWIDTH_GBPS, SIGNALS_DATA_KEY, Signals, parse_signals
from mlplacement.api.workload import TargetKind
from mlplacement.core.nodes import Domain, Domains, reserve, reserve_domains
from mlplacement.core.quantity import cpu_millis, memory_bytes

# Spot labels of the common node provisioners (Karpenter, GKE, EKS, AKS) and the values that mean "spot".
SPOT_LABELS: Mapping[str, frozenset[str]] = {
    "karpenter.sh/capacity-type": frozenset({"spot"}),
    "cloud.google.com/gke-spot": frozenset({"true"}),
    "cloud.google.com/gke-preemptible": frozenset({"true"}),
    "eks.amazonaws.com/capacityType": frozenset({"SPOT"}),
    "kubernetes.azure.com/scalesetpriority": frozenset({"spot"}),
}
PRESSURE_CONDITIONS = frozenset({"MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"})
TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})
# Price of a GPU hour when neither the fleet nor the signals know the product: pessimistic on purpose.
UNKNOWN_GPU_HOUR_USD = 4.0
# A probe older than this many intervals means the edge cluster's health is unknown.
EDGE_STALE_PROBE_INTERVALS = 3
DEFAULT_EDGE_PROBE_INTERVAL_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Target:
    """One placeable target, whatever its kind. ``capacity`` is free GPUs (pools, edge) or run slots."""

    kind: TargetKind
    name: str
    region: str
    healthy: bool = True
    health_detail: str = ""
    capacity: int = 0
    gpu_products: frozenset[str] = frozenset()  # empty: any product (Databricks picks node types itself)
    max_model_size_gb: float | None = None
    gpu_hour_usd: float = 0.0
    base_hour_usd: float = 0.0
    spot: bool = False
    preemption_probability: float = 0.0
    gpus_total: int = 0
    rtt_ms: float | None = None  # an edge's measured round trip (its probe, or the fleet file's rttMs)
    # Free GPUs per schedulable node, smallest first (core.nodes): a pod's GPUs must sit on one node. Empty when
    # the node shapes are not known (a fleet file pool without them: one bucket of GPUs, as before).
    blocks: tuple[int, ...] = ()
    node_gpus: int = 0  # the most GPUs one node has (allocatable); 0 when not known
    # GPUs per schedulable node (allocatable), smallest first: how many nodes a gang's workers could ever take.
    node_sizes: tuple[int, ...] = ()
    # The topology labels policies name (a rack, an NVLink domain) and the free blocks per domain (a node's values
    # of them, "" where it has none): a gang may be held to one block. Empty when no policy names one.
    domain_labels: tuple[str, ...] = ()
    domains: Domains = ()
    # Where in the target a gang was placed: (label, value) its pods are pinned to; set on a decision only.
    pin: tuple[str, str] | None = None
    # Per schedulable node (free GPUs, free CPU millicores, free memory bytes), from Nodes and the requests of
    # their pods; and the most CPU and memory one node has. Empty/0 when not known (fleet files, edges).
    node_room: tuple[tuple[int, int, int], ...] = ()
    node_cpu_millis: int = 0
    node_memory_bytes: int = 0
    # (kind, name), precomputed: placement looks it up for every candidate of every decision.
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.kind.value, self.name))


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    targets: tuple[Target, ...]
    signals: Signals | None = None
    # Kind -> region -> targets, built once so placement filters a whole region at a time.
    by_kind_region: Mapping[TargetKind, Mapping[str, tuple[Target, ...]]] = field(init=False, repr=False)
    by_kind: Mapping[TargetKind, tuple[Target, ...]] = field(init=False, repr=False)
    # Kinds with a spot target, and with a target whose round trip was measured: the filters that look at
    # those are skipped for other kinds.
    spot_kinds: frozenset[TargetKind] = field(init=False, repr=False)
    rtt_kinds: frozenset[TargetKind] = field(init=False, repr=False)
    # Kinds with a target whose nodes' free CPU and memory are known; and the verdicts of the node-room filter
    # by (target, GPUs, CPU, memory), which many requests of a round share.
    room_kinds: frozenset[TargetKind] = field(init=False, repr=False)
    room_verdicts: dict[tuple[object, ...], bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.targets, key=lambda t: (t.kind.value, t.name)))
        object.__setattr__(self, "targets", ordered)
        grouped: dict[TargetKind, dict[str, list[Target]]] = {}
        for target in ordered:
            grouped.setdefault(target.kind, {}).setdefault(target.region, []).append(target)
        object.__setattr__(
            self,
            "by_kind_region",
            {kind: {region: tuple(ts) for region, ts in sorted(regions.items())} for kind, regions in grouped.items()},
        )
        object.__setattr__(
            self,
            "by_kind",
            {kind: tuple(t for ts in regions.values() for t in ts) for kind, regions in self.by_kind_region.items()},
        )
        object.__setattr__(self, "spot_kinds", frozenset(t.kind for t in ordered if t.spot))
        object.__setattr__(self, "rtt_kinds", frozenset(t.kind for t in ordered if t.rtt_ms is not None))
        object.__setattr__(self, "room_kinds", frozenset(t.kind for t in ordered if t.node_room))

    @property
    def signals_age_seconds(self) -> float | None:
        return None if self.signals is None else (self.now - self.signals.updated_at).total_seconds()

    def signals_fresh(self, max_age_seconds: int | None = None) -> bool:
        age = self.signals_age_seconds
        if age is None or self.signals is None:
            return False
        limit = self.signals.ttl_seconds if max_age_seconds is None else min(max_age_seconds, self.signals.ttl_seconds)
        return age <= limit

    def latency_ms(self, source: str | None, destination: str) -> float:
        """Round trip between regions; unknown pairs are assumed far (150 ms), never near."""
        signals = self.signals
        intra = signals.intra_region_latency_ms if signals is not None else 2.0
        if source is None or source == destination:
            return intra
        if signals is not None:
            known = signals.latency_ms.get(source, {}).get(destination)
            if known is None:
                known = signals.latency_ms.get(destination, {}).get(source)
            if known is not None:
                return known
        return 150.0

    def egress_usd_per_gb(self, source: str | None, destination: str) -> float:
        if source is None or source == destination:
            return 0.0
        if self.signals is None:
            return 0.09
        override = self.signals.egress_usd_per_gb_overrides.get(source, {}).get(destination)
        return override if override is not None else self.signals.egress_usd_per_gb

    def transfer_hours(self, gigabytes: float, source: str | None, destination: str) -> float:
        """How long moving ``gigabytes`` from ``source`` to ``destination`` takes (0 within a region)."""
        if source is None or source == destination or gigabytes <= 0:
            return 0.0
        gbps = DEFAULT_BANDWIDTH_GBPS
        if self.signals is not None:
            overrides = self.signals.bandwidth_gbps_overrides
            known = overrides.get(source, {}).get(destination) or overrides.get(destination, {}).get(source)
            gbps = known if known is not None else self.signals.bandwidth_gbps
        return gigabytes * 8 / gbps / 3600

    def carbon_g_per_kwh(self, region: str) -> float | None:
        return None if self.signals is None else self.signals.carbon_g_per_kwh.get(region)


def _pool_price(signals: Signals | None, pool: str, product: str, spot: bool) -> tuple[float, float]:
    """(GPU-hour price, preemption probability) of a pool from the signals, with documented fallbacks."""
    pool_signal = signals.pools.get(pool) if signals is not None else None
    on_demand = (signals.gpu_hour_usd_by_product.get(product) if signals is not None else None) or UNKNOWN_GPU_HOUR_USD
    price = pool_signal.gpu_hour_usd if pool_signal is not None and pool_signal.gpu_hour_usd is not None else None
    if price is None:
        price = on_demand * (1 - signals.spot_discount) if spot and signals is not None else on_demand
    risk = pool_signal.preemption_probability if pool_signal is not None else None
    if risk is None:
        risk = 0.0 if not spot else 0.2  # spot with no forecast: assume the typical rate, not zero
    return price, risk


def snapshot_from_fleet(fleet: Fleet, now: datetime) -> Snapshot:
    """A snapshot from a fleet file; ``now`` is used when the file pins no instant."""
    signals = fleet.signals
    targets: list[Target] = []
    for pool in fleet.pools:
        spot = pool.capacity_type is CapacityType.SPOT
        price, risk = _pool_price(signals, pool.name, pool.gpu_product, spot)
        blocks, sizes = pool.node_blocks()
        targets.append(
            Target(
                kind=TargetKind.GPU_POOL,
                name=pool.name,
                region=pool.region,
                healthy=pool.healthy,
                health_detail="" if pool.healthy else "no ready nodes",
                capacity=pool.gpus_total if pool.gpus_free is None else min(pool.gpus_free, pool.gpus_total),
                gpu_products=frozenset({pool.gpu_product}) if pool.gpu_product else frozenset(),
                gpu_hour_usd=pool.gpu_hour_usd if pool.gpu_hour_usd is not None else price,
                spot=spot,
                preemption_probability=(
                    pool.preemption_probability if pool.preemption_probability is not None else risk
                ),
                gpus_total=pool.gpus_total,
                blocks=blocks,
                node_gpus=max(sizes, default=0),
                node_sizes=sizes,
            )
        )
    for edge in fleet.edge_clusters:
        stale = edge.last_probe_age_seconds > EDGE_STALE_PROBE_INTERVALS * DEFAULT_EDGE_PROBE_INTERVAL_SECONDS
        detail = "probe failing" if not edge.healthy else ("probe stale" if stale else "")
        targets.append(
            Target(
                kind=TargetKind.EDGE,
                name=edge.name,
                region=edge.region,
                healthy=not detail,
                health_detail=detail,
                capacity=edge.gpus_free,
                gpu_products=frozenset(edge.gpu_products),
                max_model_size_gb=edge.max_model_size_gb,
                gpu_hour_usd=edge.gpu_hour_usd,
                base_hour_usd=edge.base_hour_usd,
                gpus_total=edge.gpus_free,
                rtt_ms=edge.rtt_ms,
            )
        )
    for workspace in fleet.databricks_workspaces:
        targets.append(
            Target(
                kind=TargetKind.DATABRICKS,
                name=workspace.name,
                region=workspace.region,
                healthy=workspace.healthy,
                health_detail="" if workspace.healthy else "workspace unreachable",
                capacity=workspace.free_run_slots,
                gpu_hour_usd=workspace.gpu_hour_usd,
                base_hour_usd=workspace.base_hour_usd,
            )
        )
    return Snapshot(now=fleet.decision_time(now), targets=tuple(targets), signals=signals)


# --- From live Kubernetes objects (plain dicts, as the API returns them) ---


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def pool_of(node: Mapping[str, Any], pool_label_keys: Iterable[str] = POOL_LABEL_KEYS) -> str | None:
    labels = _labels(node)
    return next((labels[key] for key in pool_label_keys if labels.get(key)), None)


def node_is_spot(node: Mapping[str, Any]) -> bool:
    labels = _labels(node)
    return any(labels.get(key) in values for key, values in SPOT_LABELS.items())


# Taints the usual providers' tools put on a node about to go away: work there should checkpoint and move.
INTERRUPTION_TAINTS: Mapping[str, str] = {
    "aws-node-termination-handler/spot-itn": "EC2 spot interruption notice",
    "aws-node-termination-handler/rebalance-recommendation": "EC2 rebalance recommendation",
    "aws-node-termination-handler/asg-lifecycle-termination": "EC2 Auto Scaling termination",
    "aws-node-termination-handler/scheduled-maintenance": "EC2 scheduled maintenance",
    "karpenter.sh/disrupted": "Karpenter disrupting the node",
    "karpenter.sh/disruption": "Karpenter disrupting the node",
    "cloud.google.com/impending-node-termination": "GCE preemption notice",
    "ToBeDeletedByClusterAutoscaler": "cluster-autoscaler removing the node",
}


def node_interruption(node: Mapping[str, Any]) -> str | None:
    """Why a node is about to be reclaimed (its first interruption taint, by the provider's words), or None."""
    for taint in (node.get("spec") or {}).get("taints") or []:
        what = INTERRUPTION_TAINTS.get(str(taint.get("key")))
        if what is not None:
            return f"{what} ({taint.get('key')})"
    return None


def node_health_problem(node: Mapping[str, Any]) -> str | None:
    """Why a node cannot take work, or None if it is Ready, schedulable and under no pressure."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned"
    interruption = node_interruption(node)
    if interruption is not None:
        return f"being reclaimed: {interruption}"
    conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    if conditions.get("Ready") != "True":
        return "not Ready"
    pressure = sorted(kind for kind in PRESSURE_CONDITIONS if conditions.get(kind) == "True")
    return f"{pressure[0]}" if pressure else None


def gpu_count(value: Any) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _container_gpus(container: Mapping[str, Any]) -> int:
    resources = container.get("resources") or {}
    # Extended resources must have requests == limits; either one names the claim.
    return gpu_count(
        (resources.get("requests") or {}).get(GPU_RESOURCE) or (resources.get("limits") or {}).get(GPU_RESOURCE)
    )


def _effective(spec: Mapping[str, Any], amount: Callable[[Mapping[str, Any]], int]) -> int:
    """A pod's effective request of one resource, by the scheduler's rule: the larger of the app containers
    plus sidecars (init containers with restartPolicy Always, which keep running) and the peak of any one plain
    init container plus the sidecars started before it."""
    sidecars = 0
    init_peak = 0
    for container in spec.get("initContainers") or []:
        if container.get("restartPolicy") == "Always":
            sidecars += amount(container)
        else:
            init_peak = max(init_peak, sidecars + amount(container))
    return max(sum(amount(c) for c in spec.get("containers") or []) + sidecars, init_peak)


def pod_gpu_requests(pod: Mapping[str, Any]) -> int:
    """GPUs a pod (or pod template) holds, by the scheduler's rule for its effective request. The one rule for
    the snapshot, the caches and the capacity ledger."""
    return _effective(pod.get("spec") or {}, _container_gpus)


def _request_of(resource: str, parse: Callable[[object], int]) -> Callable[[Mapping[str, Any]], int]:
    def amount(container: Mapping[str, Any]) -> int:
        return parse(((container.get("resources") or {}).get("requests") or {}).get(resource))

    return amount


_CPU = _request_of("cpu", cpu_millis)
_MEMORY = _request_of("memory", memory_bytes)


def pod_cpu_memory_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """(CPU millicores, memory bytes) a pod requests, by the same rule as its GPUs."""
    spec = pod.get("spec") or {}
    return _effective(spec, _CPU), _effective(spec, _MEMORY)


def cpu_memory_used_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """(CPU millicores, memory bytes) requested by non-terminal pods, by node name."""
    used: dict[str, tuple[int, int]] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name and (pod.get("status") or {}).get("phase") not in TERMINAL_POD_PHASES:
            cpu, memory = pod_cpu_memory_requests(pod)
            before = used.get(node_name, (0, 0))
            used[node_name] = (before[0] + cpu, before[1] + memory)
    return used


def pod_gpu_share(pod: Mapping[str, Any]) -> tuple[str, int] | None:
    """(node, GPUs) a pod takes of its node's allocatable: bound, not terminal, not a pre-warming placeholder
    (any real pod preempts those, so for placement their GPUs are free); None when it takes nothing."""
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name or _labels(pod).get(LABEL_PLACEHOLDER_FOR):
        return None
    if (pod.get("status") or {}).get("phase") in TERMINAL_POD_PHASES:
        return None
    gpus = pod_gpu_requests(pod)
    return (str(node_name), gpus) if gpus else None


def gpus_used_by_node(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """GPUs requested by non-terminal pods, by node name (the part of allocatable that is not free)."""
    used: dict[str, int] = {}
    for pod in pods:
        share = pod_gpu_share(pod)
        if share is not None:
            used[share[0]] = used.get(share[0], 0) + share[1]
    return used


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What placement reads of one GPU node of a pool, parsed once per change of the Node, not once per round."""

    name: str
    pool: str
    gpus: int  # allocatable
    region: str
    product: str
    spot: bool
    problem: str | None  # why it takes no work (core.snapshot.node_health_problem), None when it does
    cpu_millis: int
    memory_bytes: int
    labels: Mapping[str, str]  # for topology blocks, read only when a policy asks for them


def node_facts(node: Mapping[str, Any], pool_label_keys: Iterable[str] = POOL_LABEL_KEYS) -> NodeFacts | None:
    """A node's facts, or None when it is in no pool or has no GPUs."""
    pool = pool_of(node, pool_label_keys)
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    gpus = gpu_count(allocatable.get(GPU_RESOURCE))
    if pool is None or gpus <= 0:
        return None
    labels = _labels(node)
    return NodeFacts(
        name=str((node.get("metadata") or {}).get("name", "")),
        pool=pool,
        gpus=gpus,
        region=labels.get(REGION_LABEL, "unknown"),
        product=labels.get(GPU_PRODUCT_LABEL, ""),
        spot=node_is_spot(node),
        problem=node_health_problem(node),
        cpu_millis=cpu_millis(allocatable.get("cpu")),
        memory_bytes=memory_bytes(allocatable.get("memory")),
        labels=dict(labels),
    )


def gpu_pools_from_nodes(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    signals: Signals | None,
    pool_label_keys: Iterable[str] = POOL_LABEL_KEYS,
    topology_labels: tuple[str, ...] = (),
    cpu_memory_used: Mapping[str, tuple[int, int]] | None = None,
) -> list[Target]:
    """Group GPU nodes into pools; free GPUs = allocatable minus requests of non-terminal pods. With
    ``topology_labels``, each pool's free blocks are also kept per domain (the nodes' values of those labels)."""
    keys = tuple(pool_label_keys)
    pods = list(pods)
    facts = [found for node in nodes if (found := node_facts(node, keys)) is not None]
    # The operator passes what every pod of a node requests (its GPU pod cache holds only pods with GPUs).
    cpu_memory = cpu_memory_used_by_node(pods) if cpu_memory_used is None else cpu_memory_used
    return gpu_pools_from_facts(facts, gpus_used_by_node(pods), signals, topology_labels, cpu_memory)


def gpu_pools_from_facts(
    facts: Iterable[NodeFacts],
    used_by_node: Mapping[str, int],
    signals: Signals | None,
    topology_labels: tuple[str, ...] = (),
    cpu_memory_used: Mapping[str, tuple[int, int]] | None = None,
) -> list[Target]:
    """gpu_pools_from_nodes over nodes parsed already (``facts``) and the GPUs their pods take (``used_by_node``):
    what a round does, so it never parses a node's labels and quantities again."""
    cpu_memory = cpu_memory_used or {}
    pools: dict[str, dict[str, Any]] = {}
    for node in facts:
        entry = pools.get(node.pool)
        if entry is None:
            entry = pools[node.pool] = {
                "region": node.region,
                "products": set(),
                "total": 0,
                "free": 0,
                "blocks": [],
                "room": [],
                "cpu": 0,
                "memory": 0,
                "domains": {},
                "sizes": [],
                "node_gpus": 0,
                "ready": 0,
                "nodes": 0,
                "spot": False,
                "problems": set(),
            }
        entry["nodes"] += 1
        entry["spot"] = entry["spot"] or node.spot
        if node.product:
            entry["products"].add(node.product)
        if node.problem is not None:
            entry["problems"].add(node.problem)
            continue
        allocatable = node.gpus
        entry["ready"] += 1
        entry["total"] += allocatable
        free = max(0, allocatable - used_by_node.get(node.name, 0))
        entry["free"] += free
        entry["blocks"].append(free)
        entry["sizes"].append(allocatable)
        cpu, memory = node.cpu_millis, node.memory_bytes
        if cpu and memory:
            cpu_used, memory_used = cpu_memory.get(node.name, (0, 0))
            entry["room"].append((free, max(0, cpu - cpu_used), max(0, memory - memory_used)))
            entry["cpu"], entry["memory"] = max(entry["cpu"], cpu), max(entry["memory"], memory)
        if topology_labels:
            domain: Domain = tuple(str(node.labels.get(label) or "") for label in topology_labels)
            entry["domains"].setdefault(domain, []).append(free)
        entry["node_gpus"] = max(entry["node_gpus"], allocatable)
    targets = []
    for name, entry in sorted(pools.items()):
        product = min(entry["products"]) if entry["products"] else ""
        price, risk = _pool_price(signals, name, product, entry["spot"])
        healthy = entry["ready"] > 0
        targets.append(
            Target(
                kind=TargetKind.GPU_POOL,
                name=name,
                region=entry["region"],
                healthy=healthy,
                health_detail="" if healthy else f"no ready nodes ({', '.join(sorted(entry['problems']))})",
                capacity=entry["free"],
                gpu_products=frozenset(entry["products"]),
                gpu_hour_usd=price,
                spot=entry["spot"],
                preemption_probability=risk,
                gpus_total=entry["total"],
                blocks=tuple(sorted(entry["blocks"])),
                node_gpus=entry["node_gpus"],
                node_sizes=tuple(sorted(entry["sizes"])),
                # Known only when every ready node says its CPU and memory (else no node-room check at all).
                # Sorted as blocks are: a node's room is read as one of a set, in no order.
                node_room=tuple(sorted(entry["room"])) if len(entry["room"]) == len(entry["blocks"]) else (),
                node_cpu_millis=entry["cpu"],
                node_memory_bytes=entry["memory"],
                domain_labels=topology_labels if entry["domains"] else (),
                domains=tuple((d, tuple(sorted(b))) for d, b in sorted(entry["domains"].items())),
            )
        )
    return targets


def signals_from_configmap(configmap: Mapping[str, Any] | None) -> tuple[Signals | None, str | None]:
    """(signals, problem): a missing or invalid ConfigMap yields no signals and says why."""
    if configmap is None:
        return None, "signals ConfigMap not found"
    text = (configmap.get("data") or {}).get(SIGNALS_DATA_KEY)
    if not text:
        return None, f"signals ConfigMap has no {SIGNALS_DATA_KEY} key"
    try:
        return parse_signals(text), None
    except ValueError as exc:
        return None, f"signals ConfigMap is invalid: {str(exc).splitlines()[0]}"


def _condition(obj: Mapping[str, Any], kind: str) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def _probe_age(obj: Mapping[str, Any], now: datetime) -> float | None:
    stamp = (obj.get("status") or {}).get("lastProbeTime")
    if not stamp:
        return None
    try:
        return (now - datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return None


def edge_targets(edges: Iterable[Mapping[str, Any]], now: datetime) -> list[Target]:
    """EdgeClusters with their probed health; a stale probe counts as unhealthy."""
    targets = []
    for obj in edges:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        capabilities = spec.get("capabilities") or {}
        cost = spec.get("cost") or {}
        interval = float((spec.get("probe") or {}).get("intervalSeconds", DEFAULT_EDGE_PROBE_INTERVAL_SECONDS))
        age = _probe_age(obj, now)
        ready = _condition(obj, "Ready") == "True"
        detail = ""
        if age is None:
            detail = "never probed"
        elif age > EDGE_STALE_PROBE_INTERVALS * interval:
            detail = f"probe stale ({int(age)}s old)"
        elif not ready:
            detail = str(status.get("message") or "not Ready")[:120]
        targets.append(
            Target(
                kind=TargetKind.EDGE,
                name=(obj.get("metadata") or {}).get("name", ""),
                region=spec.get("region", "unknown"),
                healthy=not detail,
                health_detail=detail,
                capacity=int(status.get("gpusFree") or 0),
                gpu_products=frozenset(capabilities.get("gpuProducts") or ()),
                max_model_size_gb=float(capabilities.get("maxModelSizeGB", 2.0)),
                gpu_hour_usd=float(cost.get("gpuHourUSD", 0.0)),
                base_hour_usd=float(cost.get("baseHourUSD", 0.0)),
                gpus_total=int(status.get("gpusAllocatable") or 0),
                rtt_ms=_rtt(status.get("rttMs")),
                **_edge_nodes(status),
            )
        )
    return targets


def _edge_nodes(status: Mapping[str, Any]) -> dict[str, Any]:
    """An edge's node shapes as its probe reported them (none from an older operator: one bucket of GPUs)."""
    sizes = [gpu_count(n) for n in status.get("gpusByNode") or []]
    free = [gpu_count(n) for n in status.get("freeGPUsByNode") or []]
    if not sizes or len(free) != len(sizes):
        return {}
    return {"blocks": tuple(sorted(free)), "node_sizes": tuple(sorted(sizes)), "node_gpus": max(sizes)}


def workspace_targets(
    workspaces: Iterable[Mapping[str, Any]], active_runs: Mapping[str, int] | None = None
) -> list[Target]:
    """Workspaces with their free run slots. ``active_runs`` is the operator's own live count; the count in
    status is only as fresh as the last probe. The larger counts: a run submitted since the probe holds its
    slot at once, and right after a restart, before every run is adopted again, the probe's count still holds."""
    targets = []
    for obj in workspaces:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        cost = spec.get("cost") or {}
        ready = _condition(obj, "Ready") == "True"
        name = (obj.get("metadata") or {}).get("name", "")
        active = max((active_runs or {}).get(name, 0), int(status.get("activeRuns") or 0))
        slots = int(spec.get("maxConcurrentRuns", 10)) - active
        targets.append(
            Target(
                kind=TargetKind.DATABRICKS,
                name=name,
                region=spec.get("region", "unknown"),
                healthy=ready,
                health_detail="" if ready else str(status.get("message") or "not Ready")[:120],
                capacity=max(0, slots),
                gpu_hour_usd=float(cost.get("gpuHourUSD", 0.0)),
                base_hour_usd=float(cost.get("baseHourUSD", 0.0)),
            )
        )
    return targets


def build_snapshot(
    *,
    now: datetime,
    nodes: Iterable[Mapping[str, Any]] = (),
    pods: Iterable[Mapping[str, Any]] = (),
    edge_clusters: Iterable[Mapping[str, Any]] = (),
    databricks_workspaces: Iterable[Mapping[str, Any]] = (),
    signals_configmap: Mapping[str, Any] | None = None,
    pool_label_keys: Iterable[str] = POOL_LABEL_KEYS,
    reserved: Mapping[tuple[str, str], int] | None = None,
    active_runs: Mapping[str, int] | None = None,
    reserved_pods: Mapping[tuple[str, str], Mapping[tuple[int, int], int]] | None = None,
    topology_labels: Iterable[str] = (),
    cpu_memory_used: Mapping[str, tuple[int, int]] | None = None,
    pools: Iterable[Target] | None = None,
) -> Snapshot:
    """The snapshot the operator decides on, from raw object dicts held in its indexes.

    ``reserved`` is what the operator has committed per target to children whose pods are not bound yet
    (core.ledger): it is not free, whatever the Nodes or an edge's probe say. ``reserved_pods`` are those pods
    ((GPUs per pod, gang width) -> how many): a pool's free blocks lose them where they would land
    (core.nodes.reserve). ``topology_labels`` are the node labels policies hold gangs to (core.nodes.NodeBook).
    ``pools`` are the GPU pools built already (gpu_pools_from_facts, over the same signals): nodes and pods are
    then not read."""
    signals, _problem = signals_from_configmap(signals_configmap)
    if pools is None:
        labels = tuple(sorted(set(topology_labels)))
        pools = gpu_pools_from_nodes(nodes, pods, signals, pool_label_keys, labels, cpu_memory_used)
    targets = [
        *pools,
        *edge_targets(edge_clusters, now),
        *workspace_targets(databricks_workspaces, active_runs),
    ]
    held = reserved or {}
    waiting = reserved_pods or {}
    targets = [
        replace(target, capacity=max(0, target.capacity - held[target.key])) if target.key in held else target
        for target in targets
    ]
    targets = [
        _reserved(target, waiting[target.key]) if target.blocks and waiting.get(target.key) else target
        for target in targets
    ]
    return Snapshot(now=now, targets=tuple(targets), signals=signals)


def _reserved(target: Target, pods: Mapping[tuple[int, int], int]) -> Target:
    """``target`` once pods not bound yet hold their blocks (per domain too, where it is kept per domain)."""
    if target.domains:
        blocks, domains = reserve_domains(target.domain_labels, target.domains, pods)
        return replace(target, blocks=blocks, domains=domains)
    return replace(target, blocks=tuple(reserve(target.blocks, pods)))


def _rtt(value: Any) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None
