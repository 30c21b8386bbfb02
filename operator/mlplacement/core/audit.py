"""Audit records from what the controller knows when it acts (pure: the clock and the actor are passed in)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mlplacement.api.audit import AuditAction, AuditCandidate, AuditObject, AuditPolicy, AuditRecord, AuditTarget
from mlplacement.core.placement import Decision
from mlplacement.core.reconcile import Admitted

TOP_CANDIDATES = 3


def audit_record(
    *,
    now: datetime,
    actor: str,
    action: AuditAction,
    obj: Mapping[str, Any],
    reason: str,
    message: str = "",
    admitted: Admitted | None = None,
    decision: Decision | None = None,
    signals_updated_at: datetime | None = None,
    previous: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """One record; ``previous`` is the status placement target it ran on before (a move, a stop)."""
    meta = obj.get("metadata") or {}
    target = None
    candidates: list[AuditCandidate] = []
    if decision is not None and decision.chosen is not None:
        chosen = decision.chosen.target
        target = AuditTarget(kind=chosen.kind.value, name=chosen.name, region=chosen.region)
    if decision is not None:
        candidates = [
            AuditCandidate(
                kind=c.target.kind.value, name=c.target.name, score=c.score, hourly_cost_usd=c.hourly_cost_usd
            )
            for c in decision.candidates[:TOP_CANDIDATES]
        ]
    return AuditRecord(
        time=now,
        actor=actor,
        action=action,
        object=AuditObject(
            kind=str(obj.get("kind") or "MLWorkload"),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=meta.get("generation"),
        ),
        reason=reason,
        message=message,
        workload_key_id=admitted.key_id if admitted is not None else "",
        workload_digest=admitted.digest if admitted is not None else "",
        policy=(
            AuditPolicy(name=admitted.policy_name, key_id=admitted.policy_key_id, digest=admitted.policy_digest)
            if admitted is not None
            else None
        ),
        signals_updated_at=signals_updated_at,
        target=target,
        previous_target=(
            AuditTarget(
                kind=str(previous.get("kind")), name=str(previous.get("name")), region=str(previous.get("region") or "")
            )
            if previous
            else None
        ),
        candidates=candidates,
    )
