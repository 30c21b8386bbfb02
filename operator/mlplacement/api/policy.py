"""PlacementPolicy: the platform team's signed rules for where workloads may go and how to rank targets."""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from mlplacement.api.base import Conditions, Name, Region, Resource, StatusModel, WireModel
from mlplacement.api.workload import TargetKind, TrainingFrequency

RegionList = Annotated[list[Region], Field(max_length=64, json_schema_extra={"x-kubernetes-list-type": "set"})]


class Residency(WireModel):
    """Where data may be processed."""

    allowed_regions: RegionList = Field(
        default=[], description="Regions any workload may run in; empty means every region."
    )
    by_data_region: Annotated[dict[Region, RegionList], Field(max_length=64)] = Field(
        default={},
        description="For data in a region (key), the regions it may be processed in; overrides allowedRegions.",
    )


class Heuristics(WireModel):
    """Routing rules, each a hard filter: edge only for low latency and local data; big models stay central."""

    edge_max_latency_ms: Annotated[int, Field(ge=0, le=3_600_000)] = Field(
        default=50, description="Edge only for workloads whose latency target is below this."
    )
    edge_requires_local_data: bool = Field(default=True, description="Edge only if the data lives in its region.")
    centralize_model_size_gb: Annotated[float, Field(ge=0, le=100_000)] = Field(
        default=2.0, description="Models larger than this never go to the edge."
    )
    centralize_training_frequencies: Annotated[
        list[TrainingFrequency], Field(max_length=4, json_schema_extra={"x-kubernetes-list-type": "set"})
    ] = Field(
        default=[TrainingFrequency.DAILY, TrainingFrequency.WEEKLY],
        description="Training that recurs this often runs centrally (GPU pools or Databricks), never at the edge.",
    )
    databricks_for_inference: bool = Field(default=False, description="Databricks runs batch work, not serving.")


class SpotRules(WireModel):
    max_preemption_probability: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.3, description="Spot pools whose hourly preemption probability exceeds this are skipped."
    )
    min_priority_for_on_demand_only: Annotated[int | None, Field(ge=0, le=1_000_000)] = Field(
        default=None, description="Workloads at or above this priority never run on spot."
    )


class Weights(WireModel):
    """Relative weight of each score, 0..100. They need not add up to 100."""

    cost: Annotated[float, Field(ge=0, le=100)] = 40
    latency: Annotated[float, Field(ge=0, le=100)] = 25
    data_gravity: Annotated[float, Field(ge=0, le=100)] = 20
    carbon: Annotated[float, Field(ge=0, le=100)] = 5
    preemption: Annotated[float, Field(ge=0, le=100)] = 10


class Budget(WireModel):
    max_hourly_cost_usd_per_workload: Annotated[float | None, Field(gt=0, le=1_000_000)] = Field(default=None)


