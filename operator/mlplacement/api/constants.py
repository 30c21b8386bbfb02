"""Names that are API: group, kinds, annotation and label keys, condition types and reasons.

Everything here is a contract with users, Argo CD and dashboards; renaming a value is a breaking change.
"""

from enum import StrEnum
from typing import Final

GROUP: Final = "mlplacement.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "mlplacement"

# Signed-policy annotations: what `mlplacement sign` writes and the operator verifies.
ANNOTATION_SIGNATURE: Final = f"{GROUP}/signature"
ANNOTATION_KEY_ID: Final = f"{GROUP}/key-id"
ANNOTATION_SIGNATURE_EXPIRES: Final = f"{GROUP}/signature-expires"
SIGNATURE_ANNOTATIONS: Final = (ANNOTATION_SIGNATURE, ANNOTATION_KEY_ID, ANNOTATION_SIGNATURE_EXPIRES)

# A PlacementPolicy with this label set to "true" is used by workloads without spec.policyRef.
LABEL_DEFAULT_POLICY: Final = f"{GROUP}/default-policy"
# Labels the operator puts on the children it creates.
LABEL_WORKLOAD_UID: Final = f"{GROUP}/workload-uid"
LABEL_WORKLOAD_NAME: Final = f"{GROUP}/workload"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
# Held by MLWorkloads whose deletion must wait for remote cleanup (a Databricks run, children on an edge).
FINALIZER: Final = f"{GROUP}/remote-cleanup"
# Put there by releases that let kopf manage deletion; removed when such a workload is deleted.
LEGACY_FINALIZERS: Final = ("kopf.zalando.org/KopfFinalizerMarker",)
LABEL_COST_TAG_PREFIX: Final = f"cost.{GROUP}/"
# On children in an edge cluster: which home cluster made them (two homes may share an edge) and for whom.
LABEL_HOME_CLUSTER: Final = f"{GROUP}/home-cluster"
ANNOTATION_ORIGIN: Final = f"{GROUP}/origin"
# On every child: the workload generation and target it was built for. A child whose values differ is
# brought in line (a Job, whose pod template is immutable, is replaced).
ANNOTATION_WORKLOAD_GENERATION: Final = f"{GROUP}/workload-generation"
ANNOTATION_TARGET: Final = f"{GROUP}/target"
REVISION_ANNOTATIONS: Final = (ANNOTATION_WORKLOAD_GENERATION, ANNOTATION_TARGET)
# Put on a child's pod whose node is about to be reclaimed: "<when> <why>". Spot pods see it in the file
# MLPLACEMENT_CHECKPOINT_SIGNAL_FILE names (their annotations, through the downward API): time to checkpoint.
ANNOTATION_CHECKPOINT_REQUESTED: Final = f"{GROUP}/checkpoint-requested"
# On a pre-warming placeholder (and its pods): the uid of the recurring workload it holds GPUs for. Never the
# workload-uid label: a placeholder is not a child, and its GPUs count as free (any real pod preempts it).
LABEL_PLACEHOLDER_FOR: Final = f"{GROUP}/placeholder-for"
ANNOTATION_EXPECTED_RUN: Final = f"{GROUP}/expected-run"

# On a pipeline stage's MLWorkload (made by the operator): its pipeline and stage. Such a workload is judged by
# its pipeline's signature and the stage's signed template, never by signature annotations of its own.
LABEL_PIPELINE: Final = f"{GROUP}/pipeline"
LABEL_STAGE: Final = f"{GROUP}/stage"
# Set on a stage's MLWorkload by the stage (or whoever ran it) once it has run: JSON {"<output>": "sha256:..."}.
ANNOTATION_OUTPUTS: Final = f"{GROUP}/outputs"
# Set by the operator when it creates a stage's MLWorkload: what it consumes, JSON {"<input>": {"uri", "digest"}}.
# Its pods see each as MLPLACEMENT_INPUT_<NAME>_URI and _DIGEST, to check what they read.
ANNOTATION_INPUTS: Final = f"{GROUP}/inputs"
# Put on an MLPipeline by a person to run stages again (and what depends on them) without a spec change:
# "<stage>[,<stage>...][@<anything>]"; each new value is acted on once (status.rerunHandled keeps the last).
ANNOTATION_RERUN: Final = f"{GROUP}/rerun"
# Annotations admission reads besides the signature ones (a change admits the object again).
ADMITTED_ANNOTATIONS: Final = (ANNOTATION_INPUTS, ANNOTATION_RERUN)

