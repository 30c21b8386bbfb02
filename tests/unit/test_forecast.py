"""Pre-warming's forecast: when a recurring run is next expected, and which placeholders the budget allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlplacement.api.policy import Prewarming
from mlplacement.api.workload import Intent, Schedule, TrainingFrequency, Weekday
from mlplacement.core.forecast import Recurring, expected_runs, next_run
from tests.builders import pool

SUNDAY_NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 2026-11-22 is a Sunday


@pytest.mark.parametrize(
    ("frequency", "schedule", "after", "expected"),
    [
        pytest.param("Hourly", {"minute": 15}, SUNDAY_NOON, "2026-11-22T12:15", id="hourly: later this hour"),
        pytest.param("Hourly", {"minute": 0}, SUNDAY_NOON, "2026-11-22T13:00", id="hourly: exactly now is the next"),
        pytest.param("Daily", {"hour": 2, "minute": 30}, SUNDAY_NOON, "2026-11-23T02:30", id="daily: tomorrow"),
        pytest.param("Daily", {"hour": 18}, SUNDAY_NOON, "2026-11-22T18:00", id="daily: later today"),
        pytest.param(
            "Weekly", {"weekday": "Monday", "hour": 2}, SUNDAY_NOON, "2026-11-23T02:00", id="weekly: next Monday"
        ),
        pytest.param(
            "Weekly", {"weekday": "Sunday", "hour": 6}, SUNDAY_NOON, "2026-11-29T06:00", id="weekly: a week on"
        ),
        pytest.param(
            "Daily",
            {"hour": 2},
            datetime(2026, 11, 22, 13, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo")),
            "2026-11-23T02:00",
            id="schedules are UTC whatever zone the clock reads",
        ),
    ],
)
def test_next_run(frequency: str, schedule: dict[str, Any], after: datetime, expected: str) -> None:
    found = next_run(TrainingFrequency(frequency), Schedule.model_validate(schedule), after)
    assert found is not None
    assert found.strftime("%Y-%m-%dT%H:%M") == expected
    assert found.tzinfo is UTC


PERIOD = {"Hourly": timedelta(hours=1), "Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}


@settings(max_examples=300, deadline=None)
@given(
    frequency=st.sampled_from(["Hourly", "Daily", "Weekly"]),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    weekday=st.sampled_from(list(Weekday)),
    after=st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)),
)
def test_property_the_next_run_is_the_first_scheduled_moment_after(
    frequency: str, minute: int, hour: int, weekday: Weekday, after: datetime
) -> None:
    schedule = Schedule(minute=minute, hour=hour, weekday=weekday)
    found = next_run(TrainingFrequency(frequency), schedule, after)
    assert found is not None
    assert after < found <= after + PERIOD[frequency]
    assert found.minute == minute
    if frequency != "Hourly":
        assert found.hour == hour
    if frequency == "Weekly":
        assert list(Weekday)[found.weekday()] is weekday


@pytest.mark.parametrize(
    "intent",
    [
        pytest.param({"schedule": {"minute": 0}}, id="a schedule for a one-off workload"),
        pytest.param({"trainingFrequency": "Daily", "schedule": {"minute": 0}}, id="a daily schedule without hour"),
        pytest.param({"trainingFrequency": "Weekly", "schedule": {"hour": 2}}, id="a weekly schedule without weekday"),
        pytest.param({"trainingFrequency": "Hourly", "schedule": {"minute": 60}}, id="minute 60"),
    ],
)
def test_schedules_that_cannot_be_followed_are_refused(intent: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Intent.model_validate(intent)


RULES = Prewarming(enabled=True, lead_minutes=15, max_gpus=8)
NIGHTLY = Schedule(hour=2, minute=0)
TWO_AM = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def recurring(key: str = "ns/nightly", **overrides: Any) -> Recurring:
    fields: dict[str, Any] = {
        "key": key,
        "uid": f"uid-{key}",
        "frequency": TrainingFrequency.DAILY,
        "schedule": NIGHTLY,
        "gpus": 4,
        "pods": 1,
        "pool": pool("a100", free=0, gpu_hour_usd=3.0),
        "active": False,
        "last_placed": TWO_AM - timedelta(days=1),
    }
    fields.update(overrides)
    return Recurring(**fields)


@pytest.mark.parametrize(
    ("workload", "now", "held"),
    [
        pytest.param(recurring(), TWO_AM - timedelta(minutes=10), True, id="ten minutes ahead: held"),
        pytest.param(recurring(), TWO_AM - timedelta(minutes=20), False, id="twenty minutes ahead: not yet"),
        pytest.param(recurring(), TWO_AM + timedelta(minutes=10), True, id="ten minutes late: still held"),
        pytest.param(recurring(), TWO_AM + timedelta(minutes=20), False, id="twenty minutes late: given up"),
        pytest.param(recurring(active=True), TWO_AM - timedelta(minutes=5), False, id="a run is on: nothing"),
        pytest.param(
            recurring(last_placed=TWO_AM - timedelta(minutes=3)),
            TWO_AM + timedelta(minutes=1),
            False,
            id="tonight's run came early and is done: nothing",
        ),
    ],
)
def test_a_placeholder_is_held_around_the_expected_run(workload: Recurring, now: datetime, held: bool) -> None:
    found = expected_runs([workload], now, RULES)
    assert [e.held for e in found] == ([True] if held else [])


def test_the_budget_holds_the_earliest_runs_and_says_why_not_the_rest() -> None:
    early = recurring("ns/early", schedule=Schedule(hour=1, minute=55))
    later = recurring("ns/later")
    big = recurring("ns/big", schedule=Schedule(hour=1, minute=58), gpus=8)
    elsewhere = recurring("ns/edge", pool=None)
    sick = recurring("ns/sick", pool=pool("sick", healthy=False))
    found = {e.workload.key: e for e in expected_runs([later, big, early, elsewhere, sick], TWO_AM, RULES)}
    assert [k for k, e in found.items() if e.held] == ["ns/early", "ns/later"]
    assert found["ns/big"].why_not == "over the policy's 8 placeholder GPUs"
    assert found["ns/edge"].why_not == "its last run was not on a GPU pool"
    assert found["ns/sick"].why_not == "pool sick is unhealthy"
    dollars = Prewarming(enabled=True, max_gpus=100, max_hourly_cost_usd=15)
    found = {e.workload.key: e for e in expected_runs([later, early], TWO_AM, dollars)}
    assert found["ns/later"].why_not == "over the policy's $15/h for placeholders"  # $12/h held already
