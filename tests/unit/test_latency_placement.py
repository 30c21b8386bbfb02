"""The engine reads the latency model (#33): with declared load a workload's latency is the predicted tail of its
requests (round trips from their sources plus queueing at its replicas), held against its target and shown per
candidate; without it, nothing changes."""

from __future__ import annotations

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import LatencyClass, TargetKind, WorkloadType
from mlplacement.core.explain import render_decision
from mlplacement.core.placement import decide_many
from tests.builders import make_fleet, make_request, pool

GPU_POOL = frozenset({TargetKind.GPU_POOL})
POLICY = PlacementPolicySpec()


def serve(**fields: object) -> object:
    base = {
        "key": "team-a/serve",
        "type": WorkloadType.INFERENCE,
        "latency_class": LatencyClass.REALTIME,
        "latency_target_ms": 120.0,
        "allowed": GPU_POOL,
        "replicas": 2,
        "requests_per_second": 80.0,
        "service_time_ms": 20.0,
    }
    return make_request(**(base | fields))


def test_a_queue_too_busy_for_the_target_is_rejected_with_its_predicted_tail() -> None:
    # 2 replicas of an L4 (0.3 of an A100): 67 ms a request, 80 a second: utilisation 1.33, the queue never drains.
    l4 = pool("l4", gpu_products=frozenset({"NVIDIA-L4"}), free=8)
    (decision,) = decide_many([serve(gpu_product="NVIDIA-L4")], {None: POLICY}, make_fleet(l4))
    assert decision.chosen is None
    assert "predicted p99 60000ms > 120ms" in decision.message


def test_faster_replicas_win_when_the_tail_is_what_counts() -> None:
    # Both in the data's region; the A100 pool's replicas serve in 20 ms, the L4 pool's in 67 ms.
    a100 = pool("a100", free=8, gpu_hour_usd=3.0)
    l4 = pool("l4", gpu_products=frozenset({"NVIDIA-L4"}), free=8, gpu_hour_usd=0.8)
    (decision,) = decide_many([serve(requests_per_second=20.0)], {None: POLICY}, make_fleet(a100, l4))
    assert decision.chosen.target.name == "a100"  # the L4s are cheaper, and their queue misses the target
    assert "1 predicted p99 514.5ms > 120ms" in decision.message
    assert "P99 MS" in render_decision(decision)
    (relaxed,) = decide_many(
        [serve(requests_per_second=20.0, latency_target_ms=1000.0)], {None: POLICY}, make_fleet(a100, l4)
    )
    tails = {c.target.name: c.expected_latency_ms for c in relaxed.candidates}
    assert tails["a100"] < tails["l4"] == 514.5


def test_requests_from_far_away_count_in_the_tail() -> None:
    near = pool("near", region="eu-west-1", free=8)
    (alone,) = decide_many([serve(requests_per_second=20.0, latency_target_ms=500.0)], {None: POLICY}, make_fleet(near))
    (spread,) = decide_many(
        [
            serve(
                requests_per_second=20.0,
                latency_target_ms=500.0,
                requests_from=(("eu-west-1", 0.5), ("us-east-1", 0.5)),
            )
        ],
        {None: POLICY},
        make_fleet(near),
    )
    assert spread.candidates[0].expected_latency_ms > alone.candidates[0].expected_latency_ms + 60


def test_without_declared_load_latency_is_the_round_trip_as_before() -> None:
    (decision,) = decide_many([serve(requests_per_second=None)], {None: POLICY}, make_fleet(pool("a100", free=8)))
    assert decision.candidates[0].expected_latency_ms == 2.0 + 8.0 or decision.candidates[0].expected_latency_ms < 20


def test_the_replay_reports_request_weighted_latency_and_egress_by_kind() -> None:
    """On the headline trace and fleet (load declared), percentiles are over requests. Against all work in the
    central region on its fastest GPUs, the engine serves callers nearer (lower median), meets more targets, and
    moves less across regions; centralizing on the cheapest pool overloads its queues (unbounded tail)."""
    from datetime import UTC, datetime

    from ruamel.yaml import YAML

    from mlplacement.adapters.files import load_fleet
    from mlplacement.api.trace import Trace
    from mlplacement.core.latency import UNSTABLE_MS
    from mlplacement.core.simulation import central_region_strategy, centralize_strategy, engine_strategy, simulate
    from tests.conftest import REPO

    trace = Trace.model_validate(YAML(typ="safe").load((REPO / "examples/headline/trace.yaml").read_text()))
    fleet = load_fleet(REPO / "examples/headline/fleet.yaml")
    start = fleet.decision_time(datetime(2026, 11, 22, tzinfo=UTC))
    engine = simulate(fleet, trace, engine_strategy(POLICY), "engine", start).summary()
    central = simulate(fleet, trace, central_region_strategy(), "central-region", start).summary()
    cheapest_pool = simulate(fleet, trace, centralize_strategy(), "centralize", start).summary()
    assert engine["requestLatencyMs"]["p50"] < 0.7 * central["requestLatencyMs"]["p50"]
    assert engine["requestLatencyMs"]["p99"] < central["requestLatencyMs"]["p99"]
    assert cheapest_pool["requestLatencyMs"]["p99"] == UNSTABLE_MS
    assert engine["slaAttainment"] > central["slaAttainment"]
    for summary in (engine, central):
        parts = summary["egressUSD"] + summary["egressModelUSD"] + summary["egressResponsesUSD"]
        assert abs(summary["egressTotalUSD"] - parts) < 0.05
    assert engine["egressTotalUSD"] < central["egressTotalUSD"]


def test_tails_missed_on_several_targets_read_as_one_reason_with_the_best() -> None:
    """Each target's predicted tail is its own number; in the one-line message they fold into one reason that
    names the best of them (here the A100's: alone, its reason keeps its own number)."""
    l4 = pool("l4", gpu_products=frozenset({"NVIDIA-L4"}), free=8)
    a10g = pool("a10g", gpu_products=frozenset({"NVIDIA-A10G"}), free=8)
    a100 = pool("a100", free=8)
    strict = serve(requests_per_second=20.0, latency_target_ms=40.0)
    (alone,) = decide_many([strict], {None: POLICY}, make_fleet(a100))
    prefix, _, rest = alone.message.partition("1 predicted p99 ")
    assert prefix == "0/1 targets fit: "
    assert rest.endswith("ms > 40ms")
    best = rest.removesuffix("ms > 40ms")
    (decision,) = decide_many([strict], {None: POLICY}, make_fleet(l4, a10g, a100))
    assert decision.message == f"0/3 targets fit: 3 predicted p99 > 40ms (best {best}ms)"
