"""Placement: every filter, scorer and design heuristic as a table of narrative cases, plus properties."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.api.constants import Reason
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import (
    CostTolerance,
    LatencyClass,
    SpotPreference,
    TargetKind,
    TrainingFrequency,
    WorkloadType,
)
from mlplacement.core.placement import decide, decide_many
from mlplacement.core.placement.engine import make_context
from mlplacement.core.placement.filters import KIND_FILTERS, REGION_FILTERS, TARGET_FILTERS
from mlplacement.core.snapshot import Snapshot
from tests.builders import edge, make_fleet, make_request, make_signals, pool, workspace

DEFAULT = PlacementPolicySpec()

# A small fleet with one of everything, in three regions.
FLEET = make_fleet(
    pool("a100-euw1", "eu-west-1", free=8),
    pool("a100-spot-euw1", "eu-west-1", free=8, spot=True, gpu_hour_usd=1.2, preemption_probability=0.1),
    pool("l4-euc1", "eu-central-1", free=4, gpu_products=frozenset({"NVIDIA-L4"}), gpu_hour_usd=0.8),
    pool("a10g-use1", "us-east-1", free=8, gpu_products=frozenset({"NVIDIA-A10G"}), gpu_hour_usd=1.2),
    edge("edge-fra", "eu-central-1", free=2),
    edge("edge-dub", "eu-west-1", free=2, max_model_size_gb=4.0),
    workspace("dbx-eu", "eu-west-1"),
    workspace("dbx-us", "us-east-1"),
)

REALTIME = {
    "type": WorkloadType.INFERENCE,
    "latency_class": LatencyClass.REALTIME,
    "latency_target_ms": 30.0,
    "data_region": "eu-central-1",
    "gpu_product": "NVIDIA-L4",
    "spot": SpotPreference.NEVER,
}
DAILY_TRAINING = {
    "type": WorkloadType.TRAINING,
    "gpus": 8,
    "gpu_product": "NVIDIA-A100",
    "spot": SpotPreference.NEVER,
    "model_size_gb": 7.0,
    "training_frequency": TrainingFrequency.DAILY,
    "data_size_gb": 800.0,
}

HEURISTICS = [
    pytest.param(REALTIME, DEFAULT, ("Edge", "edge-fra"), id="realtime inference with local data goes to the edge"),
    pytest.param(
        {**REALTIME, "model_size_gb": 7.0}, DEFAULT, ("GPUPool", "l4-euc1"), id="7 GB model never goes to the edge"
    ),
    pytest.param(
        {**REALTIME, "latency_target_ms": 80.0},
        DEFAULT,
        ("GPUPool", "l4-euc1"),
        id="an 80 ms target is no reason for the edge",
    ),
    pytest.param(
        {**REALTIME, "data_region": "eu-west-1", "gpu_product": None},
        DEFAULT,
        ("Edge", "edge-dub"),
        id="edge follows the data to its region",
    ),
    pytest.param(
        DAILY_TRAINING, DEFAULT, ("Databricks", "dbx-eu"), id="daily training goes to Databricks when allowed"
    ),
    pytest.param(
        {**DAILY_TRAINING, "allowed": frozenset({TargetKind.GPU_POOL, TargetKind.EDGE})},
        DEFAULT,
        ("GPUPool", "a100-euw1"),
        id="daily training without Databricks goes to a central pool",
    ),
    pytest.param(
        {"spot": SpotPreference.NEVER, "gpu_product": "NVIDIA-A100", "allowed": frozenset({TargetKind.GPU_POOL})},
        DEFAULT,
        ("GPUPool", "a100-euw1"),
        id="spot=Never skips spot pools",
    ),
    pytest.param(
        {"spot": SpotPreference.PREFERRED, "gpu_product": "NVIDIA-A100"},
        DEFAULT,
        ("GPUPool", "a100-spot-euw1"),
        id="spot=Preferred batch takes the cheap spot pool",
    ),
    pytest.param(
        {"data_region": "us-east-1", "gpu_product": "NVIDIA-A10G"},
        PlacementPolicySpec.model_validate({"residency": {"allowedRegions": ["us-east-1"]}}),
        ("GPUPool", "a10g-use1"),
        id="residency excludes every other region",
    ),
    pytest.param(
        {
            "type": WorkloadType.INFERENCE,
            "latency_target_ms": 500.0,
            "gpus": 1,
            "gpu_product": "NVIDIA-A100",
            "allowed": frozenset({TargetKind.DATABRICKS, TargetKind.GPU_POOL}),
        },
        DEFAULT,
        ("GPUPool", "a100-spot-euw1"),
        id="Databricks never serves inference",
    ),
    pytest.param(
        {"pinned": (TargetKind.GPU_POOL, "a10g-use1"), "gpu_product": None},
        DEFAULT,
        ("GPUPool", "a10g-use1"),
        id="a pinned target wins when it fits",
    ),
]


@pytest.mark.parametrize(("request_fields", "policy", "expected"), HEURISTICS)
def test_heuristics(request_fields: dict[str, Any], policy: PlacementPolicySpec, expected: tuple[str, str]) -> None:
    decision = decide(make_request(**request_fields), policy, FLEET)
    assert decision.chosen is not None, decision.message
    assert decision.chosen.target.key == expected, decision.message


def only_reason(
    request_fields: dict[str, Any], target: Any, policy: PlacementPolicySpec = DEFAULT, snapshot: Snapshot | None = None
) -> str | None:
    fleet = snapshot or make_fleet(target)
    decision = decide(make_request(**request_fields), policy, fleet)
    reasons = {t.key: rejection.reason for rejection in decision.rejections for t in rejection.targets}
    return reasons.get(target.key)


FILTERS = [
    pytest.param(
        {"allowed": frozenset({TargetKind.GPU_POOL})},
        edge("e"),
        DEFAULT,
        "Edge not allowed by the workload",
        id="kind not allowed by the workload",
    ),
    pytest.param(
        {},
        workspace("w"),
        PlacementPolicySpec.model_validate({"allowedTargets": ["GPUPool"]}),
        "Databricks not allowed by the policy",
        id="kind not allowed by the policy",
    ),
    pytest.param(
        {"data_region": "eu-west-1"},
        pool("p", "us-east-1"),
        PlacementPolicySpec.model_validate({"residency": {"byDataRegion": {"eu-west-1": ["eu-west-1"]}}}),
        "outside allowed regions [eu-west-1]",
        id="residency by data region",
    ),
    pytest.param({}, pool("p", healthy=False), DEFAULT, "unhealthy", id="unhealthy pool"),
    pytest.param(
        {},
        pool("p", healthy=False, health_detail="no ready nodes (NotReady)"),
        DEFAULT,
        "unhealthy: no ready nodes (NotReady)",
        id="unhealthy says why",
    ),
    pytest.param(
        {"gpus": 4, "replicas": 1},
        pool("p", free=3, gpus_total=8),
        DEFAULT,
        "lack free GPUs (need 4)",
        id="not enough free GPUs",
    ),
    pytest.param(
        {"gpus": 16, "replicas": 1},
        pool("p", free=8, gpus_total=8),
        DEFAULT,
        "have 8 GPUs in all (need 16)",
        id="more GPUs than the whole pool has: not worth waiting for",
    ),
    pytest.param(
        {"gpus": 1, "replicas": 3, "type": WorkloadType.INFERENCE, "latency_target_ms": 500.0},
        pool("p", free=2, gpus_total=8),
        DEFAULT,
        "lack free GPUs (need 3)",
        id="replicas multiply the GPUs needed",
    ),
    pytest.param({"gpu_product": "NVIDIA-H100"}, pool("p"), DEFAULT, "lack NVIDIA-H100 GPUs", id="wrong GPU product"),
    pytest.param(
        {"gpus": 4, "max_hourly_cost_usd": 5.0},
        pool("p", free=2, gpus_total=8),
        DEFAULT,
        "over budget $5/h and lack free GPUs",
        id="a budget rejection does not hide that the pool is full too",
    ),
    pytest.param(
        {**REALTIME, "data_region": "eu-central-1", "latency_target_ms": 30.0},
        edge("e", "eu-central-1", rtt_ms=500.0),
        DEFAULT,
        "too far for 30ms latency (measured RTT 500ms)",
        id="an edge whose measured link is slow, in a near region",
    ),
    pytest.param(
        {**REALTIME, "model_size_gb": 1.5},
        edge("e", max_model_size_gb=1.0),
        DEFAULT,
        "model 1.5GB > edge limit 1GB",
        id="model over the edge's own limit",
    ),
    pytest.param(
        {**REALTIME, "model_size_gb": 6.0},
        edge("e"),
        DEFAULT,
        "model 6GB > 2GB stays central",
        id="model over the policy's centralize size",
    ),
    pytest.param(
        {**REALTIME, "latency_target_ms": 50.0},
        edge("e"),
        DEFAULT,
        "edge only for latency targets < 50ms",
        id="edge needs a target under 50 ms",
    ),
    pytest.param(
        {**REALTIME, "data_region": "eu-west-1"},
        edge("e", "eu-central-1"),
        DEFAULT,
        "data not local (in eu-west-1)",
        id="edge needs local data",
    ),
    pytest.param(
        {**REALTIME, **DAILY_TRAINING, "model_size_gb": 1.0, "type": WorkloadType.TRAINING},
        edge("e"),
        DEFAULT,
        "Daily training stays central",
        id="recurring training stays central",
    ),
    pytest.param(
        {"type": WorkloadType.INFERENCE, "latency_target_ms": 500.0},
        workspace("w"),
        DEFAULT,
        "Databricks does not serve inference",
        id="no inference on Databricks",
    ),
    pytest.param(
        {"latency_target_ms": 20.0, "data_region": "us-east-1"},
        pool("p", "eu-west-1"),
        DEFAULT,
        "too far for 20ms latency",
        id="latency infeasible across the Atlantic",
    ),
    pytest.param(
        {"spot": SpotPreference.NEVER},
        pool("p", spot=True),
        DEFAULT,
        "are spot (workload says spot: Never)",
        id="spot never",
    ),
    pytest.param(
        {"priority": 950},
        pool("p", spot=True),
        PlacementPolicySpec.model_validate({"spot": {"minPriorityForOnDemandOnly": 900}}),
        "are spot (priority >= 900 runs on-demand)",
        id="high priority runs on-demand",
    ),
    pytest.param(
        {},
        pool("p", spot=True, preemption_probability=0.5),
        DEFAULT,
        "preemption risk > 30%",
        id="spot pool too likely to be reclaimed",
    ),
    pytest.param(
        {"max_hourly_cost_usd": 2.0}, pool("p", gpu_hour_usd=3.0), DEFAULT, "over budget $2/h", id="workload budget"
    ),
    pytest.param(
        {"gpus": 8},
        pool("p", gpu_hour_usd=3.0),
        PlacementPolicySpec.model_validate({"budget": {"maxHourlyCostUSDPerWorkload": 20}}),
        "over budget $20/h",
        id="policy budget",
    ),
    pytest.param({}, workspace("w", slots=0), DEFAULT, "have no free run slots", id="workspace at its run limit"),
    pytest.param(
        {"databricks_task": False},
        workspace("w"),
        DEFAULT,
        "no spec.databricks task",
        id="a workload without spec.databricks is never placed on Databricks",
    ),
    pytest.param(
        {"avoid": frozenset({("GPUPool", "p")})},
        pool("p"),
        DEFAULT,
        "left after pods stayed unschedulable there",
        id="a pool whose scheduler refused the workload's pods is avoided",
    ),
    pytest.param(
        {"pinned": (TargetKind.GPU_POOL, "other")},
        pool("p"),
        DEFAULT,
        "not the pinned target",
        id="everything but the pinned target is rejected",
    ),
]


@pytest.mark.parametrize(("request_fields", "target", "policy", "reason"), FILTERS)
def test_filter_rejects_with_reason(
    request_fields: dict[str, Any], target: Any, policy: PlacementPolicySpec, reason: str
) -> None:
    assert only_reason(request_fields, target, policy) == reason


def test_stale_signals_make_spot_untrustworthy() -> None:
    stale = make_signals(updatedAt=datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    snapshot = make_fleet(pool("spot", spot=True), signals=stale)
    assert only_reason({}, pool("spot", spot=True), snapshot=snapshot) == "are spot with stale signals"
    assert not snapshot.signals_fresh()


def test_policy_max_signal_age_is_stricter_than_the_ttl() -> None:
    policy = PlacementPolicySpec.model_validate({"maxSignalAgeSeconds": 60})
    assert only_reason({}, pool("spot", spot=True), policy) == "are spot with stale signals"


def scores(request_fields: dict[str, Any], *targets: Any, snapshot: Snapshot | None = None) -> dict[str, Any]:
    decision = decide(make_request(**request_fields), DEFAULT, snapshot or make_fleet(*targets))
    return {c.target.name: c.breakdown for c in decision.candidates}


SCORERS = [
    pytest.param(
        "cost",
        {},
        pool("cheap", gpu_hour_usd=1.0),
        pool("dear", gpu_hour_usd=2.0),
        (100.0, 50.0),
        id="twice the price scores half",
    ),
    pytest.param(
        "latency",
        {"latency_target_ms": 100.0, "data_region": "eu-west-1"},
        pool("near", "eu-west-1"),
        pool("far", "eu-central-1"),
        (90.0, 68.0),
        id="latency score falls with distance to the data",
    ),
    pytest.param(
        "dataGravity",
        {"data_size_gb": 1000.0},
        pool("local", "eu-west-1"),
        pool("remote", "us-east-1"),
        (100.0, 10.0),
        id="moving 1 TB across regions costs data gravity",
    ),
    pytest.param(
        "carbon",
        {},
        pool("green", "eu-west-1"),
        pool("grey", "us-east-1"),
        (65.0, 48.75),
        id="carbon intensity lowers the score",
    ),
    pytest.param(
        "preemption",
        {},
        pool("od"),
        pool("spot", spot=True, preemption_probability=0.2),
        (100.0, 78.66),
        id="spot risk costs preemption score",
    ),
]


@pytest.mark.parametrize(("scorer", "request_fields", "better", "worse", "expected"), SCORERS)
def test_scorer(
    scorer: str, request_fields: dict[str, Any], better: Any, worse: Any, expected: tuple[float, float]
) -> None:
    result = scores(request_fields, better, worse)
    assert (result[better.name][scorer], result[worse.name][scorer]) == expected


def test_low_cost_tolerance_weighs_cost_more() -> None:
    fleet = make_fleet(
        pool("cheap-far", "us-east-1", gpu_hour_usd=1.0), pool("dear-near", "eu-west-1", gpu_hour_usd=1.5)
    )
    # Same workload (200 GB of data in eu-west-1), only the tolerance differs.
    relaxed = decide(make_request(cost_tolerance=CostTolerance.HIGH, data_size_gb=200.0), DEFAULT, fleet)
    frugal = decide(make_request(cost_tolerance=CostTolerance.LOW, data_size_gb=200.0), DEFAULT, fleet)
    assert relaxed.chosen is not None
    assert frugal.chosen is not None
    assert relaxed.chosen.target.name == "dear-near"
    assert frugal.chosen.target.name == "cheap-far"


def test_scheduler_style_message_counts_each_reason() -> None:
    fleet = make_fleet(
        pool("a", free=1, gpus_total=8),
        pool("b", free=2, gpus_total=8),
        pool("c", free=3, gpus_total=8),
        pool("far", "us-east-1"),
        pool("sick", healthy=False),
    )
    policy = PlacementPolicySpec.model_validate({"residency": {"allowedRegions": ["eu-west-1"]}})
    decision = decide(make_request(gpus=4), policy, fleet)
    assert (
        decision.message
        == "0/5 targets fit: 3 lack free GPUs (need 4), 1 outside allowed regions [eu-west-1], 1 unhealthy"
    )
    assert decision.reason is Reason.WAITING_FOR_CAPACITY


def test_nothing_transient_means_no_feasible_target() -> None:
    decision = decide(make_request(gpu_product="NVIDIA-H100"), DEFAULT, make_fleet(pool("a")))
    assert decision.reason is Reason.NO_FEASIBLE_TARGET


def test_work_bigger_than_every_pool_is_not_waiting_for_capacity() -> None:
    """16 GPUs against pools of 8 in all: no amount of waiting helps, so the reason says so."""
    fleet = make_fleet(pool("a", free=8, gpus_total=8), pool("b", free=2, gpus_total=8))
    decision = decide(make_request(gpus=16), DEFAULT, fleet)
    assert decision.reason is Reason.NO_FEASIBLE_TARGET
    assert decision.message == "0/2 targets fit: 2 have 8 GPUs in all (need 16)"


def test_ties_are_broken_by_name() -> None:
    decision = decide(make_request(), DEFAULT, make_fleet(pool("zeta"), pool("alpha"), pool("mid")))
    assert [c.target.name for c in decision.candidates] == ["alpha", "mid", "zeta"]


def test_decide_many_claims_capacity_in_priority_order() -> None:
    fleet = make_fleet(pool("only", free=4))
    low = make_request(key="ns/low", gpus=4, priority=1)
    high = make_request(key="ns/high", gpus=4, priority=9)
    decisions = {d.request.key: d for d in decide_many([low, high], {None: DEFAULT}, fleet)}
    assert decisions["ns/high"].placed
    assert not decisions["ns/low"].placed
    assert decisions["ns/low"].message == "0/1 targets fit: 1 lack free GPUs (need 4)"


def test_decide_many_orders_equal_priority_by_age_then_name() -> None:
    fleet = make_fleet(pool("only", free=1))
    old = make_request(key="ns/z-old", created=datetime(2026, 1, 1, tzinfo=UTC))
    new = make_request(key="ns/a-new", created=datetime(2026, 1, 2, tzinfo=UTC))
    winner = [d for d in decide_many([new, old], {None: DEFAULT}, fleet) if d.placed]
    assert [d.request.key for d in winner] == ["ns/z-old"]


def test_databricks_claims_run_slots() -> None:
    fleet = make_fleet(workspace("w", slots=2))
    requests = [make_request(key=f"ns/{i}", gpus=8) for i in range(3)]
    assert [d.placed for d in decide_many(requests, {None: DEFAULT}, fleet)] == [True, True, False]


def test_named_policy_is_used_for_its_workloads() -> None:
    strict = PlacementPolicySpec.model_validate({"allowedTargets": ["Databricks"]})
    fleet = make_fleet(pool("p"), workspace("w"))
    decisions = decide_many([make_request(policy="strict")], {None: DEFAULT, "strict": strict}, fleet)
    assert decisions[0].chosen.target.name == "w"


# --- properties ---

REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")
PRODUCTS = ("NVIDIA-A100", "NVIDIA-L4", "NVIDIA-A10G")


@st.composite
def targets(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(list(TargetKind)))
    name = draw(st.text("abcdefgh", min_size=1, max_size=6))
    region = draw(st.sampled_from(REGIONS))
    common = {"healthy": draw(st.booleans() | st.just(True)), "gpu_hour_usd": draw(st.floats(0.1, 6.0))}
    if kind is TargetKind.GPU_POOL:
        return pool(
            f"p-{name}",
            region,
            free=draw(st.integers(0, 16)),
            spot=draw(st.booleans()),
            preemption_probability=draw(st.floats(0, 0.6)),
            gpu_products=frozenset({draw(st.sampled_from(PRODUCTS))}),
            **common,
        )
    if kind is TargetKind.EDGE:
        return edge(
            f"e-{name}", region, free=draw(st.integers(0, 4)), max_model_size_gb=draw(st.floats(0.5, 4)), **common
        )
    return workspace(f"w-{name}", region, slots=draw(st.integers(0, 3)), **common)


@st.composite
def requests(draw: st.DrawFn, key: str = "ns/w") -> Any:
    kind = draw(st.sampled_from(list(WorkloadType)))
    target = draw(st.none() | st.sampled_from([10.0, 30.0, 45.0, 100.0, 1000.0]))
    if kind is WorkloadType.INFERENCE and target is None:
        target = 200.0
    return make_request(
        key=key,
        type=kind,
        gpus=draw(st.integers(0, 8)),
        replicas=draw(st.integers(1, 3)) if kind is WorkloadType.INFERENCE else 1,
        gpu_product=draw(st.none() | st.sampled_from(PRODUCTS)),
        model_size_gb=draw(st.floats(0, 10)),
        latency_target_ms=target,
        data_region=draw(st.none() | st.sampled_from(REGIONS)),
        data_size_gb=draw(st.floats(0, 2000)),
        spot=draw(st.sampled_from(list(SpotPreference))),
        training_frequency=draw(st.sampled_from(list(TrainingFrequency))),
        priority=draw(st.integers(0, 1000)),
        allowed=frozenset(draw(st.sets(st.sampled_from(list(TargetKind)), min_size=1))),
        max_hourly_cost_usd=draw(st.none() | st.floats(1, 50)),
    )


@st.composite
def placeable_requests(draw: st.DrawFn, key: str = "ns/w") -> Any:
    """Requests most fleets can take: without these, most generated batches place nothing and a property
    about what is placed tests nothing."""
    return make_request(
        key=key,
        type=draw(st.sampled_from([WorkloadType.BATCH, WorkloadType.TRAINING])),
        gpus=draw(st.integers(0, 2)),
        data_region=draw(st.none() | st.sampled_from(REGIONS)),
        priority=draw(st.integers(0, 1000)),
        databricks_task=True,
    )


def roomy(draw_targets: list[Any]) -> list[Any]:
    """The drawn fleet plus one healthy on-demand pool with room, so placeable requests have somewhere to go."""
    return [*draw_targets, pool("p-roomy", "eu-west-1", free=8, gpus_total=16)]


# What the properties below are given: anything at all, with half the requests ones that can be placed.
ANY_REQUEST = st.one_of(requests(), placeable_requests())
FLEETS = st.lists(targets(), min_size=0, max_size=12).map(roomy)


def unique_fleet(draw_targets: list[Any]) -> Snapshot:
    seen: dict[tuple[str, str], Any] = {}
    for target in draw_targets:
        seen.setdefault(target.key, target)
    return make_fleet(*seen.values())


@settings(max_examples=200, deadline=None)
@given(request=ANY_REQUEST, fleet_targets=FLEETS)
def test_property_choice_passes_every_filter(request: Any, fleet_targets: list[Any]) -> None:
    snapshot = unique_fleet(fleet_targets)
    decision = decide(request, DEFAULT, snapshot)
    if decision.chosen is None:
        return
    target = decision.chosen.target
    context = make_context(request, DEFAULT, snapshot)
    assert all(f(request, target.kind, context) is None for f in KIND_FILTERS)
    assert all(f(request, target.kind, target.region, context) is None for f in REGION_FILTERS)
    assert all(f(request, target, target.capacity, context) is None for f in TARGET_FILTERS)


@settings(max_examples=100, deadline=None)
@given(request=requests(), fleet_targets=st.lists(targets(), min_size=1, max_size=12), seed=st.integers())
def test_property_decision_ignores_candidate_order(request: Any, fleet_targets: list[Any], seed: int) -> None:
    snapshot = unique_fleet(fleet_targets)
    shuffled = list(snapshot.targets)
    random.Random(seed).shuffle(shuffled)
    again = Snapshot(now=snapshot.now, targets=tuple(shuffled), signals=snapshot.signals)
    first, second = decide(request, DEFAULT, snapshot), decide(request, DEFAULT, again)
    assert first.chosen == second.chosen
    assert first.message == second.message


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(requests(), min_size=1, max_size=15), fleet_targets=st.lists(targets(), min_size=1, max_size=8))
def test_property_decide_many_never_overcommits(batch: list[Any], fleet_targets: list[Any]) -> None:
    batch = [replace(r, key=f"ns/w{i}") for i, r in enumerate(batch)]
    snapshot = unique_fleet(fleet_targets)
    used: dict[tuple[str, str], int] = {}
    for decision in decide_many(batch, {None: DEFAULT}, snapshot):
        if decision.chosen is not None:
            target = decision.chosen.target
            used[target.key] = used.get(target.key, 0) + (
                1 if target.kind is TargetKind.DATABRICKS else decision.request.gpus_needed
            )
    capacity = {t.key: t.capacity for t in snapshot.targets}
    assert all(used[key] <= capacity[key] for key in used)


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(requests(), min_size=2, max_size=15), fleet_targets=st.lists(targets(), min_size=1, max_size=8))
def test_property_higher_priority_never_starved_by_lower(batch: list[Any], fleet_targets: list[Any]) -> None:
    batch = [replace(r, key=f"ns/w{i}") for i, r in enumerate(batch)]
    snapshot = unique_fleet(fleet_targets)
    decisions = decide_many(batch, {None: DEFAULT}, snapshot)
    for waiting in (d for d in decisions if not d.placed):
        # Take every lower-priority workload away: if it still cannot be placed, none of them took its capacity.
        peers = [r for r in batch if r.priority >= waiting.request.priority]
        without_lower = {d.request.key: d for d in decide_many(peers, {None: DEFAULT}, snapshot)}
        assert not without_lower[waiting.request.key].placed


def test_an_edges_measured_round_trip_shows_in_its_expected_latency() -> None:
    """A 500 ms edge used to show 3 ms (its region's figure); now its own link counts when it is worse."""
    near = edge("near", "eu-central-1", rtt_ms=2.0)
    slow = edge("slow", "eu-central-1", rtt_ms=25.0)
    request = make_request(**{**REALTIME, "latency_target_ms": 45.0})
    decision = decide(request, DEFAULT, make_fleet(near, slow))
    by_name = {c.target.name: c.expected_latency_ms for c in decision.candidates}
    assert by_name["slow"] >= 25.0
    assert by_name["near"] < by_name["slow"]
    assert decision.chosen is not None
    assert decision.chosen.target.name == "near"


def test_stale_signals_are_said_for_every_decision_not_only_spot() -> None:
    stale = make_signals(updatedAt=datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    decision = decide(make_request(), DEFAULT, make_fleet(pool("on-demand"), signals=stale))
    assert decision.placed
    assert "signals" in decision.message
    assert "old (limit 900s): latency, egress and carbon may be stale" in decision.message
    fresh = decide(make_request(), DEFAULT, make_fleet(pool("on-demand")))
    assert "stale" not in fresh.message
