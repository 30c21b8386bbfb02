"""The trace file: a time-ordered list of workload arrivals and fleet events for `mlplacement simulate`.

Versioned contract (``apiVersion: mlplacement.io/trace/v1``, ``kind: Trace``). Times are seconds from the
start of the trace. Event types:

- ``arrive``: an MLWorkload (``workload``, a manifest) arrives and runs ``durationMinutes`` once placed; an
  inference workload may carry ``requestCurve``, its load through the day;
- ``spotPrice``: a pool's spot price and preemption probability change;
- ``preempt``: a spot pool's nodes are reclaimed: every workload running there goes back to the queue;
- ``outage`` / ``recover``: a target becomes unhealthy (its workloads fail over) or healthy again;
- ``capacity``: a pool's or edge cluster's total GPUs change.
"""

from typing import Annotated, Any, Literal

from pydantic import Field

from mlplacement.api.base import WireModel

TRACE_API_VERSION = "mlplacement.io/trace/v1"

Seconds = Annotated[float, Field(ge=0, le=10 * 365 * 86_400)]
Share = Annotated[float, Field(ge=0, le=1)]


class TraceEvent(WireModel):
    at: Seconds
    type: Literal["arrive", "spotPrice", "preempt", "outage", "recover", "capacity"]
    workload: dict[str, Any] | None = None
    duration_minutes: Annotated[float, Field(gt=0, le=100_000)] = 60.0
    target: str | None = Field(default=None, description="Pool, edge cluster or workspace name.")
    gpu_hour_usd: Annotated[float, Field(ge=0)] | None = None
    preemption_probability: Annotated[float, Field(ge=0, le=1)] | None = None
    gpus_total: Annotated[int, Field(ge=0)] | None = None
    request_curve: Annotated[list[Share], Field(min_length=24, max_length=24)] | None = Field(
        default=None,
        description="arrive, inference: the share of the workload's requestsPerSecond (its peak) offered in each "
        "hour of the day (UTC), hour 0 first. Without it the declared rate holds all day.",
    )


class Trace(WireModel):
    api_version: Literal["mlplacement.io/trace/v1"] = Field(alias="apiVersion")
    kind: Literal["Trace"]
    seed: int | None = None
    events: Annotated[list[TraceEvent], Field(max_length=1_000_000)]


__all__ = ["TRACE_API_VERSION", "Trace", "TraceEvent"]
