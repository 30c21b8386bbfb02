"""MLWorkload: the signed intent manifest of one training, batch or inference workload."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, Field, field_validator, model_validator

from mlplacement.api.base import (
    LIST_MAX,
    LONG_TEXT_MAX,
    Conditions,
    Name,
    Region,
    Resource,
    ShortText,
    StatusModel,
    WireModel,
    cel_rules,
    preserve_unknown,
)
from mlplacement.api.constants import Phase

QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


class WorkloadType(StrEnum):
    TRAINING = "Training"
    BATCH = "Batch"
    INFERENCE = "Inference"


class LatencyClass(StrEnum):
    REALTIME = "Realtime"
    INTERACTIVE = "Interactive"
    BATCH = "Batch"


class CostTolerance(StrEnum):
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


class SpotPreference(StrEnum):
    NEVER = "Never"
    ALLOWED = "Allowed"
    PREFERRED = "Preferred"


class TrainingFrequency(StrEnum):
    ONCE = "Once"
    HOURLY = "Hourly"
    DAILY = "Daily"
    WEEKLY = "Weekly"


class Weekday(StrEnum):
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


class TargetKind(StrEnum):
    GPU_POOL = "GPUPool"
    EDGE = "Edge"
    DATABRICKS = "Databricks"


Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]


class EnvVar(WireModel):
    """A plain environment variable. Secrets never go inline: the runtime injects them from Secrets."""

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    value: Annotated[str, Field(max_length=LONG_TEXT_MAX)] = ""


class Resources(WireModel):
    """What one replica needs."""

    model_config = WireModel.model_config | {
        "json_schema_extra": cel_rules(
            (
                "!has(self.gpuProduct) || (has(self.gpus) && self.gpus > 0)",
                "gpus must be > 0 when gpuProduct is set",
            ),
        )
    }

    cpu: Quantity | None = Field(default=None, description="CPU request, a Kubernetes quantity (e.g. 4 or 500m).")
    memory: Quantity | None = Field(default=None, description="Memory request, a Kubernetes quantity (e.g. 16Gi).")
    gpus: Annotated[int, Field(ge=0, le=64, description="GPUs per pod: per replica, or per worker of a training.")] = 0
    workers: Annotated[int | None, Field(ge=1, le=512)] = Field(
        default=None,
        description="Pods of a distributed training (Training only; default 1): each gets gpus on a node of its own "
        "in one pool, all start or none hold GPUs. The child is an Indexed Job with a headless Service and torchrun's "
        "environment (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, NODE_RANK, NPROC_PER_NODE); on Databricks, num_workers.",
    )
    gpu_product: Annotated[
        str | None,
        Field(max_length=128, description="Required GPU model, as in the nvidia.com/gpu.product node label."),
    ] = None

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not QUANTITY_RE.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 4, 500m, 16Gi)")
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0")
        return value

    @model_validator(mode="after")
    def _gpu_product_needs_gpus(self) -> Self:
        if self.gpu_product is not None and self.gpus <= 0:
            raise ValueError("gpus must be > 0 when gpuProduct is set")
        return self


class ModelArtifact(WireModel):
    """The model the workload serves or fine-tunes."""

    uri: Annotated[
        str,
        Field(min_length=1, max_length=2048, description="Where the model lives (s3://, gs://, dbfs:/, ...)."),
    ]
    digest: Annotated[
        str | None,
        Field(pattern=r"^sha256:[a-f0-9]{64}$", max_length=71, description="Content digest, sha256:<64 hex>."),
    ] = None
    size_gb: Annotated[float, Field(ge=0, le=100_000, description="Model size in GB; large models stay central.")] = 0.0


class Schedule(WireModel):
    """When the next run of a recurring workload (trainingFrequency Hourly, Daily or Weekly) is expected, in UTC:
    its owner (a pipeline, a CronJob) applies a new generation then. Hourly runs use minute; Daily adds hour;
    Weekly adds weekday. The operator pre-warms capacity ahead of it when the policy allows."""

    minute: Annotated[int, Field(ge=0, le=59)] = 0
    hour: Annotated[int | None, Field(ge=0, le=23)] = None
    weekday: Weekday | None = None


class Intent(WireModel):
    """What the workload needs, not where it runs: the placement engine turns intent into a target."""

    model_config = WireModel.model_config | {
        "json_schema_extra": cel_rules(
            (
                "(!has(self.deadline) && !has(self.maxRuntimeMinutes)) || has(self.expectedGPUHours)",
                "deadline and maxRuntimeMinutes need expectedGPUHours (how long a run takes)",
            ),
            (
                "!has(self.schedule) || (has(self.trainingFrequency) && self.trainingFrequency != 'Once')",
                "schedule needs trainingFrequency Hourly, Daily or Weekly",
            ),
        )
    }

    latency_class: LatencyClass = LatencyClass.BATCH
    latency_target_ms: Annotated[
        int | None, Field(ge=1, le=3_600_000, description="End-to-end latency target for callers, in ms.")
    ] = None
    data_region: Region | None = Field(default=None, description="Region where the input data lives.")
    data_size_gb: Annotated[float, Field(ge=0, le=10_000_000, description="Input data read per run, in GB.")] = 0.0
    cost_tolerance: CostTolerance = CostTolerance.MEDIUM
    max_hourly_cost_usd: Annotated[
        float | None, Field(gt=0, le=1_000_000, description="Refuse targets above this.")
    ] = None
    spot: SpotPreference = SpotPreference.ALLOWED
    training_frequency: TrainingFrequency = TrainingFrequency.ONCE
    priority: Annotated[int, Field(ge=0, le=1_000_000, description="Higher is placed first.")] = 0
    preemptible: bool = Field(
        default=True,
        description="May be stopped to make room for higher-priority work when the policy enables preemption.",
    )
    expected_gpu_hours: Annotated[float | None, Field(gt=0, le=10_000_000)] = Field(
        default=None,
        description="GPU-hours one run takes on referenceGPUProduct: candidates are then compared on cost per job "
        "(and runtime), not per hour.",
    )
    reference_gpu_product: Annotated[str, Field(max_length=128)] = Field(
        default="NVIDIA-A100",
        description="The GPU product expectedGPUHours was measured on; for GPU inference, the product its replicas "
        "were sized on (without requestsPerSecond, candidates are then compared per served replica: a slower "
        "GPU's replica serves less; with it, the queueing model judges the replicas and the bill is compared).",
    )
    deadline: AwareDatetime | None = Field(
        default=None, description="The run must finish by then (RFC 3339); needs expectedGPUHours."
    )
    max_runtime_minutes: Annotated[int | None, Field(ge=1, le=10_000_000)] = Field(
        default=None, description="The run must take no longer than this; needs expectedGPUHours."
    )
    checkpoint_interval_minutes: Annotated[int | None, Field(ge=1, le=1_000_000)] = Field(
        default=None,
        description="How often a run saves its progress: a spot preemption then loses half an interval on average "
        "instead of half the run; spot is priced with that rework.",
    )

    schedule: Schedule | None = Field(
        default=None, description="When the next run is expected (UTC), for pre-warming; needs trainingFrequency."
    )
    requests_per_second: Annotated[float | None, Field(gt=0, le=10_000_000)] = Field(
        default=None,
        description="Requests the inference serves per second. With it, latency is predicted per request: the "
        "round trip from where requests come from (requestsFrom) plus queueing and service at its replicas (an "
        "M/M/c queue), and latencyTargetMs is held against its latencyPercentile, not the region's round trip.",
    )
    # Bounded: the apiserver prices the key rules of an unbounded map (in a pipeline's stage templates, too) past
    # its CEL budget and refuses the CRD.
    requests_from: Annotated[dict[Region, Annotated[float, Field(gt=0)]], Field(max_length=16)] = Field(
        default={},
        description="Where the requests come from: region -> share (normalised); default: all from dataRegion.",
    )
    latency_percentile: Literal[50, 95, 99] = Field(
        default=99, description="The percentile of requests latencyTargetMs is held against (with requestsPerSecond)."
    )
    service_time_ms: Annotated[float, Field(gt=0, le=600_000)] = Field(
        default=20.0,
        description="Mean time one replica takes to serve one request on referenceGPUProduct (slower GPUs take "
        "longer, by their throughput), excluding the network.",
    )

    @model_validator(mode="after")
    def _schedule_fits_the_frequency(self) -> Self:
        if self.schedule is None:
            return self
        frequency = self.training_frequency
        if frequency is TrainingFrequency.ONCE:
            raise ValueError("schedule needs trainingFrequency Hourly, Daily or Weekly")
        if frequency is not TrainingFrequency.HOURLY and self.schedule.hour is None:
            raise ValueError(f"a {frequency.value} schedule needs hour")
        if frequency is TrainingFrequency.WEEKLY and self.schedule.weekday is None:
            raise ValueError("a Weekly schedule needs weekday")
        return self

    @model_validator(mode="after")
    def _deadline_needs_work(self) -> Self:
        if (self.deadline is not None or self.max_runtime_minutes is not None) and self.expected_gpu_hours is None:
            raise ValueError("deadline and maxRuntimeMinutes need expectedGPUHours (how long a run takes)")
        return self


class PinnedTarget(WireModel):
    """Skip scoring and run on this target, if it passes every hard filter."""

    kind: TargetKind
    name: Name


class Targets(WireModel):
    """Which kinds of target the workload may run on."""

    model_config = WireModel.model_config | {
        "json_schema_extra": cel_rules(
            (
                "!has(self.pinned) || !has(self.allowed) || self.pinned.kind in self.allowed",
                "pinned target must be of an allowed kind",
            ),
        )
    }

    allowed: Annotated[
        list[TargetKind],
        Field(min_length=1, max_length=3, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = [TargetKind.GPU_POOL, TargetKind.EDGE, TargetKind.DATABRICKS]
    pinned: PinnedTarget | None = None

    @field_validator("allowed")
    @classmethod
    def _unique(cls, value: list[TargetKind]) -> list[TargetKind]:
        if len(set(value)) != len(value):
            raise ValueError("target kinds must not repeat")
        return value

    @model_validator(mode="after")
    def _pinned_allowed(self) -> Self:
        if self.pinned is not None and self.pinned.kind not in self.allowed:
            raise ValueError("pinned target must be of an allowed kind")
        return self


class DatabricksRun(WireModel):
    """The run handed to the Databricks Jobs API (runs/submit) when the workload is placed there."""

    task: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra=preserve_unknown(
            "One Jobs API task, snake_case as the API takes it (e.g. spark_python_task, notebook_task)."
        ),
    )
    new_cluster: dict[str, Any] | None = Field(
        default=None, json_schema_extra=preserve_unknown("Jobs API new_cluster specification.")
    )
    existing_cluster_id: Annotated[str | None, Field(max_length=128)] = None
    libraries: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=LIST_MAX,
        json_schema_extra={"items": preserve_unknown("A Jobs API library.")},
    )
    timeout_seconds: Annotated[int | None, Field(ge=0, le=7 * 86400)] = None


class PolicyRef(WireModel):
    name: Name


class RetryPolicy(WireModel):
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    backoff_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60


CostTagKey = Annotated[str, Field(max_length=63)]


class MLWorkloadSpec(WireModel):
    """Desired state of an MLWorkload. Signed: the CRD sets no defaults here, the model does."""

    model_config = WireModel.model_config | {
        "json_schema_extra": cel_rules(
            (
                "self.type != 'Inference' || (has(self.intent) && has(self.intent.latencyTargetMs))",
                "Inference needs intent.latencyTargetMs",
            ),
            ("self.type == 'Inference' || !has(self.replicas)", "replicas applies to Inference only"),
            (
                "self.type == 'Training' || !has(self.resources) || !has(self.resources.workers) "
                "|| self.resources.workers == 1",
                "workers applies to Training only",
            ),
        )
    }

    type: WorkloadType
    image: Annotated[str, Field(min_length=1, max_length=1024, description="Container image, ideally by digest.")]
    command: Annotated[list[Annotated[str, Field(max_length=LONG_TEXT_MAX)]], Field(max_length=LIST_MAX)] = []
    args: Annotated[list[Annotated[str, Field(max_length=LONG_TEXT_MAX)]], Field(max_length=256)] = []
    env: Annotated[
        list[EnvVar],
        Field(
            max_length=128,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        ),
    ] = []
    resources: Resources = Resources()
    replicas: Annotated[int | None, Field(ge=1, le=1000, description="Inference replicas (default 1).")] = None
    model: ModelArtifact | None = None
    intent: Intent = Intent()
    targets: Targets = Targets()
    databricks: DatabricksRun | None = None
    policy_ref: PolicyRef | None = Field(
        default=None, description="Policy to place under; default: the default policy."
    )
    retry: RetryPolicy = RetryPolicy()
    depends_on: Annotated[
        list[Name],
        Field(
            max_length=32,
            json_schema_extra={"x-kubernetes-list-type": "set"},
            description="MLWorkloads that must succeed first.",
        ),
    ] = []
    cost_tags: Annotated[
        dict[CostTagKey, Annotated[str, Field(max_length=63)]],
        Field(max_length=32, description="Propagated to child labels, Databricks custom_tags and edge objects."),
    ] = {}

    @model_validator(mode="after")
    def _cross_field(self) -> Self:
        if self.type is WorkloadType.INFERENCE and self.intent.latency_target_ms is None:
            raise ValueError("Inference needs intent.latencyTargetMs")
        if self.type is not WorkloadType.INFERENCE and self.replicas is not None:
            raise ValueError("replicas applies to Inference only")
        if self.type is not WorkloadType.TRAINING and (self.resources.workers or 1) > 1:
            raise ValueError("workers applies to Training only")
        return self

    @property
    def effective_replicas(self) -> int:
        return self.replicas if self.replicas is not None else 1

    @property
    def workers(self) -> int:
        """Pods of a distributed training, all on distinct nodes of one pool (1: an ordinary single pod)."""
        return self.resources.workers or 1

    @property
    def pods(self) -> int:
        """Pods the workload runs at once: its replicas (Inference), its workers (Training), else one."""
        return self.effective_replicas if self.type is WorkloadType.INFERENCE else self.workers


class TargetRef(StatusModel):
    kind: TargetKind
    name: str
    region: str | None = None
    block: str | None = Field(
        default=None, description="label=value: the topology block a distributed training's workers are pinned to."
    )


class CandidateSummary(StatusModel):
    """One candidate as the decision saw it: a score if it fit, reasons if it did not."""

    kind: TargetKind
    name: str
    score: float | None = None
    reasons: Annotated[list[str], Field(max_length=8)] = []


class PlacementStatus(StatusModel):
    target: TargetRef | None = None
    decided_at: datetime | None = None
    score: float | None = None
    message: Annotated[str, Field(max_length=LONG_TEXT_MAX)] = ""
    candidates: Annotated[list[CandidateSummary], Field(max_length=10)] = []
    signals_age_seconds: float | None = None


class VerifiedStatus(StatusModel):
    key_id: str
    digest: Annotated[str, Field(description="sha256 of the signed bytes.")]
    policy_key_id: str | None = None


class DatabricksRunStatus(StatusModel):
    run_id: int | None = None
    run_page_url: str | None = None
    state: str | None = None
    workspace: str | None = None
    attempt: int | None = None


class HistoryEntry(StatusModel):
    """One transition of the workload: a new phase or a new target."""

    time: datetime
    phase: Annotated[str, Field(max_length=32)]
    reason: Annotated[str, Field(max_length=64)] = ""
    target: Annotated[str, Field(max_length=320)] = Field(default="", description="Kind/name it runs on then.")


LEARNED_RUNS = 5  # finished runs a workload's status keeps: enough for a median, small enough to never grow


class LearnedStatus(StatusModel):
    """What the operator learned from the workload's own finished runs (never written into its signed spec)."""

    reference_gpu_hours: Annotated[list[Annotated[float, Field(ge=0)]], Field(max_length=LEARNED_RUNS)] = Field(
        default=[],
        description="The work of each of the last finished runs, in GPU-hours of intent.referenceGPUProduct (their "
        "GPUs' speed taken into account), newest last: the run length the engine uses when expectedGPUHours is not "
        "stated.",
    )


