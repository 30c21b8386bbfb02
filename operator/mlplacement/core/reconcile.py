"""The per-workload steps of a reconcile, as pure functions: admit (parse, verify, resolve policy,
dependencies), then the status that records a placement decision, then the status a child's state implies.

The imperative shell calls these and performs what they return; nothing here talks to the cluster.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from mlplacement.api.base import Resource
from mlplacement.api.constants import (
    ADMITTED_ANNOTATIONS,
    ANNOTATION_KEY_ID,
    ANNOTATION_SIGNATURE_EXPIRES,
    LABEL_DEFAULT_POLICY,
    LABEL_PIPELINE,
    LABEL_STAGE,
    SIGNATURE_ANNOTATIONS,
    ConditionType,
    Kind,
    Phase,
    Reason,
)
from mlplacement.api.errors import describe_validation_error
from mlplacement.api.pipeline import MLPipeline
from mlplacement.api.policy import PlacementPolicy, PlacementPolicySpec, PlacementPolicyStatus
from mlplacement.api.workload import (
    CandidateSummary,
    MLWorkload,
    MLWorkloadStatus,
    PlacementStatus,
    TargetRef,
    VerifiedStatus,
    WorkloadType,
)
from mlplacement.core.keyring import Keyring
from mlplacement.core.placement import Decision, PlacementRequest, request_from_workload
from mlplacement.core.signing import DEFAULT_CLOCK_SKEW, Verdict, parse_expires, verify
from mlplacement.core.snapshot import Target
from mlplacement.core.status import api_status, refused_status, set_condition

CANDIDATES_IN_STATUS = 5


@dataclass(frozen=True)
class Refusal:
    """The workload is not placed as it is; ``condition`` says which gate stopped it and why."""

    condition: ConditionType
    reason: Reason
    message: str
    phase: Phase = Phase.REFUSED

    @property
    def is_warning(self) -> bool:
        return self.phase is Phase.REFUSED

    def status(self, current: Mapping[str, Any] | None, generation: int | None, now: datetime) -> dict[str, Any]:
        return refused_status(
            current,
            condition=self.condition,
            reason=self.reason,
            message=self.message,
            generation=generation,
            now=now,
            phase=self.phase,
        )


@dataclass(frozen=True)
class Admitted:
    """A verified workload ready for placement, with the verified policy it is placed under."""

    workload: MLWorkload
    request: PlacementRequest
    policy_name: str
    policy: PlacementPolicySpec
    key_id: str
    digest: str
    policy_key_id: str
    policy_digest: str = ""


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj.get('kind', 'object')} {namespace + '/' if namespace else ''}{meta.get('name', '?')}"


def resolve_policy(
    workload: MLWorkload, policies: Mapping[str, Mapping[str, Any]]
) -> tuple[str, Mapping[str, Any]] | Refusal:
    """The policy a workload names, or the one labelled as default; a Refusal when there is none or several."""
    if workload.spec.policy_ref is not None:
        name = workload.spec.policy_ref.name
        if name not in policies:
            return Refusal(ConditionType.VERIFIED, Reason.POLICY_NOT_FOUND, f"PlacementPolicy {name!r} does not exist")
        return name, policies[name]
    defaults = sorted(
        name
        for name, obj in policies.items()
        if ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_DEFAULT_POLICY) == "true"
    )
    if not defaults:
        return Refusal(
            ConditionType.VERIFIED,
            Reason.POLICY_NOT_FOUND,
            f"no spec.policyRef and no PlacementPolicy labelled {LABEL_DEFAULT_POLICY}=true",
        )
    if len(defaults) > 1:
        return Refusal(
            ConditionType.VERIFIED,
            Reason.POLICY_AMBIGUOUS,
            f"no spec.policyRef and {len(defaults)} default policies: {', '.join(defaults)}",
        )
    return defaults[0], policies[defaults[0]]


@dataclass
class _Checked:
    obj: Mapping[str, Any]
    keyring: Keyring
    checked_at: datetime
    holds_until: datetime | None
    verdict: Verdict
    parsed: Any


class SignatureCheck:
    """Each object's verdict, reused while the object and the keyring are the same ones and the clock has not
    reached the next moment the verdict could change (the signature's expiry, a key's validity bounds):
    re-verifying per workload, or per round, would give the same answer, thousands of times."""

    def __init__(self) -> None:
        self._memo: dict[str, _Checked] = {}

    def verdict(self, name: str, obj: Mapping[str, Any], keyring: Keyring, now: datetime) -> Verdict:
        return self._checked(name, obj, keyring, now).verdict

    def forget(self, name: str) -> None:
        self._memo.pop(name, None)

    def until(self, name: str) -> datetime | None:
        """When the last verdict for ``name`` could next change (an expiry, a key's bounds); None: never."""
        memo = self._memo.get(name)
        return memo.holds_until if memo is not None else None

    def _checked(self, name: str, obj: Mapping[str, Any], keyring: Keyring, now: datetime) -> _Checked:
        memo = self._memo.get(name)
        if (
            memo is not None
            and memo.obj is obj
            and memo.keyring is keyring
            and memo.checked_at <= now
            and (memo.holds_until is None or now < memo.holds_until)
        ):
            return memo
        memo = _Checked(
            obj, keyring, now, verdict_horizon(obj, keyring, now), verify(obj, keyring, now), self._parse(name, obj)
        )
        self._memo[name] = memo
        return memo

    def _parse(self, name: str, obj: Mapping[str, Any]) -> Any:
        return None


class PolicyCheck(SignatureCheck):
    """Each policy's verdict and parsed spec (see SignatureCheck for how long they are reused)."""

    def __call__(
        self, name: str, obj: Mapping[str, Any], keyring: Keyring, now: datetime
    ) -> tuple[Verdict, PlacementPolicySpec | Refusal]:
        checked = self._checked(name, obj, keyring, now)
        return checked.verdict, checked.parsed

    def _parse(self, name: str, obj: Mapping[str, Any]) -> PlacementPolicySpec | Refusal:
        try:
            return PlacementPolicy.model_validate(obj).spec
        except ValidationError as exc:
            return Refusal(
                ConditionType.READY, Reason.INVALID_SPEC, describe_validation_error(exc, f"PlacementPolicy {name}: ")
            )


def _shifted(moment: datetime, by: timedelta) -> datetime | None:
    """``moment + by``, or None (never) when that is past the calendar's end."""
    try:
        return moment + by
    except OverflowError:
        return None


def verdict_horizon(obj: Mapping[str, Any], keyring: Keyring, now: datetime) -> datetime | None:
    """The next moment after ``now`` at which verifying ``obj`` could give another answer (None: never)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    moments: list[datetime | None] = []
    expires = annotations.get(ANNOTATION_SIGNATURE_EXPIRES)
    if expires:
        with contextlib.suppress(ValueError):  # a malformed expiry fails verification for good
            moments.append(_shifted(parse_expires(str(expires)), DEFAULT_CLOCK_SKEW))
    key = keyring.keys.get(str(annotations.get(ANNOTATION_KEY_ID) or ""))
    if key is not None and key.not_before is not None:
        moments.append(_shifted(key.not_before, -DEFAULT_CLOCK_SKEW))
    if key is not None and key.not_after is not None:
        moments.append(_shifted(key.not_after, DEFAULT_CLOCK_SKEW))
    later = [moment for moment in moments if moment is not None and moment > now]
    return min(later) if later else None


def admit(
    obj: Mapping[str, Any],
    *,
    policies: Mapping[str, Mapping[str, Any]],
    keyring: Keyring,
    now: datetime,
    dependency_phases: Mapping[str, str] | None = None,
    policy_check: PolicyCheck | None = None,
    signature: Verdict | Refusal | None = None,
) -> Admitted | Refusal:
    """Parse, verify the workload and its policy, check dependencies. Fail closed at every step.

    ``policy_check`` reuses each policy's verdict across the workloads admitted under it (a drain admits
    thousands under one policy); without it the policy is verified for this call alone. ``signature`` is the
    verdict of a pipeline stage (its pipeline's, given by the pipeline controller) instead of its own."""
    try:
        workload = MLWorkload.model_validate(obj)
    except ValidationError as exc:
        return Refusal(ConditionType.READY, Reason.INVALID_SPEC, describe_validation_error(exc, f"{describe(obj)}: "))
    if isinstance(signature, Refusal):
        return signature
    verdict = signature if signature is not None else verify(obj, keyring, now)
    if not verdict.ok:
        return Refusal(ConditionType.VERIFIED, verdict.reason, verdict.message)
    resolved = resolve_policy(workload, policies)
    if isinstance(resolved, Refusal):
        return resolved
    policy_name, policy_obj = resolved
    policy_verdict, checked = (policy_check or PolicyCheck())(policy_name, policy_obj, keyring, now)
    if not policy_verdict.ok:
        return Refusal(
            ConditionType.VERIFIED,
            Reason.POLICY_UNSIGNED,
            f"PlacementPolicy {policy_name!r} does not verify: {policy_verdict.reason.value}: {policy_verdict.message}",
        )
    if isinstance(checked, Refusal):
        return checked
    policy = checked
    allowed = policy.signing.allowed_key_ids
    if allowed and verdict.key_id not in allowed:
        return Refusal(
            ConditionType.VERIFIED,
            Reason.UNTRUSTED_KEY,
            f"key {verdict.key_id!r} is trusted but PlacementPolicy {policy_name!r} allows only {', '.join(allowed)}",
        )
    phases = dependency_phases or {}
    pending = [name for name in workload.spec.depends_on if phases.get(name) != Phase.SUCCEEDED.value]
    if pending:
        return Refusal(
            ConditionType.PLACED,
            Reason.WAITING_FOR_DEPENDENCIES,
            f"waiting for {', '.join(pending)} to succeed",
            phase=Phase.WAITING,
        )
    created = None
    if workload.metadata.creationTimestamp:
        created = datetime.fromisoformat(workload.metadata.creationTimestamp.replace("Z", "+00:00"))
    request = request_from_workload(workload, created)
    return Admitted(
        workload=workload,
        request=request,
        policy_name=policy_name,
        policy=policy,
        key_id=verdict.key_id or "",
        digest=verdict.digest or "",
        policy_key_id=policy_verdict.key_id or "",
        policy_digest=policy_verdict.digest or "",
    )


_KEPT_METADATA = ("name", "namespace", "uid", "generation", "creationTimestamp", "labels", "deletionTimestamp")


def admission_view(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What admission reads of an MLWorkload or PlacementPolicy, and nothing else.

    The operator keeps this instead of the whole object (no managedFields, status or last-applied copy), and
    admits again only when it changes: a status write, the operator's own included, never re-admits.
    """
    meta = obj.get("metadata") or {}
    kept = {key: meta[key] for key in _KEPT_METADATA if key in meta}
    annotations = meta.get("annotations") or {}
    kept["annotations"] = {
        key: annotations[key] for key in (*SIGNATURE_ANNOTATIONS, *ADMITTED_ANNOTATIONS) if key in annotations
    }
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept, "spec": obj.get("spec")}


def _signed_part(obj: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return obj.get("spec"), {key: annotations.get(key) for key in SIGNATURE_ANNOTATIONS}


_MODELS: Mapping[str, type[Resource]] = {
    Kind.ML_WORKLOAD.value: MLWorkload,
    Kind.PLACEMENT_POLICY.value: PlacementPolicy,
    Kind.ML_PIPELINE.value: MLPipeline,
}


def invalid_spec(obj: Mapping[str, Any]) -> str | None:
    """What the operator's model refuses in a signed kind (apiVersion, spec, unknown fields), one line per field
    path; None when it is valid. Admission, ``sign`` and ``verify`` judge with this one rule."""
    try:
        _MODELS.get(str(obj.get("kind")), MLWorkload).model_validate(obj)
    except ValidationError as exc:
        return describe_validation_error(exc, f"{describe(obj)}: ")
    return None


def admission_problem(
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    keyring: Keyring,
    now: datetime,
    *,
    user: str = "",
    operator_user: str = "",
) -> str | None:
    """Why an MLWorkload, MLPipeline or PlacementPolicy should be rejected at apply time, or None to admit it.

    Only a change of what is signed (spec, signature annotations) is judged: finalizer, label and other
    metadata updates pass, so cleanup of an object whose signature has since expired is never blocked. A
    pipeline stage's MLWorkload carries no signature of its own: only the operator (``operator_user``) may
    create it or change its spec; the operator still checks it against the signed pipeline before it runs.
    """
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    if old is not None and _signed_part(old) == _signed_part(obj):
        return None
    labels = meta.get("labels") or {}
    if obj.get("kind") == Kind.ML_WORKLOAD and LABEL_PIPELINE in labels:
        if operator_user and user == operator_user:
            return None
        return (
            f"{Reason.STAGE_MODIFIED.value}: {describe(obj)} is stage {labels.get(LABEL_STAGE, '?')!r} of MLPipeline "
            f"{labels[LABEL_PIPELINE]!r}: only the operator writes a stage; change and re-sign the pipeline"
        )
    problem = invalid_spec(obj)
    if problem is not None:
        return f"{Reason.INVALID_SPEC.value}: {problem}"
    verdict = verify(obj, keyring, now)
    if not verdict.ok:
        return f"{verdict.reason.value}: {verdict.message}"
    return None


def policy_status(
    obj: Mapping[str, Any], keyring: Keyring, now: datetime, workloads: int, current: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A PlacementPolicy's status: `Verified` with the verdict (or InvalidSpec) and how many workloads use it."""
    generation = (obj.get("metadata") or {}).get("generation")
    conditions = (current or {}).get("conditions") or []
    try:
        PlacementPolicy.model_validate(obj)
    except ValidationError as exc:
        ok, reason, message = False, Reason.INVALID_SPEC, describe_validation_error(exc, f"{describe(obj)}: ")
    else:
        verdict = verify(obj, keyring, now)
        ok, reason = verdict.ok, verdict.reason
        message = f"signed by {verdict.key_id!r}" if verdict.ok else verdict.message
    conditions = set_condition(conditions, ConditionType.VERIFIED, ok, reason, message, generation, now)
    return api_status(PlacementPolicyStatus(observed_generation=generation, conditions=conditions, workloads=workloads))


def verified_condition(
    conditions: Sequence[Mapping[str, Any]], admitted: Admitted, now: datetime
) -> list[dict[str, Any]]:
    """``conditions`` with Verified=True naming the workload's and its policy's keys."""
    return set_condition(
        conditions,
        ConditionType.VERIFIED,
        True,
        Reason.VERIFIED,
        f"signed by {admitted.key_id!r}; PlacementPolicy {admitted.policy_name!r} by {admitted.policy_key_id!r}",
        admitted.workload.metadata.generation,
        now,
    )


def _verified(admitted: Admitted) -> VerifiedStatus:
    return VerifiedStatus(key_id=admitted.key_id, digest=admitted.digest, policy_key_id=admitted.policy_key_id)


def decision_status(
    admitted: Admitted, decision: Decision, current: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """Status recording a decision: Verified=True, Placed True/False with the explanation, the candidates."""
    generation = admitted.workload.metadata.generation
    conditions = verified_condition((current or {}).get("conditions") or [], admitted, now)
    candidates = [CandidateSummary(kind=c.target.kind, name=c.target.name, score=c.score) for c in decision.top]
    rejected = [
        CandidateSummary(kind=t.kind, name=t.name, reasons=[r.reason]) for r in decision.rejections for t in r.targets
    ]
    candidates += rejected[: max(0, CANDIDATES_IN_STATUS * 2 - len(candidates))]
    placement: dict[str, Any] = {
        "decided_at": now.replace(microsecond=0),
        "message": decision.message[:4096],
        "candidates": candidates,
    }
    if decision.signals_age_seconds is not None:
        placement["signals_age_seconds"] = round(decision.signals_age_seconds, 1)
    chosen = decision.chosen
    extra: dict[str, Any] = {}
    if chosen is not None:
        target = chosen.target
        ref = TargetRef(kind=target.kind, name=target.name, region=target.region)
        if target.pin is not None:  # set only when pinned: the API takes no null here
            ref = TargetRef(kind=target.kind, name=target.name, region=target.region, block="=".join(target.pin))
        placement.update(target=ref, score=chosen.score)
        conditions = set_condition(
            conditions, ConditionType.PLACED, True, Reason.DISPATCHED, decision.message, generation, now
        )
        dispatched = f"dispatched to {target.kind.value} {target.name}"
        conditions = set_condition(
            conditions, ConditionType.READY, False, Reason.DISPATCHED, dispatched, generation, now
        )
        phase = Phase.PLACED
        extra["estimated_hourly_cost_usd"] = chosen.hourly_cost_usd
    else:
        for condition in (ConditionType.PLACED, ConditionType.READY):
            conditions = set_condition(conditions, condition, False, decision.reason, decision.message, generation, now)
        phase = Phase.WAITING
    status = MLWorkloadStatus(
        observed_generation=generation,
        phase=phase,
        conditions=conditions,
        placement=PlacementStatus(**placement),
        verified=_verified(admitted),
        **extra,
    )
    return api_status(status)


def child_status(
    workload: MLWorkload, child: Mapping[str, Any], current: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any] | None:
    """What a child's state means for the workload: Running/Ready, or Finished with Succeeded/Failed."""
    generation = workload.metadata.generation
    conditions = (current or {}).get("conditions") or []
    child_state = child.get("status") or {}
    if child.get("kind") == "Job":
        job_conditions = {c.get("type"): c for c in child_state.get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in job_conditions or "SuccessCriteriaMet" in job_conditions:
            conditions = set_condition(
                conditions, ConditionType.FINISHED, True, Reason.SUCCEEDED, "Job completed", generation, now
            )
            conditions = set_condition(
                conditions, ConditionType.READY, True, Reason.SUCCEEDED, "Job completed", generation, now
            )
            return api_status(MLWorkloadStatus(phase=Phase.SUCCEEDED, conditions=conditions))
        if "Failed" in job_conditions or "FailureTarget" in job_conditions:
            failed = job_conditions.get("Failed") or job_conditions.get("FailureTarget") or {}
            message = f"Job failed: {failed.get('reason', '')} {failed.get('message', '')}".strip()
            conditions = set_condition(
                conditions, ConditionType.FINISHED, True, Reason.FAILED, message, generation, now
            )
            conditions = set_condition(conditions, ConditionType.READY, False, Reason.FAILED, message, generation, now)
            conditions = set_condition(
                conditions, ConditionType.DEGRADED, True, Reason.FAILED, message, generation, now
            )
            return api_status(MLWorkloadStatus(phase=Phase.FAILED, conditions=conditions))
        # Pods that run, not pods that exist: Job `active` counts pending pods the scheduler never bound. A
        # distributed training runs when every worker does (torchrun waits for all of them).
        ready, workers = int(child_state.get("ready") or 0), workload.spec.workers
        if ready >= workers:
            message = "Job is running" if workers == 1 else f"Job is running ({ready}/{workers} workers ready)"
            conditions = set_condition(conditions, ConditionType.READY, True, Reason.RUNNING, message, generation, now)
            return api_status(MLWorkloadStatus(phase=Phase.RUNNING, conditions=conditions))
        return None
    if child.get("kind") == "Deployment" and workload.spec.type is WorkloadType.INFERENCE:
        wanted = workload.spec.effective_replicas
        available = int(child_state.get("availableReplicas") or 0)
        if available >= wanted:
            message = f"{available}/{wanted} replicas available"
            conditions = set_condition(conditions, ConditionType.READY, True, Reason.RUNNING, message, generation, now)
            return api_status(MLWorkloadStatus(phase=Phase.RUNNING, conditions=conditions))
        return None
    return None


def apply_failed_status(
    admitted: Admitted, target: str, failure: str, current: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """Verified, but Placed=False (ApplyFailed): ``target`` was chosen and the cluster refused the children."""
    generation = admitted.workload.metadata.generation
    message = f"could not create the children on {target}: {failure}"
    conditions = (current or {}).get("conditions") or []
    conditions = verified_condition(conditions, admitted, now)
    for condition in (ConditionType.PLACED, ConditionType.READY):
        conditions = set_condition(conditions, condition, False, Reason.APPLY_FAILED, message, generation, now)
    status = MLWorkloadStatus(
        observed_generation=generation, phase=Phase.WAITING, verified=_verified(admitted), conditions=conditions
    )
    return api_status(status)


def compliance_conditions(
    status: Mapping[str, Any], violation: str, moved_to: Target | None, generation: int | None, now: datetime
) -> list[dict[str, Any]] | None:
    """The conditions with Compliant set, when there is news: a violation where it runs (Warn leaves it running),
    or compliance again after a move or a new placement onto ``moved_to``; None when nothing changes."""
    conditions = status.get("conditions") or []
    was = next((c for c in conditions if c.get("type") == ConditionType.COMPLIANT.value), None)
    if violation and moved_to is None:
        message = f"{violation}; left running (enforcement Warn)"
        return set_condition(
            conditions, ConditionType.COMPLIANT, False, Reason.POLICY_VIOLATION, message, generation, now
        )
    if moved_to is None or (was is None and not violation):
        return None
    message = f"runs on {moved_to.kind.value} {moved_to.name}, which the rules allow"
    if violation:
        message += f" (moved from {violation})"
    return set_condition(conditions, ConditionType.COMPLIANT, True, Reason.COMPLIANT, message, generation, now)
