"""MLPipeline: a signed DAG of stages, each an MLWorkload spec template with inputs, outputs and readiness gates.

Each stage is placed on its own. The pipeline controller creates a stage's MLWorkload once its gates are
open; the operator runs that workload only while the pipeline's signature verifies and its spec is exactly
the signed template.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from mlplacement.api.base import (
    LIST_MAX,
    LONG_TEXT_MAX,
    Conditions,
    Name,
    Resource,
    StatusModel,
    WireModel,
    cel_rules,
)
from mlplacement.api.dag import dag_problems
from mlplacement.api.workload import MLWorkloadSpec, VerifiedStatus

# A stage's workload is named <pipeline>-<stage>-<run>; a DNS label keeps that a valid object name and
# leaves room for the children's own prefixes.
STAGE_NAME_MAX = 40
STAGES_MAX = 50
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
StageName = Annotated[str, Field(min_length=1, max_length=STAGE_NAME_MAX, pattern=DNS_LABEL_PATTERN)]
ArtifactName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
Digest = Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$", max_length=71, description="sha256:<64 hex>.")]
Uri = Annotated[str, Field(min_length=1, max_length=2048)]
SizeGB = Annotated[float, Field(ge=0, le=10_000_000)]


class StageOutput(WireModel):
    """An artifact the stage produces. Without a digest here, the stage records it when it has run: the
    annotation mlplacement.io/outputs on its MLWorkload, JSON {"<output>": "sha256:..."}."""

    name: ArtifactName
    uri: Uri
    digest: Digest | None = Field(default=None, description="Known ahead; a different digest at run time is refused.")
    size_gb: SizeGB = Field(default=0.0, description="Size, for the data-movement estimate between stages.")


class StageInput(WireModel):
    """An artifact the stage consumes: another stage's output (fromStage, output) or an external URI."""

    model_config = WireModel.model_config | {
        "json_schema_extra": cel_rules(
            ("has(self.fromStage) != has(self.uri)", "an input comes from a stage (fromStage) or a uri, not both"),
            ("!has(self.output) || has(self.fromStage)", "output names an output of fromStage"),
        )
    }

    name: ArtifactName
    from_stage: StageName | None = None
    output: ArtifactName | None = Field(default=None, description="The upstream output; default: the input's name.")
    uri: Uri | None = None
    digest: Digest | None = Field(
        default=None, description="Expected digest: the stage refuses to run on anything else (ArtifactMismatch)."
    )
    size_gb: SizeGB = 0.0

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.from_stage is None) == (self.uri is None):
            raise ValueError("an input comes from a stage (fromStage) or a uri, not both")
        if self.output is not None and self.from_stage is None:
            raise ValueError("output names an output of fromStage")
        return self

    @property
    def upstream_output(self) -> str:
        return self.output or self.name


class DatasetGate(WireModel):
    """Open when the signals document's datasets[dataset] is validated, younger than maxAgeMinutes and (if
    given) at schemaVersion."""

    dataset: Annotated[str, Field(min_length=1, max_length=253)]
    max_age_minutes: Annotated[int, Field(ge=1, le=525_600)] = 1440
    schema_version: Annotated[str | None, Field(max_length=64)] = None


class ObjectGate(WireModel):
    """Open when the named Kubernetes object has a condition of that type with that status (e.g. another
    tool's Dataset with Ready=True). The operator needs get on the kind (chart: pipelines.gateResources)."""

    api_version: Annotated[str, Field(min_length=1, max_length=253)]
    kind: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
    name: Name
    namespace: Annotated[str | None, Field(max_length=63)] = Field(
        default=None, description="Default: the pipeline's namespace; empty for cluster-scoped kinds is not allowed."
    )
    condition: Annotated[str, Field(min_length=1, max_length=316)] = "Ready"
    status: Literal["True", "False", "Unknown"] = "True"


class ReadinessGates(WireModel):
    datasets: Annotated[list[DatasetGate], Field(max_length=16)] = []
    objects: Annotated[list[ObjectGate], Field(max_length=16)] = []


