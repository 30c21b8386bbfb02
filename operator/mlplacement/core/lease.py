"""Lease-based leader election, pure: what a candidate writes to a coordination.k8s.io Lease, and when.

The rules are client-go's (and so controller-runtime's and Kueue's): a Lease is free when nobody holds it,
when its holder released it, or when it has not changed for its duration **as seen on this candidate's own
monotonic clock**. Renew times written by other pods are never compared with this pod's wall clock, so
skewed clocks cannot hand the lease to two pods. The leader gives up (stops writing) when it has not renewed
for the renew deadline, which is shorter than the lease duration: it stops before anyone may take over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the Lease's MicroTime fields


class LeaseAction(StrEnum):
    CREATE = "create"  # no Lease yet: create it holding it
    TAKE = "take"  # free or expired: write it with us as holder (one more transition)
    RENEW = "renew"  # ours: write a new renew time
    WAIT = "wait"  # someone else holds it and it is fresh


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that election reads and writes, and the version a write must match."""

    holder: str = ""
    duration_seconds: int = 0
    transitions: int = 0
    acquire_time: str = ""
    renew_time: str = ""
    resource_version: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> LeaseRecord:
        spec = obj.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=_int(spec.get("leaseDurationSeconds")),
            transitions=_int(spec.get("leaseTransitions")),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
        )

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return 0  # a hand-edited Lease must not stop the election (a zero duration falls back to ours)


def microtime(now: datetime) -> str:
    return now.astimezone(UTC).strftime(MICROTIME)


@dataclass
class LeaderElection:
    """One candidate's view of the Lease. Feed it every read with ``observe``; ask ``decide`` what to do."""

    identity: str
    lease_duration_seconds: float
    renew_deadline_seconds: float
    observed: LeaseRecord | None = None
    observed_at: float = 0.0  # monotonic time the observed record last changed
    renewed_at: float | None = None  # monotonic time of our last successful write as holder

    def __post_init__(self) -> None:
        if not 0 < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("the renew deadline must be > 0 and shorter than the lease duration")

    def observe(self, record: LeaseRecord | None, now: float) -> None:
        if record != self.observed:
            self.observed, self.observed_at = record, now
        if record is None or record.holder != self.identity:
            self.renewed_at = None  # someone else holds it (or nobody): we lead no more, whatever our deadline says

    def decide(self, now: float) -> LeaseAction:
        record = self.observed
        if record is None:
            return LeaseAction.CREATE
        if record.holder == self.identity:
            return LeaseAction.RENEW
        if record.holder and now < self.observed_at + _duration(record, self.lease_duration_seconds):
            return LeaseAction.WAIT
        return LeaseAction.TAKE

    def desired(self, action: LeaseAction, wall: datetime) -> LeaseRecord:
        """The record to write for ``action`` (CREATE, TAKE or RENEW) at wall-clock time ``wall``."""
        stamp = microtime(wall)
        previous = self.observed or LeaseRecord()
        mine = action is LeaseAction.RENEW
        return LeaseRecord(
            holder=self.identity,
            duration_seconds=max(1, math.ceil(self.lease_duration_seconds)),  # whole seconds; up, never shorter
            transitions=previous.transitions if mine or action is LeaseAction.CREATE else previous.transitions + 1,
            acquire_time=previous.acquire_time if mine and previous.acquire_time else stamp,
            renew_time=stamp,
            resource_version=previous.resource_version,
        )

    def released(self, wall: datetime) -> LeaseRecord:
        """What a leader writes when it stops on purpose: nobody holds it, so a standby takes it at once."""
        previous = self.observed or LeaseRecord()
        return LeaseRecord(
            holder="",
            duration_seconds=1,
            transitions=previous.transitions,
            acquire_time=previous.acquire_time,
            renew_time=microtime(wall),
            resource_version=previous.resource_version,
        )

    def wrote(self, record: LeaseRecord, now: float) -> None:
        """A write of ours succeeded; ``record`` carries the new resourceVersion."""
        self.observe(record, now)
        self.renewed_at = now if record.holder == self.identity else None

    def leading(self, now: float) -> bool:
        """True while our last successful renewal is within the renew deadline."""
        return self.renewed_at is not None and now - self.renewed_at < self.renew_deadline_seconds


def _duration(record: LeaseRecord, default: float) -> float:
    # The holder's own duration governs its lease; a record without one falls back to ours.
    return float(record.duration_seconds) if record.duration_seconds > 0 else default
