"""What placement needs to know of one workload, flattened once from its validated spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mlplacement.api.workload import (
    CostTolerance,
    LatencyClass,
    MLWorkload,
    SpotPreference,
    TargetKind,
    TrainingFrequency,
    WorkloadType,
)
from mlplacement.core.quantity import cpu_millis, memory_bytes

# Latency a class implies when the workload states no target (ms).
CLASS_LATENCY_MS = {LatencyClass.REALTIME: 50.0, LatencyClass.INTERACTIVE: 500.0, LatencyClass.BATCH: 60_000.0}


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    key: str  # namespace/name
    type: WorkloadType
    gpus: int  # per pod
    replicas: int  # pods: an inference's replicas, a training's workers
    gpu_product: str | None
    model_size_gb: float
    latency_class: LatencyClass
    latency_target_ms: float | None
    data_region: str | None
    data_size_gb: float
    cost_tolerance: CostTolerance
    max_hourly_cost_usd: float | None
    spot: SpotPreference
    training_frequency: TrainingFrequency
    priority: int
    allowed: frozenset[TargetKind]
    pinned: tuple[TargetKind, str] | None
    policy: str | None
    created: datetime | None = None
    # Whether spec.databricks carries a task: without one there is nothing to submit to Databricks.
    databricks_task: bool = False
    # Targets this workload must not go back to for now, e.g. its pods stayed unschedulable there.
    avoid: frozenset[tuple[str, str]] = frozenset()
    # May be stopped for higher-priority work (simulation reads it; the operator reads the spec).
    preemptible: bool = True
    # The work of one run: GPU-hours on the reference product (None: unknown, compare per hour).
    expected_gpu_hours: float | None = None
    # Where expected_gpu_hours comes from, for the explanation: "stated" (the intent), "learned from 4 earlier
    # runs" (the workload's status.learned), "" when it is not known.
    runtime_basis: str = ""
    reference_gpu_product: str = "NVIDIA-A100"
    deadline: datetime | None = None
    max_runtime_minutes: int | None = None
    checkpoint_interval_minutes: int | None = None
    # A distributed training: its pods (replicas) each need a node of their own in one pool, all or none.
    gang: bool = False
    # What each pod requests besides GPUs (CPU millicores, memory bytes): a node must hold all of it.
    cpu_millis: int = 0
    memory_bytes: int = 0
    # Declared load (inference): requests a second, their sources (region, share), the percentile held against
    # latency_target_ms, a request's service time on reference_gpu_product. None: latency is region to region.
    requests_per_second: float | None = None
    requests_from: tuple[tuple[str, float], ...] = ()
    latency_percentile: int = 99
    service_time_ms: float = 20.0
    # gpus x replicas, precomputed: every filter and claim of every decision reads it.
    gpus_needed: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gpus_needed", self.gpus * self.replicas)

    @property
    def effective_latency_target_ms(self) -> float:
        return self.latency_target_ms if self.latency_target_ms is not None else CLASS_LATENCY_MS[self.latency_class]


def request_from_workload(workload: MLWorkload, created: datetime | None = None) -> PlacementRequest:
    spec = workload.spec
    meta = workload.metadata
    pinned = spec.targets.pinned
    return PlacementRequest(
        key=f"{meta.namespace or ''}/{meta.name}",
        type=spec.type,
        gpus=spec.resources.gpus,
        replicas=spec.pods,
        gpu_product=spec.resources.gpu_product,
        model_size_gb=spec.model.size_gb if spec.model is not None else 0.0,
        latency_class=spec.intent.latency_class,
        latency_target_ms=spec.intent.latency_target_ms,
        data_region=spec.intent.data_region,
        data_size_gb=spec.intent.data_size_gb,
        cost_tolerance=spec.intent.cost_tolerance,
        max_hourly_cost_usd=spec.intent.max_hourly_cost_usd,
        spot=spec.intent.spot,
        training_frequency=spec.intent.training_frequency,
        priority=spec.intent.priority,
        allowed=frozenset(spec.targets.allowed),
        pinned=(pinned.kind, pinned.name) if pinned is not None else None,
        policy=spec.policy_ref.name if spec.policy_ref is not None else None,
        created=created,
        databricks_task=spec.databricks is not None and bool(spec.databricks.task),
        preemptible=spec.intent.preemptible,
        expected_gpu_hours=spec.intent.expected_gpu_hours,
        runtime_basis="stated" if spec.intent.expected_gpu_hours is not None else "",
        requests_per_second=spec.intent.requests_per_second,
        requests_from=tuple(sorted(spec.intent.requests_from.items())),
        latency_percentile=spec.intent.latency_percentile,
        service_time_ms=spec.intent.service_time_ms,
        reference_gpu_product=spec.intent.reference_gpu_product,
        deadline=spec.intent.deadline,
        max_runtime_minutes=spec.intent.max_runtime_minutes,
        checkpoint_interval_minutes=spec.intent.checkpoint_interval_minutes,
        gang=spec.workers > 1,
        cpu_millis=cpu_millis(spec.resources.cpu),
        memory_bytes=memory_bytes(spec.resources.memory),
    )
