"""The queue view (core.queue) and what would make waiting work fit (core.counterfactual): positions as the
engine takes them, each kind of counterfactual checked by the engine, and the ETA replay of expected ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import LatencyClass, SpotPreference, TargetKind, WorkloadType
from mlplacement.core.counterfactual import MAX_ENGINE_CALLS, Change, counterfactuals
from mlplacement.core.placement import decide_many
from mlplacement.core.queue import Ending, build_queue, estimate_starts
from mlplacement.core.scarcity import Running
from tests.builders import edge, make_fleet, make_request, pool

POLICY = PlacementPolicySpec()
POLICIES = {None: POLICY}
GPU_POOL = frozenset({TargetKind.GPU_POOL})


def running(key: str, target: str, gpus: int, priority: int = 100) -> Running:
    return Running(
        key=key,
        namespace=key.partition("/")[0],
        priority=priority,
        target=("GPUPool", target),
        claim=gpus,
        gpus=gpus,
        product="NVIDIA-A100",
        hourly_usd=3.0 * gpus,
        started=0.0,
    )


# --- counterfactuals: one case per kind, each placed by the engine once the change is made ---


def test_more_free_gpus_names_the_deficit_and_who_holds_them() -> None:
    snapshot = make_fleet(pool("a100", free=2, gpus_total=8))
    request = make_request(key="team-a/big", gpus=4, allowed=GPU_POOL, priority=500)
    holders = [running("team-b/low-1", "a100", 3, priority=10), running("team-b/low-2", "a100", 3, priority=10)]
    (found,) = counterfactuals(request, POLICY, snapshot, holders)
    assert found.change is Change.MORE_FREE_GPUS
    assert found.text == "fits on GPUPool a100 if 2 more GPUs free there (2 workloads of lower priority hold them)"
    assert found.value == 2


def test_spot_allowed_when_only_spot_has_room() -> None:
    snapshot = make_fleet(pool("ondemand", free=0, gpus_total=1), pool("spot", free=8, spot=True))
    request = make_request(key="team-a/j", spot=SpotPreference.NEVER, allowed=GPU_POOL)
    texts = [c.text for c in counterfactuals(request, POLICY, snapshot)]
    assert "fits on GPUPool spot if spot: Allowed" in texts


def test_a_looser_latency_target_names_the_smallest_that_fits() -> None:
    snapshot = make_fleet(pool("far", region="us-east-1", free=8))
    request = make_request(
        key="team-a/serve",
        type=WorkloadType.INFERENCE,
        latency_class=LatencyClass.REALTIME,
        latency_target_ms=40.0,
        allowed=GPU_POOL,
    )
    (found,) = counterfactuals(request, POLICY, snapshot)
    assert found.change is Change.LATENCY_TARGET
    assert found.value is not None
    tighter = decide_many([make_request_like(request, latency_target_ms=found.value - 1)], POLICIES, snapshot)
    looser = decide_many([make_request_like(request, latency_target_ms=found.value)], POLICIES, snapshot)
    assert (tighter[0].placed, looser[0].placed) == (False, True), "the smallest target that fits, not any"
    assert found.text == f"fits on GPUPool far if latencyTargetMs >= {found.value:g}"


def test_a_larger_budget_names_the_cheapest_target_above_it() -> None:
    snapshot = make_fleet(pool("cheap", free=8, gpu_hour_usd=5.0), pool("dear", free=8, gpu_hour_usd=9.0))
    request = make_request(key="team-a/j", max_hourly_cost_usd=4.0, allowed=GPU_POOL)
    (found,) = counterfactuals(request, POLICY, snapshot)
    assert found.change is Change.BUDGET
    assert found.text == "fits on GPUPool cheap under budget if maxHourlyUSD >= 5"


def test_nothing_is_proposed_for_a_placed_workload_or_one_nothing_helps() -> None:
    snapshot = make_fleet(pool("a100", free=8))
    assert counterfactuals(make_request(allowed=GPU_POOL), POLICY, snapshot) == []
    too_big = make_request(gpus=64, allowed=GPU_POOL)  # larger than the whole fleet: no change within reach
    assert counterfactuals(too_big, POLICY, snapshot) == []


def test_the_engine_is_called_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlplacement.core.counterfactual as module

    calls = []
    real = module.decide_many

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "decide_many", counting)
    snapshot = make_fleet(*(pool(f"p{i}", free=0, gpus_total=8, gpu_hour_usd=9.0 + i) for i in range(20)))
    request = make_request(
        gpus=4, spot=SpotPreference.NEVER, max_hourly_cost_usd=1.0, latency_target_ms=1.0, allowed=GPU_POOL
    )
    counterfactuals(request, POLICY, snapshot)
    assert 0 < len(calls) <= MAX_ENGINE_CALLS


def make_request_like(request: object, **changes: object) -> object:
    import dataclasses

    return dataclasses.replace(request, **changes)  # type: ignore[type-var]


# --- queue order ---


def test_queue_order_is_priority_then_fair_share_then_age() -> None:
    snapshot = make_fleet(pool("a100", free=0, gpus_total=8))
    now = snapshot.now
    pending = [
        make_request(key="team-a/old", priority=100, created=now - timedelta(hours=3), allowed=GPU_POOL),
        make_request(key="team-a/new", priority=100, created=now - timedelta(hours=1), allowed=GPU_POOL),
        make_request(key="team-b/urgent", priority=900, created=now, allowed=GPU_POOL),
        make_request(key="team-c/mid", priority=100, created=now - timedelta(hours=2), allowed=GPU_POOL),
    ]
    fair = PlacementPolicySpec.model_validate({"fairSharing": True})
    busy = [Ending(running("team-a/running", "a100", 8), None)]
    queue = build_queue(pending, {None: fair}, snapshot, busy, with_counterfactuals=False)
    # team-a already holds the pool: team-c's request goes before both of team-a's at the same priority.
    assert [e.key for e in queue] == ["team-b/urgent", "team-c/mid", "team-a/old", "team-a/new"]
    assert [e.position for e in queue] == [1, 2, 3, 4]
    assert queue[2].quota == "team-a uses 8 GPUs (no GPU quota)"
    assert queue[1].waiting_seconds == 7200


# --- ETA: expected ends replayed through the engine ---


def test_eta_is_the_end_that_frees_enough_and_says_so() -> None:
    snapshot = make_fleet(pool("a100", free=0, gpus_total=8))
    now = snapshot.now
    ends = [
        Ending(running("team-b/short", "a100", 2), now + timedelta(minutes=30)),
        Ending(running("team-b/long", "a100", 4), now + timedelta(hours=2)),
        Ending(running("team-b/unknown", "a100", 2), None),
    ]
    small = make_request(key="team-a/small", gpus=2, allowed=GPU_POOL, created=now)
    big = make_request(key="team-a/big", gpus=6, allowed=GPU_POOL, created=now)
    etas = estimate_starts([small, big], POLICIES, snapshot, ends)
    assert etas["team-a/small"].at == now + timedelta(minutes=30)
    assert etas["team-a/small"].basis == "when team-b/short is expected to end"
    # small takes short's 2 GPUs; long's end frees 4, and big needs 6: no known end frees enough for it.
    assert etas["team-a/big"].at is None
    assert etas["team-a/big"].basis == "no estimate: 1 running workload without a runtime"


def test_work_placed_in_the_replay_frees_its_target_at_its_own_expected_end() -> None:
    snapshot = make_fleet(pool("a100", free=0, gpus_total=4))
    now = snapshot.now
    ends = [Ending(running("team-b/r", "a100", 4), now + timedelta(hours=1))]
    first = make_request(key="team-a/first", gpus=4, allowed=GPU_POOL, max_runtime_minutes=90, created=now)
    second = make_request(key="team-a/second", gpus=4, allowed=GPU_POOL, created=now + timedelta(seconds=1))
    etas = estimate_starts([first, second], POLICIES, snapshot, ends)
    assert etas["team-a/first"].at == now + timedelta(hours=1)
    assert etas["team-a/second"].at == now + timedelta(hours=2, minutes=30)
    assert etas["team-a/second"].basis == "when team-a/first is expected to end"


def test_placeable_work_starts_with_the_next_round() -> None:
    snapshot = make_fleet(pool("a100", free=8), edge("fra"))
    etas = estimate_starts([make_request(allowed=GPU_POOL)], POLICIES, snapshot, [])
    assert etas["team-a/job"].at == snapshot.now


# --- runtimes learned from finished runs, and the estimates checked in the replay ---


def test_a_running_workload_without_stated_work_ends_after_the_median_of_similar_finished_runs() -> None:
    from mlplacement.core.queue import RuntimeBook

    book = RuntimeBook()
    for hours in (1, 2, 9):
        book.observe(make_request(key="team-a/nightly", gpus=2), hours * 3600)
    seconds, basis = book.estimate(make_request(key="team-a/other", gpus=2)) or (0, "")
    assert seconds == 2 * 3600
    assert basis == "2.0 h, the median of 3 earlier Batch runs of team-a with 2 GPUs"
    assert book.estimate(make_request(key="team-b/x")) is None  # another team's runs say nothing of this one


def test_the_replay_checks_each_start_estimate_against_when_the_workload_started() -> None:
    from mlplacement.adapters.files import load_fleet
    from mlplacement.cli.simulation import _load_trace
    from mlplacement.core.simulation import engine_strategy, simulate
    from tests.conftest import REPO

    trace = _load_trace(REPO / "examples" / "scarcity" / "trace.yaml")
    fleet = load_fleet(REPO / "examples" / "scarcity" / "fleet.yaml")
    report = simulate(fleet, trace, engine_strategy(POLICY), "engine", fleet.decision_time(make_fleet().now))
    summary = report.summary()
    # Every burst job runs 30 minutes: once one has finished, the estimates of the rest are exact.
    assert summary["etaEstimated"] > 0
    assert summary["etaErrorMinutes"] == {"p50": 0.0, "p90": 0.0, "medianSigned": 0.0}
    assert summary["etaMissing"] > 0  # before any run has finished there is no basis, and none is invented
    # The run lengths themselves, learned from similar finished runs, against what each run took.
    assert summary["learnedRuntimes"] > 0
    assert summary["learnedRuntimeErrorMinutes"]["p90"] == 0.0


def test_live_objects_give_the_queue_its_pending_and_running_work() -> None:
    from mlplacement.core.queue import live_queue_inputs
    from mlplacement.core.whatif import LiveState
    from tests.builders import make_policy, make_workload

    def mlw(name: str, gpus: int, status: dict[str, object]) -> dict[str, object]:
        obj = make_workload(name, "team-a", resources={"gpus": gpus}, targets={"allowed": ["GPUPool"]})
        obj["metadata"]["uid"] = f"uid-{name}"
        return obj | {"status": status}

    node = {
        "metadata": {
            "name": "n1",
            "labels": {"mlplacement.io/pool": "a100", "topology.kubernetes.io/region": "eu-west-1"},
        },
        "status": {
            "allocatable": {"nvidia.com/gpu": "8"},
            "capacity": {"nvidia.com/gpu": "8"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    policy = make_policy("default")
    policy["metadata"]["labels"] = {"mlplacement.io/default-policy": "true"}
    placed = {
        "phase": "Placed",
        "placement": {"target": {"kind": "GPUPool", "name": "a100"}, "decidedAt": "2026-11-22T11:00:00Z"},
    }
    state = LiveState(
        nodes=[node],
        policies=[policy],
        workloads=[
            mlw("running", 6, placed),
            mlw("waiting", 4, {"phase": "Waiting"}),
            mlw("done", 1, {"phase": "Succeeded"}),
        ],
    )
    inputs = live_queue_inputs(state, make_fleet().now)
    assert [r.key for r in inputs.pending] == ["team-a/waiting"]
    assert [e.running.key for e in inputs.running] == ["team-a/running"]
    # Placed, its pods not bound yet: its 6 GPUs are held all the same, so 2 are free.
    (pool_target,) = inputs.snapshot.targets
    assert pool_target.capacity == 2
