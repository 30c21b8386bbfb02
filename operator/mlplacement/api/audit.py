"""The audit record: one JSON object per admission, refusal, decision, move, preemption and enforcement action.

Versioned contract (``apiVersion: mlplacement.io/audit/v1``): emitted one per line on the logger
``mlplacement.audit``; its JSON Schema is docs/audit-record.schema.json (a test keeps the two in step, and
validates what the controller emits against it). `mlplacement audit` reads these lines.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from mlplacement.api.base import WireModel

AUDIT_API_VERSION = "mlplacement.io/audit/v1"


class AuditAction(StrEnum):
    ADMITTED = "Admitted"
    REFUSED = "Refused"
    PLACED = "Placed"
    WAITING = "Waiting"
    MOVED = "Moved"
    PREEMPTED = "Preempted"
    STOPPED = "Stopped"
    WARNED = "Warned"
    INTERRUPTED = "Interrupted"
    # Pipelines (object: the MLPipeline; the message names the stage).
    STAGE_STARTED = "StageStarted"
    STAGE_FINISHED = "StageFinished"
    STAGE_RESET = "StageReset"


class AuditObject(WireModel):
    kind: str = "MLWorkload"
    namespace: str
    name: str
    uid: str = ""
    generation: int | None = None


class AuditTarget(WireModel):
    kind: str
    name: str
    region: str = ""


class AuditCandidate(WireModel):
    kind: str
    name: str
    score: float
    hourly_cost_usd: float


class AuditPolicy(WireModel):
    name: str
    key_id: str = ""
    digest: str = Field(default="", description="sha256 of the policy's signed bytes: which version decided.")


class AuditRecord(WireModel):
    """Why, when and how an orchestration decision was made, and by whom."""

    api_version: Literal["mlplacement.io/audit/v1"] = Field(default="mlplacement.io/audit/v1", alias="apiVersion")
    time: AwareDatetime
    actor: str = Field(description="Who acted: the operator replica (its pod name) that held the Lease.")
    action: AuditAction
    object: AuditObject
    reason: str = Field(description="The condition or Event reason, stable API (e.g. Verified, NoFeasibleTarget).")
    message: str = ""
    workload_key_id: str = Field(default="", description="The key that signed the workload.")
    workload_digest: str = Field(default="", description="sha256 of the signed spec.")
    policy: AuditPolicy | None = None
    signals_updated_at: datetime | None = None
    target: AuditTarget | None = Field(default=None, description="Where it runs now (Placed, Moved).")
    previous_target: AuditTarget | None = Field(default=None, description="Where it ran before (Moved, Stopped).")
    candidates: Annotated[list[AuditCandidate], Field(max_length=5)] = Field(
        default=[], description="The best scored candidates of a decision, best first."
    )


__all__ = [
    "AUDIT_API_VERSION",
    "AuditAction",
    "AuditCandidate",
    "AuditObject",
    "AuditPolicy",
    "AuditRecord",
    "AuditTarget",
]
