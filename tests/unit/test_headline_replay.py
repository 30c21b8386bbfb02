"""The replay behind the seeds' headline (#33): requests follow a day's curve hour by hour, a cold start lasts
longer for a bigger model, a service that never ran counts against the SLA, and the central-region baseline
keeps everything in the region with the most GPUs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mlplacement.adapters.files import load_fleet
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.trace import Trace
from mlplacement.core.latency import Served
from mlplacement.core.simulation import (
    central_region_strategy,
    cold_start_s,
    engine_strategy,
    hour_spans,
    simulate,
)
from tests.builders import make_request, make_workload
from tests.conftest import REPO

FLEET = load_fleet(REPO / "examples/headline/fleet.yaml")
START = FLEET.decision_time(datetime(2026, 11, 22, tzinfo=UTC))  # 10:00 UTC


def service(name: str = "serve", target_ms: float = 150, **intent: Any) -> dict[str, Any]:
    return make_workload(
        name,
        type="Inference",
        replicas=2,
        resources={"gpus": 1},
        model={"uri": "s3://m/", "sizeGB": 1.0},
        intent={
            "latencyClass": "Realtime",
            "latencyTargetMs": target_ms,
            "dataRegion": "eu-west-1",
            "priority": 600,
            "requestsPerSecond": 60.0,
            "serviceTimeMs": 20,
        }
        | intent,
    )


def replay(*arrivals: dict[str, Any], strategy: Any = None) -> Any:
    trace = Trace.model_validate({"apiVersion": "mlplacement.io/trace/v1", "kind": "Trace", "events": list(arrivals)})
    return simulate(FLEET, trace, strategy or engine_strategy(PlacementPolicySpec()), "engine", START)


def arrive(workload: dict[str, Any], minutes: float = 120, **fields: Any) -> dict[str, Any]:
    return {"at": 0, "type": "arrive", "durationMinutes": minutes, "workload": workload} | fields


def requests(report: Any) -> float:
    return sum(weight for weight, _ in report.request_latency)


CURVE = [hour / 100 for hour in range(24)]  # hour h's share is h/100: the share names the hour


@pytest.mark.parametrize(
    ("begin", "end", "spans"),
    [
        pytest.param(0, 900, [(0, 900, 10)], id="inside one hour"),
        pytest.param(1800, 5400, [(1800, 3600, 10), (3600, 5400, 11)], id="10:30 to 11:30, cut at 11:00"),
        pytest.param(
            0,
            86_400 + 60,
            [*((3600 * i, 3600 * (i + 1), (10 + i) % 24) for i in range(24)), (86_400, 86_460, 10)],
            id="a whole day comes back to the hour it began in",
        ),
    ],
)
def test_a_span_is_cut_at_each_hour_of_the_day(begin: float, end: float, spans: list[Any]) -> None:
    assert list(hour_spans(START, begin, end, CURVE)) == [(b, e, CURVE[h]) for b, e, h in spans]


def test_without_a_curve_a_span_is_one_piece_at_the_peak() -> None:
    assert list(hour_spans(START, 0, 7200, None)) == [(0, 7200, 1.0)]


def test_a_day_curve_weights_requests_and_queueing_by_the_hour() -> None:
    peak = replay(arrive(service()))
    half = replay(arrive(service(), requestCurve=[0.5] * 24))
    assert requests(half) == pytest.approx(requests(peak) / 2)
    tail = {
        name: max(model.percentile_ms(0.99) for _, model in report.request_latency if isinstance(model, Served))
        for name, report in (("peak", peak), ("half", half))
    }
    assert tail["half"] < tail["peak"]  # half the load, shorter queues
    night = replay(arrive(service(), requestCurve=[0.0] * 24))
    assert requests(night) == 0  # no one calls: no requests, no responses sent
    assert night.egress_responses_usd == 0


@pytest.mark.parametrize(
    ("size_gb", "seconds"),
    [pytest.param(0.0, 10.0, id="no model"), pytest.param(1.0, 14.0, id="1 GB"), pytest.param(7.0, 38.0, id="7 GB")],
)
def test_a_cold_start_loads_the_model(size_gb: float, seconds: float) -> None:
    assert cold_start_s(make_request(model_size_gb=size_gb)) == seconds


def test_a_service_that_never_started_met_no_one_and_counts_against_the_sla() -> None:
    report = replay(arrive(service("fast")), arrive(service("impossible", target_ms=5))).summary()
    assert report["placed"] == 1
    assert [n["workload"] for n in report["neverStarted"]] == ["team-a/impossible"]
    assert report["slaAttainment"] == 0.5


def test_central_region_keeps_everything_in_the_region_with_most_gpus_on_its_fastest_for_serving() -> None:
    batch = make_workload("etl", resources={"gpus": 1}, targets={"allowed": ["GPUPool"]})
    report = replay(arrive(service()), arrive(batch), strategy=central_region_strategy())
    assert report.summary()["placed"] == 2
    # us-east-1 holds 144 of the headline fleet's 208 pool GPUs. Both moved what they need from eu-west-1 across
    # the Atlantic ($0.09/GB): the batch job its 2 GB of data, the service its 1 GB model ...
    assert (report.egress_usd, report.egress_model_usd) == (pytest.approx(2 * 0.09), pytest.approx(1 * 0.09))
    # ... and the service runs on the H100s there (2.5 times an A100: 20 ms of service become 8).
    models = [model for _, model in report.request_latency if isinstance(model, Served)]
    assert {model.queue.service_ms for model in models} == {8.0}


def test_the_report_separates_the_replicas_own_tail_from_the_network() -> None:
    """A service in eu-west-1 with a fifth of its callers in eu-central-1 (24 ms away): without the network its
    requests' percentiles are lower, and the difference is at most the farthest round trip."""
    callers = {"eu-west-1": 0.8, "eu-central-1": 0.2}
    summary = replay(arrive(service(requestsFrom=callers))).summary()
    served, alone = summary["requestLatencyMs"], summary["requestLatencyAtTargetMs"]
    for q in ("p50", "p95", "p99"):
        assert alone[q] < served[q] <= alone[q] + 24 + 8 + 0.1  # round trip plus the pool's serving overhead


def test_a_baseline_that_leaves_work_waiting_where_a_target_fits_says_so() -> None:
    """Central-region has no L4s: an L4 job waits there to the end, though eu-central-1's L4 pool is free; its
    reason says a target fits and which (the engine's words), not that nothing does."""
    job = make_workload("l4-job", resources={"gpus": 1, "gpuProduct": "NVIDIA-L4"}, targets={"allowed": ["GPUPool"]})
    (never,) = replay(arrive(job), strategy=central_region_strategy()).summary()["neverStarted"]
    assert never["workload"] == "team-a/l4-job"
    assert never["why"].startswith("a target fits, this strategy did not use it: placed on GPUPool l4-ondemand-euc1")