class MLWorkloadStatus(StatusModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: Conditions = []
    placement: PlacementStatus | None = None
    verified: VerifiedStatus | None = None
    databricks: DatabricksRunStatus | None = None
    attempts: int | None = None
    estimated_hourly_cost_usd: float | None = None
    history: Annotated[list[HistoryEntry], Field(max_length=10)] = Field(
        default=[], description="The last transitions (phase or target changes), the newest last."
    )
    learned: LearnedStatus | None = None


# A gang's pods are named <child>-<index> and used as hostnames (63 characters at most); the child is mlw-<name>.
GANG_NAME_MAX = 52


class MLWorkload(Resource):
    kind: Literal["MLWorkload"] = "MLWorkload"
    spec: MLWorkloadSpec
    status: MLWorkloadStatus | None = None

    @model_validator(mode="after")
    def _gang_hostnames_fit(self) -> Self:
        if self.spec.workers > 1 and len(self.metadata.name) > GANG_NAME_MAX:
            raise ValueError(
                f"a distributed training's name has at most {GANG_NAME_MAX} characters (its workers' hostnames "
                f"are mlw-<name>-<index>); {self.metadata.name!r} has {len(self.metadata.name)}"
            )
        return self


__all__ = [
    "LEARNED_RUNS",
    "CandidateSummary",
    "CostTolerance",
    "DatabricksRun",
    "DatabricksRunStatus",
    "EnvVar",
    "Intent",
    "LatencyClass",
    "LearnedStatus",
    "MLWorkload",
    "MLWorkloadSpec",
    "MLWorkloadStatus",
    "ModelArtifact",
    "PinnedTarget",
    "PlacementStatus",
    "PolicyRef",
    "Resources",
    "RetryPolicy",
    "ShortText",
    "SpotPreference",
    "TargetKind",
    "TargetRef",
    "Targets",
    "TrainingFrequency",
    "VerifiedStatus",
    "WorkloadType",
]