# Node labels that group GPU nodes into pools, in order of precedence.
POOL_LABEL_KEYS: Final = (
    f"{GROUP}/pool",
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "karpenter.sh/nodepool",
    "kubernetes.azure.com/agentpool",
)
REGION_LABEL: Final = "topology.kubernetes.io/region"
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_RESOURCE: Final = "nvidia.com/gpu"


class Kind(StrEnum):
    ML_WORKLOAD = "MLWorkload"
    PLACEMENT_POLICY = "PlacementPolicy"
    EDGE_CLUSTER = "EdgeCluster"
    DATABRICKS_WORKSPACE = "DatabricksWorkspace"
    ML_PIPELINE = "MLPipeline"


SIGNED_KINDS: Final = frozenset({Kind.ML_WORKLOAD, Kind.PLACEMENT_POLICY, Kind.ML_PIPELINE})


class ConditionType(StrEnum):
    VERIFIED = "Verified"
    PLACED = "Placed"
    READY = "Ready"
    DEGRADED = "Degraded"
    FINISHED = "Finished"
    REACHABLE = "Reachable"
    COMPLIANT = "Compliant"


class Reason(StrEnum):
    """Condition and Event reasons. Stable API: dashboards and alerts match on them."""

    # Signature verdicts.
    VERIFIED = "Verified"
    SIGNATURE_MISSING = "SignatureMissing"
    SIGNATURE_MALFORMED = "SignatureMalformed"
    UNKNOWN_KEY = "UnknownKey"
    UNTRUSTED_KEY = "UntrustedKey"
    SIGNATURE_INVALID = "SignatureInvalid"
    SIGNATURE_EXPIRED = "SignatureExpired"
    KEY_NOT_YET_VALID = "KeyNotYetValid"
    KEY_EXPIRED = "KeyExpired"
    # Policy resolution.
    POLICY_NOT_FOUND = "PolicyNotFound"
    POLICY_AMBIGUOUS = "PolicyAmbiguous"
    POLICY_UNSIGNED = "PolicyUnsigned"
    # Spec and placement.
    INVALID_SPEC = "InvalidSpec"
    NO_FEASIBLE_TARGET = "NoFeasibleTarget"
    WAITING_FOR_CAPACITY = "WaitingForCapacity"
    WAITING_FOR_DEPENDENCIES = "WaitingForDependencies"
    TARGET_UNHEALTHY = "TargetUnhealthy"
    DISPATCHED = "Dispatched"
    PLACED = "Placed"  # Event: its children were created where the decision says
    SUBMITTED = "Submitted"  # Event: a Databricks run was submitted
    APPLY_FAILED = "ApplyFailed"
    UNSCHEDULABLE = "Unschedulable"
    STARTING = "Starting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    RUN_LOST = "RunLost"
    REMOTE_CLEANUP_ABANDONED = "RemoteCleanupAbandoned"  # Event: deletion stopped waiting for a remote cleanup
    # Scarcity.
    QUOTA_EXCEEDED = "QuotaExceeded"
    PREEMPTED = "Preempted"
    # Moves the operator makes (Events): the target died, or the node under a child's pod is being reclaimed.
    FAILING_OVER = "FailingOver"
    INTERRUPTED = "Interrupted"
    # Compliance of what runs, re-checked when a policy, the trusted keys or a target change.
    COMPLIANT = "Compliant"
    POLICY_VIOLATION = "PolicyViolation"
    AUTHORIZATION_LOST = "AuthorizationLost"
    # Pipelines.
    WAITING_FOR_DATA = "WaitingForData"
    ARTIFACT_MISMATCH = "ArtifactMismatch"
    STAGE_MODIFIED = "StageModified"
    STAGE_NOT_RELEASED = "StageNotReleased"
    RETRYING = "Retrying"


class PreemptReason(StrEnum):
    """Why victims are stopped for a workload (mlplacement_preemptions_total{reason})."""

    PRIORITY = "Priority"  # it outranks them
    RECLAIM_QUOTA = "ReclaimQuota"  # its team, within its nominal quota, takes back what others borrowed


class Phase(StrEnum):
    PENDING = "Pending"
    REFUSED = "Refused"
    WAITING = "Waiting"
    PLACED = "Placed"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


# Phases in which a workload has something running (or about to run) on its target.
ACTIVE_PHASES: Final = (Phase.PLACED.value, Phase.RUNNING.value)


class LeaderState(StrEnum):
    """What an operator replica is, as /readyz and the mlplacement_leader{state} metric say."""

    LEADING = "leading"  # holds the Lease: watches, places, writes
    STANDBY = "standby"  # another replica holds it; this one waits and writes nothing
    LEASE_ERROR = "lease-error"  # the Lease cannot be read or written (RBAC, an API server away): nothing runs
