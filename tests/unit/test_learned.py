"""Run lengths learned from a workload's own finished runs (core.learned, #32)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import LEARNED_RUNS
from mlplacement.core.learned import learned_status, run_reference_gpu_hours, with_learned_runtime
from mlplacement.core.placement.engine import make_context
from tests.builders import make_fleet, make_request

START = datetime(2026, 11, 22, 8, tzinfo=UTC)
CONTEXT = make_context(make_request(), PlacementPolicySpec(), make_fleet())


@pytest.mark.parametrize(
    ("hours", "gpus", "product", "work"),
    [
        (3.0, 2, "NVIDIA-A100", 6.0),
        (3.0, 2, "NVIDIA-H100", 15.0),  # an H100 does 2.5 A100s' work an hour
        (10.0, 1, "NVIDIA-L4", 3.0),  # an L4 does 0.3 of an A100's
        (2.0, 4, None, 8.0),  # a product nobody named counts as the reference
    ],
    ids=["on the reference", "on faster GPUs", "on slower GPUs", "product unknown"],
)
def test_a_runs_work_is_counted_in_reference_gpu_hours(
    hours: float, gpus: int, product: str | None, work: float
) -> None:
    finished = START + timedelta(hours=hours)
    assert run_reference_gpu_hours(START, finished, gpus, product, "NVIDIA-A100", CONTEXT) == work


def test_nonsense_times_teach_nothing() -> None:
    assert run_reference_gpu_hours(START, START, 2, None, "NVIDIA-A100", CONTEXT) is None
    assert run_reference_gpu_hours(START, START - timedelta(hours=1), 2, None, "NVIDIA-A100", CONTEXT) is None


def test_only_the_last_runs_are_kept() -> None:
    status: dict[str, object] = {}
    for run in range(LEARNED_RUNS + 3):
        status = {"learned": learned_status(status, float(run))}
    assert status["learned"] == {"referenceGPUHours": [float(r) for r in range(3, LEARNED_RUNS + 3)]}


def test_the_median_of_learned_runs_is_used_only_when_nothing_is_stated() -> None:
    status = {"learned": {"referenceGPUHours": [4.0, 40.0, 5.0]}}
    learned = with_learned_runtime(make_request(), status)
    assert (learned.expected_gpu_hours, learned.runtime_basis) == (5.0, "learned from 3 earlier runs")
    stated = make_request(expected_gpu_hours=12.0, runtime_basis="stated")
    assert with_learned_runtime(stated, status) is stated
    assert with_learned_runtime(make_request(), {}).expected_gpu_hours is None
