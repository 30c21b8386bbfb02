"""Pre-warming: when recurring runs are expected, and which placeholders to hold for them now (pure).

A recurring MLWorkload (trainingFrequency Hourly, Daily or Weekly with intent.schedule) gets a new generation
from its owner at each scheduled time. Ahead of that time the operator holds the GPUs of its last run on the
pool it ran on with placeholder pods of the lowest priority (the balloon pattern): any real pod preempts them,
and the cluster autoscaler has brought the nodes up before the run arrives instead of after.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from mlplacement.api.policy import Prewarming
from mlplacement.api.workload import Schedule, TrainingFrequency, Weekday
from mlplacement.core.snapshot import Target

WEEKDAYS = list(Weekday)  # Monday first, as datetime.weekday() counts


def next_run(frequency: TrainingFrequency, schedule: Schedule, after: datetime) -> datetime | None:
    """The first scheduled time strictly after ``after`` (aware, in UTC); None for a one-off workload."""
    after = after.astimezone(UTC)
    candidate = after.replace(minute=schedule.minute, second=0, microsecond=0)
    if frequency is TrainingFrequency.HOURLY:
        step = timedelta(hours=1)
    elif frequency is TrainingFrequency.DAILY:
        candidate = candidate.replace(hour=schedule.hour or 0)
        step = timedelta(days=1)
    elif frequency is TrainingFrequency.WEEKLY:
        weekday = WEEKDAYS.index(schedule.weekday or Weekday.MONDAY)
        candidate = candidate.replace(hour=schedule.hour or 0) + timedelta(days=weekday - after.weekday())
        step = timedelta(weeks=1)
    else:
        return None
    while candidate <= after:  # at most one step behind
        candidate += step
    return candidate


@dataclass(frozen=True, slots=True)
class Recurring:
    """A recurring workload as pre-warming sees it."""

    key: str  # namespace/name
    uid: str
    frequency: TrainingFrequency
    schedule: Schedule
    gpus: int  # per pod
    pods: int
    pool: Target | None  # the GPU pool its last run used; None: nothing to pre-warm (edge, Databricks, never ran)
    active: bool  # a run is waiting, placed or running now
    last_placed: datetime | None  # when its latest run was placed


@dataclass(frozen=True, slots=True)
class Expected:
    """A run expected within the pre-warming window, and whether a placeholder holds its GPUs."""

    workload: Recurring
    at: datetime
    opened: datetime  # when its window opened (leadMinutes before ``at``)
    held: bool
    why_not: str = ""

    @property
    def gpus(self) -> int:
        return self.workload.gpus * self.workload.pods

    @property
    def hourly_usd(self) -> float:
        pool = self.workload.pool
        return 0.0 if pool is None else pool.gpu_hour_usd * self.gpus


def expected_runs(workloads: Iterable[Recurring], now: datetime, rules: Prewarming) -> list[Expected]:
    """Runs expected between ``leadMinutes`` ago and ``leadMinutes`` from now that have not arrived, earliest
    first; a placeholder for each while the policy's GPUs and dollars last (``held``), else why not.

    A run has arrived once the workload was placed at or after its window opened, or while it is active.
    """
    lead = timedelta(minutes=rules.lead_minutes)
    due: list[tuple[datetime, str, Recurring]] = []
    for workload in workloads:
        at = next_run(workload.frequency, workload.schedule, now - lead)
        if at is None or at - lead > now or workload.active:
            continue
        if workload.last_placed is not None and workload.last_placed >= at - lead:
            continue
        due.append((at, workload.key, workload))
    out: list[Expected] = []
    gpus, dollars = 0, 0.0
    for at, _, workload in sorted(due, key=lambda item: (item[0], item[1])):
        expected = Expected(workload, at, at - lead, held=False)
        why_not = ""
        limit = rules.max_hourly_cost_usd
        if workload.pool is None:
            why_not = "its last run was not on a GPU pool"
        elif not workload.pool.healthy:
            why_not = f"pool {workload.pool.name} is unhealthy"
        elif gpus + expected.gpus > rules.max_gpus:
            why_not = f"over the policy's {rules.max_gpus} placeholder GPUs"
        elif limit is not None and dollars + expected.hourly_usd > limit:
            why_not = f"over the policy's ${limit:g}/h for placeholders"
        if why_not:
            out.append(replace(expected, why_not=why_not))
            continue
        gpus += expected.gpus
        dollars += expected.hourly_usd
        out.append(replace(expected, held=True))
    return out


def held(expected: Sequence[Expected]) -> list[Expected]:
    return [e for e in expected if e.held]
