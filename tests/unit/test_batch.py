"""Batch rebalancing: who runs is decided by priority, where they run by the batch's total."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import TargetKind, WorkloadType
from mlplacement.core.placement import decide_many
from mlplacement.core.placement.batch import Option, rebalance, total_utility
from mlplacement.core.placement.engine import make_context
from mlplacement.core.placement.filters import KIND_FILTERS, REGION_FILTERS, TARGET_FILTERS, capacity
from tests.builders import make_fleet, make_request, pool, workspace
from tests.unit.test_placement import ANY_REQUEST, FLEETS, unique_fleet

COST_ONLY = PlacementPolicySpec.model_validate(
    {"weights": {"cost": 100, "latency": 0, "dataGravity": 0, "carbon": 0, "preemption": 0}}
)


def placements(batch: list[Any], fleet: Any, policy: PlacementPolicySpec = COST_ONLY) -> dict[str, str | None]:
    return {
        d.request.key: (d.chosen.target.name if d.chosen else None) for d in decide_many(batch, {None: policy}, fleet)
    }


def test_big_run_gets_the_run_slot_a_small_one_held() -> None:
    # One Databricks run slot is worth $3/h to a 1-GPU job but $16/h to an 8-GPU one.
    fleet = make_fleet(
        workspace("dbx", slots=1, gpu_hour_usd=3.0, base_hour_usd=1.0), pool("p", free=9, gpu_hour_usd=5)
    )
    small = make_request(key="ns/small", type=WorkloadType.TRAINING, gpus=1, priority=900)
    big = make_request(key="ns/big", type=WorkloadType.TRAINING, gpus=8, priority=100)
    decisions = {d.request.key: d for d in decide_many([small, big], {None: COST_ONLY}, fleet)}
    assert decisions["ns/big"].chosen.target.name == "dbx"
    assert decisions["ns/small"].chosen.target.name == "p"
    assert decisions["ns/small"].message.endswith("; rebalanced for the batch (alone it would take dbx)")
    # Explained against the final placement: dbx is full, so the small job's only candidate is the pool.
    assert [c.target.name for c in decisions["ns/small"].candidates] == ["p"]
    assert sum(d.chosen.hourly_cost_usd for d in decisions.values()) == 1 + 8 * 3 + 5


@pytest.mark.parametrize(
    ("batch", "fleet", "expected"),
    [
        pytest.param(
            [make_request(key="ns/a", priority=2), make_request(key="ns/b", priority=1)],
            make_fleet(pool("cheap", free=1, gpu_hour_usd=1), pool("dear", free=1, gpu_hour_usd=4)),
            {"ns/a": "cheap", "ns/b": "dear"},
            id="interchangeable workloads keep the priority order's choice",
        ),
        pytest.param(
            [
                make_request(key="ns/flexible", priority=2),
                make_request(key="ns/a100-only", priority=1, gpu_product="NVIDIA-A100"),
            ],
            make_fleet(
                pool("a100", free=1, gpu_hour_usd=1),
                pool("a100-dear", free=1, gpu_hour_usd=5),
                pool("l4", free=1, gpu_hour_usd=1.2, gpu_products=frozenset({"NVIDIA-L4"})),
            ),
            {"ns/flexible": "l4", "ns/a100-only": "a100"},
            id="a flexible workload steps aside for one that fits fewer pools",
        ),
        pytest.param(
            [make_request(key="ns/first", priority=2), make_request(key="ns/second", priority=1, gpus=2)],
            make_fleet(pool("small", free=1, gpu_hour_usd=1)),
            {"ns/first": "small", "ns/second": None},
            id="rebalancing never places a workload priority left out",
        ),
    ],
)
def test_rebalance(batch: list[Any], fleet: Any, expected: dict[str, str | None]) -> None:
    assert placements(batch, fleet) == expected


def test_the_batch_is_never_dearer_than_placing_one_by_one() -> None:
    # Four jobs, two pools, one slot: brute force finds the cheapest assignment of those placed.
    fleet = make_fleet(
        workspace("dbx", slots=1, gpu_hour_usd=2.0),
        pool("p", free=6, gpu_hour_usd=3),
        pool("q", free=4, gpu_hour_usd=4),
    )
    batch = [
        make_request(key=f"ns/j{gpus}", type=WorkloadType.TRAINING, gpus=gpus, priority=10 - gpus)
        for gpus in (1, 2, 3, 4)
    ]
    decisions = decide_many(batch, {None: COST_ONLY}, fleet)
    got = sum(d.chosen.hourly_cost_usd for d in decisions if d.chosen)
    prices = {"dbx": lambda g: 1 + 2.0 * g, "p": lambda g: 3.0 * g, "q": lambda g: 4.0 * g}
    room = {"dbx": 1, "p": 6, "q": 4}
    best = min(
        sum(prices[t](g) for t, g in zip(choice, (1, 2, 3, 4), strict=True))
        for choice in itertools.product(room, repeat=4)
        if all(
            sum(1 if t == "dbx" else g for t, g in zip(choice, (1, 2, 3, 4), strict=True) if t == name) <= room[name]
            for name in room
        )
    )
    assert all(d.placed for d in decisions)
    assert got == pytest.approx(best)


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[str], dict[str, dict[tuple[str, str], Option]], dict[Any, int]]:
    target_keys = [("GPUPool", f"t{i}") for i in range(draw(st.integers(1, 4)))]
    room = {key: draw(st.integers(0, 8)) for key in target_keys}
    order = [f"w{i}" for i in range(draw(st.integers(1, 8)))]
    options = {}
    for workload in order:
        usable = draw(st.lists(st.sampled_from(target_keys), min_size=1, unique=True))
        options[workload] = {
            key: Option(draw(st.floats(-50, 50, allow_nan=False)), draw(st.integers(0, 4))) for key in usable
        }
    return order, options, room


def greedy_start(order: list[str], options: Any, room: dict[Any, int]) -> dict[str, Any] | None:
    used = dict.fromkeys(room, 0)
    start = {}
    for workload in order:
        fits = [t for t, o in options[workload].items() if o.need <= room[t] - used[t]]
        if not fits:
            continue
        best = max(fits, key=lambda t: options[workload][t].utility)
        start[workload] = best
        used[best] += options[workload][best].need
    return start


def within_capacity(assignment: dict[str, Any], options: Any, room: dict[Any, int]) -> bool:
    """Every workload on a target it may use, and no target given more than it has."""
    used = dict.fromkeys(room, 0)
    for workload, target in assignment.items():
        if target not in options[workload]:
            return False
        used[target] += options[workload][target].need
    return all(used[t] <= room[t] for t in room)


@settings(max_examples=300, deadline=None)
@given(instance=instances())
def test_property_rebalance_keeps_everyone_within_capacity_and_never_loses(instance: Any) -> None:
    order, options, room = instance
    start = greedy_start(order, options, room)
    placed = [w for w in order if w in start]
    result = rebalance(placed, options, room, start)
    assert set(result) == set(start)
    assert within_capacity(result, options, room)
    assert total_utility(result, options) >= total_utility(start, options) - 1e-6
    assert rebalance(placed, options, room, start) == result  # deterministic


def best_total(placed: list[str], options: Any, room: dict[Any, int]) -> float:
    """The highest total utility of any assignment that keeps every one of ``placed`` within capacity."""
    assignments = (
        dict(zip(placed, choice, strict=True)) for choice in itertools.product(*(list(options[w]) for w in placed))
    )
    return max(total_utility(a, options) for a in assignments if within_capacity(a, options, room))


@settings(max_examples=200, deadline=None)
@given(instance=instances())
def test_property_when_everyone_has_its_best_target_that_is_the_optimum_and_kept(instance: Any) -> None:
    order, options, room = instance
    start = greedy_start(order, options, room)
    placed = [w for w in order if w in start][:6]
    start = {w: start[w] for w in placed}
    if not placed or any(max(o.utility for o in options[w].values()) > options[w][start[w]].utility for w in placed):
        return  # someone is not at its best: the search runs (the property above covers it)
    assert rebalance(placed, options, room, start) == start
    assert total_utility(start, options) == pytest.approx(best_total(placed, options, room))


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(ANY_REQUEST, min_size=1, max_size=12), fleet_targets=FLEETS)
def test_property_every_batch_choice_passes_every_filter(batch: list[Any], fleet_targets: list[Any]) -> None:
    batch = [replace(r, key=f"ns/w{i}") for i, r in enumerate(batch)]
    snapshot = unique_fleet(fleet_targets)
    for decision in decide_many(batch, {None: PlacementPolicySpec()}, snapshot):
        if decision.chosen is None:
            continue
        request, target = decision.request, decision.chosen.target
        context = make_context(request, PlacementPolicySpec(), snapshot)
        assert all(f(request, target.kind, context) is None for f in KIND_FILTERS)
        assert all(f(request, target.kind, target.region, context) is None for f in REGION_FILTERS)
        assert all(f(request, target, target.capacity, context) is None for f in TARGET_FILTERS if f is not capacity)
        assert decision.chosen in decision.candidates
        assert target.kind in TargetKind