class StageRetry(WireModel):
    """How often a failed stage is run again (alone: completed stages never rerun)."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 2
    backoff_seconds: Annotated[int, Field(ge=0, le=86_400)] = 60


class PipelineStage(WireModel):
    name: StageName
    depends_on: Annotated[
        list[StageName],
        Field(max_length=STAGES_MAX, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = []
    inputs: Annotated[
        list[StageInput],
        Field(
            max_length=32, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
        ),
    ] = []
    outputs: Annotated[
        list[StageOutput],
        Field(
            max_length=32, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
        ),
    ] = []
    gates: ReadinessGates = ReadinessGates()
    retry: StageRetry = StageRetry()
    template: MLWorkloadSpec = Field(description="The stage's MLWorkload spec, exactly as its workload gets it.")


class MLPipelineSpec(WireModel):
    """Desired state of an MLPipeline. Signed: the CRD sets no defaults here, the model does."""

    stages: Annotated[
        list[PipelineStage],
        Field(
            min_length=1,
            max_length=STAGES_MAX,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        ),
    ]

    @model_validator(mode="after")
    def _a_dag(self) -> Self:
        problems = dag_problems(self.stages)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def stage(self, name: str) -> PipelineStage | None:
        return next((stage for stage in self.stages if stage.name == name), None)


class StagePhase(StrEnum):
    PENDING = "Pending"
    WAITING_FOR_DATA = "WaitingForData"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REFUSED = "Refused"


class PipelinePhase(StrEnum):
    PENDING = "Pending"
    REFUSED = "Refused"
    WAITING = "Waiting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ArtifactRecord(StatusModel):
    """One artifact at a stage boundary: what was consumed or produced, by digest."""

    name: Annotated[str, Field(max_length=63)]
    uri: Annotated[str, Field(max_length=2048)] = ""
    digest: Annotated[str, Field(max_length=71)] = ""
    from_stage: Annotated[str | None, Field(max_length=STAGE_NAME_MAX)] = None


class StageStatus(StatusModel):
    name: Annotated[str, Field(max_length=STAGE_NAME_MAX)]
    phase: StagePhase = StagePhase.PENDING
    reason: Annotated[str, Field(max_length=64)] = ""
    message: Annotated[str, Field(max_length=LONG_TEXT_MAX)] = ""
    gate: Annotated[str, Field(max_length=512)] = Field(default="", description="The gate it waits on.")
    workload: Annotated[str, Field(max_length=253)] = Field(default="", description="Its current run's MLWorkload.")
    run: int = Field(default=0, description="How many runs were started (retries and re-runs count).")
    attempts: int = Field(default=0, description="Runs of the current template that failed.")
    template_digest: Annotated[str, Field(max_length=71)] = ""
    target: Annotated[str, Field(max_length=320)] = ""
    estimated_hourly_cost_usd: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retry_at: datetime | None = None
    consumed: Annotated[list[ArtifactRecord], Field(max_length=LIST_MAX)] = []
    produced: Annotated[list[ArtifactRecord], Field(max_length=LIST_MAX)] = []


class MLPipelineStatus(StatusModel):
    observed_generation: int | None = None
    phase: PipelinePhase | None = None
    conditions: Conditions = []
    verified: VerifiedStatus | None = None
    progress: Annotated[str, Field(max_length=16)] = Field(default="", description="Stages done of total.")
    stages_done: int | None = None
    stages_total: int | None = None
    estimated_hourly_cost_usd: float | None = None
    critical_path: Annotated[list[Annotated[str, Field(max_length=STAGE_NAME_MAX)]], Field(max_length=STAGES_MAX)] = []
    rerun_handled: Annotated[str | None, Field(max_length=1024)] = Field(
        default=None, description="The last mlplacement.io/rerun annotation acted on."
    )
    stages: Annotated[list[StageStatus], Field(max_length=STAGES_MAX)] = []


class MLPipeline(Resource):
    kind: Literal["MLPipeline"] = "MLPipeline"
    spec: MLPipelineSpec
    status: MLPipelineStatus | None = None


__all__ = [
    "ArtifactRecord",
    "DatasetGate",
    "MLPipeline",
    "MLPipelineSpec",
    "MLPipelineStatus",
    "ObjectGate",
    "PipelinePhase",
    "PipelineStage",
    "ReadinessGates",
    "StageInput",
    "StageOutput",
    "StagePhase",
    "StageRetry",
    "StageStatus",
]
