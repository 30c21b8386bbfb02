"""Status as data: conditions that keep their transition times, phases, and "write only on change"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from mlplacement.api.constants import ConditionType, Phase, Reason
from mlplacement.api.workload import MLWorkloadStatus

MESSAGE_MAX = 32_768
_OWNED_FIELDS = frozenset(
    {
        "observedGeneration",
        "phase",
        "conditions",
        "placement",
        "verified",
        "databricks",
        "attempts",
        "estimatedHourlyCostUSD",
        "history",
        "learned",
    }
)
_OWNED_CONDITIONS = frozenset(
    c.value
    for c in (
        ConditionType.VERIFIED,
        ConditionType.PLACED,
        ConditionType.READY,
        ConditionType.DEGRADED,
        ConditionType.FINISHED,
        ConditionType.COMPLIANT,
    )
)

HISTORY_LENGTH = 10  # status.history keeps the last this many transitions


def placement_target(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``status.placement.target`` ({kind, name, region}) of an MLWorkload status, or None when not placed. The
    status's own mapping, not a copy: rounds read it for every workload."""
    target: Mapping[str, Any] | None = ((status or {}).get("placement") or {}).get("target")
    return target or None


def with_history(previous: Mapping[str, Any] | None, status: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """``status`` with one more status.history entry when its phase or target changed since ``previous``
    (the newest last, at most HISTORY_LENGTH): what `kubectl get -o yaml` shows of how it got here."""
    before, after = previous or {}, dict(status)
    target = placement_target(after) or {}
    where = f"{target.get('kind')}/{target.get('name')}" if target else ""
    was = placement_target(before) or {}
    if after.get("phase") == before.get("phase") and target == was:
        return after
    conditions = {c.get("type"): c for c in after.get("conditions") or []}
    why = conditions.get("Ready") or conditions.get("Placed") or conditions.get("Verified") or {}
    entry = {"time": timestamp(now), "phase": str(after.get("phase") or ""), "reason": str(why.get("reason") or "")}
    if where:
        entry["target"] = where
    after["history"] = [*(before.get("history") or []), entry][-HISTORY_LENGTH:]
    return after


def api_status(status: BaseModel) -> dict[str, Any]:
    """A status model as the API carries it: camelCase, JSON types, only the fields it sets."""
    return status.model_dump(mode="json", by_alias=True, exclude_unset=True)


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: ConditionType,
    status: bool | None,
    reason: Reason | str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with ``type_`` set; lastTransitionTime moves only when the status flips."""
    wanted = "Unknown" if status is None else ("True" if status else "False")
    out: list[dict[str, Any]] = []
    replaced = False
    for condition in conditions:
        if condition.get("type") != type_.value:
            out.append(dict(condition))
            continue
        replaced = True
        transition = condition.get("lastTransitionTime") if condition.get("status") == wanted else None
        out.append(_condition(type_, wanted, reason, message, generation, transition or timestamp(now)))
    if not replaced:
        out.append(_condition(type_, wanted, reason, message, generation, timestamp(now)))
    return out


def _condition(
    type_: ConditionType, status: str, reason: Reason | str, message: str, generation: int | None, when: str
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": type_.value,
        "status": status,
        "reason": str(reason.value if isinstance(reason, Reason) else reason),
        "message": message[:MESSAGE_MAX],
        "lastTransitionTime": when,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def get_condition(status: Mapping[str, Any] | None, type_: ConditionType) -> Mapping[str, Any] | None:
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == type_.value:
            return condition  # type: ignore[no-any-return]
    return None


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields of ``desired`` that differ from ``current``, or None when nothing would change.

    Only the operator's own top-level status fields are compared; kopf's bookkeeping is left alone.
    """
    current = current or {}
    patch = {key: value for key, value in desired.items() if current.get(key) != value}
    return patch or None


# What follows this in a waiting workload's message is what would make it fit (core.counterfactual): worked out
# only when the message is written anyway, and never a reason to write it again.
WOULD_FIT = "; would fit "


def undecided(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """``status`` without the time of its decision and without what would make it fit: two decisions that say
    the same compare equal."""
    out = dict(status or {})
    if isinstance(out.get("placement"), Mapping):
        placement = {k: v for k, v in out["placement"].items() if k != "decidedAt"}
        if isinstance(placement.get("message"), str):
            placement["message"] = placement["message"].split(WOULD_FIT, 1)[0]
        out["placement"] = placement
    if isinstance(out.get("conditions"), list):
        out["conditions"] = [
            {**c, "message": c["message"].split(WOULD_FIT, 1)[0]} if isinstance(c.get("message"), str) else c
            for c in out["conditions"]
        ]
    return out


def with_would_fit(status: Mapping[str, Any], hint: str, reason: str) -> dict[str, Any]:
    """``status`` whose placement message and ``reason``'s condition end with ``hint`` (see WOULD_FIT)."""
    out = dict(status)
    suffix = WOULD_FIT + hint.removeprefix("would fit ")
    placement = out.get("placement")
    if isinstance(placement, Mapping) and isinstance(placement.get("message"), str):
        out["placement"] = {**placement, "message": (placement["message"] + suffix)[:4096]}
    out["conditions"] = [
        {**c, "message": (c["message"] + suffix)[:32768]}
        if c.get("reason") == reason and isinstance(c.get("message"), str)
        else c
        for c in out.get("conditions") or []
    ]
    return out


def owned_status(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of an MLWorkload's status this operator writes: its fields and its condition types.

    What the operator remembers of a status starts from this and then only from its own writes, so a stale
    copy from the watch never replaces newer conditions, and what others write is never claimed as its own.
    """
    owned = {key: value for key, value in (status or {}).items() if key in _OWNED_FIELDS}
    if "conditions" in owned:
        owned["conditions"] = [c for c in owned["conditions"] or [] if c.get("type") in _OWNED_CONDITIONS]
    return owned


def refused_status(
    current: Mapping[str, Any] | None,
    *,
    condition: ConditionType,
    reason: Reason,
    message: str,
    generation: int | None,
    now: datetime,
    phase: Phase = Phase.REFUSED,
) -> dict[str, Any]:
    """Status of a workload that will not be deployed as it is: the failing condition, Ready=False."""
    conditions = (current or {}).get("conditions") or []
    conditions = set_condition(conditions, condition, False, reason, message, generation, now)
    if condition is not ConditionType.READY:
        conditions = set_condition(conditions, ConditionType.READY, False, reason, message, generation, now)
    return api_status(MLWorkloadStatus(observed_generation=generation, phase=phase, conditions=conditions))