class SigningRules(WireModel):
    allowed_key_ids: Annotated[
        list[Annotated[str, Field(max_length=128)]],
        Field(max_length=32, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = Field(
        default=[],
        description="Workloads under this policy must be signed by one of these keys; empty: any trusted key.",
    )


KindSet = Annotated[list[TargetKind], Field(max_length=3, json_schema_extra={"x-kubernetes-list-type": "set"})]
LabelValue = Annotated[str, Field(max_length=63, pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")]


class Preemption(WireModel):
    """When a workload fits nowhere, stop strictly lower-priority work on one target to make room."""

    enabled: bool = Field(default=False, description="Off unless the platform team turns it on.")
    min_priority_gap: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1, description="A victim's priority is at least this much below its preemptor's."
    )
    grace_period_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(
        default=30, description="Seconds a victim's children keep running after it is preempted."
    )
    max_victims_per_round: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=10, description="At most this many workloads are preempted in one placement round."
    )
    target_kinds: KindSet = Field(
        default=[TargetKind.GPU_POOL, TargetKind.EDGE],
        description="Kinds whose workloads may be stopped; Databricks only if listed (a cancelled run loses its work).",
    )


class Enforcement(StrEnum):
    """What happens to a running workload that a changed policy or target now forbids where it runs."""

    MOVE = "Move"  # placed again on a target the rules allow, the old copy stopped; stopped if none fits
    STOP = "Stop"  # its children stopped now; it waits to be placed again like any other
    WARN = "Warn"  # left running, Compliant=False and a Warning say so


class Prewarming(WireModel):
    """Hold capacity ahead of recurring runs (intent.schedule) with placeholder pods any real work preempts
    (the balloon pattern): the cluster autoscaler brings nodes up before the run, not after it arrives."""

    enabled: bool = Field(default=False, description="Off unless the platform team turns it on.")
    lead_minutes: Annotated[int, Field(ge=1, le=1440)] = Field(
        default=15, description="Placeholders appear this long before a run is expected, and go this long after."
    )
    max_gpus: Annotated[int, Field(ge=0, le=100_000)] = Field(
        default=8, description="At most this many GPUs held by placeholders at once, across the cluster."
    )
    max_hourly_cost_usd: Annotated[float | None, Field(ge=0, le=1_000_000)] = Field(
        default=None, description="At most this much per hour spent on placeholders at once."
    )
    priority_class_name: Annotated[str, Field(min_length=1, max_length=253)] = Field(
        default="mlplacement-placeholder",
        description="A PriorityClass below every real workload's (the chart installs one at -10).",
    )
    image: Annotated[str, Field(min_length=1, max_length=512)] = Field(
        default="registry.k8s.io/pause:3.10", description="What placeholder pods run: nothing."
    )


class QuotaAmounts(WireModel):
    """GPUs (in total and per GPU product) and dollars per hour; a missing amount is not limited."""

    gpus: Annotated[int | None, Field(ge=0, le=1_000_000)] = None
    gpus_by_product: Annotated[
        dict[Annotated[str, Field(max_length=128)], Annotated[int, Field(ge=0)]], Field(max_length=32)
    ] = Field(default={}, description="Per GPU product (as nvidia.com/gpu.product names it).")
    hourly_cost_usd: Annotated[float | None, Field(ge=0, le=100_000_000)] = None


class NamespaceSelector(WireModel):
    match_labels: Annotated[dict[Annotated[str, Field(max_length=317)], LabelValue], Field(max_length=16)] = Field(
        default={}, description="Namespaces with all of these labels belong to the team."
    )


class TeamQuota(WireModel):
    """A team's nominal share of the fleet (Kueue's ClusterQueue nominal quota, all teams one cohort)."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    namespaces: Annotated[
        list[Annotated[str, Field(max_length=63)]],
        Field(max_length=256, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = Field(default=[], description="The team's namespaces.")
    namespace_selector: NamespaceSelector | None = Field(default=None, description="Or: namespaces by label.")
    nominal: QuotaAmounts = Field(default=QuotaAmounts(), description="Guaranteed: reclaimed from borrowers.")
    borrowing_limit: QuotaAmounts | None = Field(
        default=None,
        description="How far above nominal the team may go on quota other teams leave unused; none: no limit.",
    )


class GangRules(WireModel):
    """How distributed trainings (MLWorkloads with resources.workers > 1) are placed."""

    topology_label: Annotated[str | None, Field(max_length=316, pattern=r"^[A-Za-z0-9./_-]+$")] = Field(
        default=None,
        description="A node label naming a block of nodes (a rack, an NVLink or network domain, e.g. "
        "topology.kubernetes.io/zone): a gang's workers all go to nodes with one value of it, and are pinned there.",
    )


class PlacementPolicySpec(WireModel):
    """Signed platform rules. The CRD sets no defaults here, the model does."""

    allowed_targets: Annotated[
        list[TargetKind],
        Field(min_length=1, max_length=3, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = [TargetKind.GPU_POOL, TargetKind.EDGE, TargetKind.DATABRICKS]
    residency: Residency = Residency()
    heuristics: Heuristics = Heuristics()
    spot: SpotRules = SpotRules()
    weights: Weights = Weights()
    budget: Budget = Budget()
    signing: SigningRules = SigningRules()
    max_signal_age_seconds: Annotated[int | None, Field(ge=1, le=86_400)] = Field(
        default=None, description="Distrust signals older than this even if their own TTL allows them."
    )
    preemption: Preemption = Preemption()
    quotas: Annotated[
        list[TeamQuota],
        Field(
            max_length=256,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        ),
    ] = Field(default=[], description="Teams' nominal quotas; a namespace no team claims is not limited.")
    fair_sharing: bool = Field(
        default=True,
        description="Among equal priorities, the team with the smallest dominant share of its quota goes first.",
    )
    prewarming: Prewarming = Prewarming()
    gangs: GangRules = GangRules()
    enforcement: Enforcement = Field(
        default=Enforcement.MOVE,
        description="What happens to a running workload this policy (or a target's change) now forbids where it "
        "runs: Move (default), Stop or Warn. A workload whose signature stops verifying is stopped whatever this says.",
    )


class PlacementPolicyStatus(StatusModel):
    observed_generation: int | None = None
    conditions: Conditions = []
    workloads: int | None = Field(default=None, description="MLWorkloads placed under this policy.")


class PlacementPolicy(Resource):
    kind: Literal["PlacementPolicy"] = "PlacementPolicy"
    spec: PlacementPolicySpec = PlacementPolicySpec()
    status: PlacementPolicyStatus | None = None


__all__ = [
    "Budget",
    "GangRules",
    "Heuristics",
    "Name",
    "NamespaceSelector",
    "PlacementPolicy",
    "PlacementPolicySpec",
    "PlacementPolicyStatus",
    "Preemption",
    "QuotaAmounts",
    "Residency",
    "SigningRules",
    "SpotRules",
    "TeamQuota",
    "Weights",
]
