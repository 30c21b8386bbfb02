"""Run lengths learned from a workload's own finished runs (#32): the engine's runtime when none is stated.

A run's work is kept as GPU-hours of the workload's reference product: its wall time times its GPUs times their
speed against the reference (the throughput table, signals override it), so a run on L4s and one on H100s say
the same thing about the work. The estimate is the median of the last LEARNED_RUNS runs.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import LEARNED_RUNS
from mlplacement.core.placement import PlacementRequest
from mlplacement.core.placement.engine import make_context
from mlplacement.core.placement.filters import Context, gpu_throughput
from mlplacement.core.snapshot import Snapshot


def learned_runs(status: Mapping[str, Any] | None) -> list[float]:
    learned = (status or {}).get("learned") or {}
    return [float(v) for v in learned.get("referenceGPUHours") or [] if isinstance(v, int | float)]


def with_learned_runtime(request: PlacementRequest, status: Mapping[str, Any] | None) -> PlacementRequest:
    """``request`` with the learned run length when it states none (and says so); else unchanged."""
    if request.expected_gpu_hours is not None:
        return request
    runs = learned_runs(status)
    if not runs:
        return request
    basis = f"learned from {len(runs)} earlier run{'s' if len(runs) != 1 else ''}"
    return dataclasses.replace(request, expected_gpu_hours=round(statistics.median(runs), 4), runtime_basis=basis)


def run_reference_gpu_hours(
    started: datetime, finished: datetime, gpus: int, product: str | None, reference: str, context: Context
) -> float | None:
    """The work one finished run did, in GPU-hours of ``reference``: None when its times make no sense."""
    hours = (finished - started).total_seconds() / 3600
    if hours <= 0 or gpus <= 0:
        return None
    return round(hours * gpus * gpu_throughput(product, context) / gpu_throughput(reference, context), 4)


def learned_status(status: Mapping[str, Any] | None, reference_gpu_hours: float) -> dict[str, Any]:
    """status.learned with one more finished run, the oldest dropped past LEARNED_RUNS."""
    return {"referenceGPUHours": [*learned_runs(status), reference_gpu_hours][-LEARNED_RUNS:]}


def after_run(
    status: Mapping[str, Any] | None,
    request: PlacementRequest,
    started: datetime,
    finished: datetime,
    product: str | None,
    snapshot: Snapshot,
) -> dict[str, Any] | None:
    """status.learned with one more finished run of ``request`` on GPUs of ``product`` (the snapshot's signals
    may override their speed); None when its times make no sense. What Jobs, edge copies and Databricks runs share."""
    context = make_context(request, PlacementPolicySpec(), snapshot)
    work = run_reference_gpu_hours(
        started, finished, request.gpus_needed, product, request.reference_gpu_product, context
    )
    return None if work is None else learned_status(status, work)


def job_times(job: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """(startTime, completionTime) of a finished Job, as the Job controller recorded them."""
    state = job.get("status") or {}
    try:
        started = datetime.fromisoformat(str(state["startTime"]).replace("Z", "+00:00"))
        finished = datetime.fromisoformat(str(state["completionTime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return started, finished


__all__ = [
    "after_run",
    "job_times",
    "learned_runs",
    "learned_status",
    "run_reference_gpu_hours",
    "with_learned_runtime",
]
