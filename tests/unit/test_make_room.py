"""No stranded capacity: the greedy's left-out workloads are placed when moving placed ones makes room."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import SpotPreference, TargetKind, WorkloadType
from mlplacement.core.placement import decide_many
from mlplacement.core.placement.batch import Option, make_room
from mlplacement.core.placement.engine import claim_amount
from tests.builders import make_fleet, make_request, pool, workspace
from tests.unit.test_batch import COST_ONLY, greedy_start, instances
from tests.unit.test_placement import ANY_REQUEST, FLEETS, unique_fleet

MOVED = "; placed once the batch moved others to make room"
A100 = frozenset({"NVIDIA-A100"})
L4 = frozenset({"NVIDIA-L4"})


def placements(batch: list[Any], fleet: Any, policy: PlacementPolicySpec = COST_ONLY) -> dict[str, str | None]:
    return {
        d.request.key: (d.chosen.target.name if d.chosen else None) for d in decide_many(batch, {None: policy}, fleet)
    }


@pytest.mark.parametrize(
    ("batch", "fleet", "expected"),
    [
        pytest.param(
            [
                make_request(key="ns/small", priority=2),
                make_request(key="ns/a100-pair", priority=1, gpus=2, gpu_product="NVIDIA-A100"),
            ],
            make_fleet(
                pool("a100", free=2, gpu_hour_usd=1, gpu_products=A100),
                pool("l4", free=1, gpu_hour_usd=2, gpu_products=L4),
            ),
            {"ns/small": "l4", "ns/a100-pair": "a100"},
            id="a small job moves to the other pool it fits so a larger, later one gets the only pool it can use",
        ),
        pytest.param(
            [
                make_request(key="ns/big", type=WorkloadType.TRAINING, gpus=8, priority=3),
                make_request(key="ns/tiny", type=WorkloadType.TRAINING, gpus=1, priority=2),
                make_request(
                    key="ns/serving", type=WorkloadType.INFERENCE, gpus=1, priority=1, latency_target_ms=1000.0
                ),
            ],
            make_fleet(
                pool("p", free=8, gpu_hour_usd=1), workspace("dbx", slots=1, gpu_hour_usd=10.0, base_hour_usd=1.0)
            ),
            {"ns/big": "dbx", "ns/tiny": "p", "ns/serving": "p"},
            id="an 8-GPU job trades its pool for the 1-GPU job's run slot so inference, which Databricks cannot "
            "serve, fits the pool",
        ),
        pytest.param(
            [
                make_request(key="ns/l4-only", priority=4, gpu_product="NVIDIA-L4"),
                make_request(key="ns/on-demand-only", priority=3, spot=SpotPreference.NEVER),
                make_request(key="ns/a100-pair", priority=2, gpus=2, gpu_product="NVIDIA-A100"),
            ],
            make_fleet(
                pool("a100", free=2, gpu_hour_usd=1, gpu_products=A100),
                pool("l4", free=1, gpu_hour_usd=2, gpu_products=L4),
                pool("spot", free=1, gpu_hour_usd=3, gpu_products=L4, spot=True, preemption_probability=0.05),
            ),
            {"ns/l4-only": "spot", "ns/on-demand-only": "l4", "ns/a100-pair": "a100"},
            id="a chain: the on-demand job leaves the A100 pool once the L4 job moves to spot to make it room",
        ),
        pytest.param(
            [
                make_request(key="ns/first", priority=2, gpus=2, gpu_product="NVIDIA-A100"),
                make_request(key="ns/second", priority=1, gpus=2, gpu_product="NVIDIA-A100"),
            ],
            make_fleet(pool("a100", free=3, gpu_hour_usd=1, gpu_products=A100), pool("l4", free=4, gpu_products=L4)),
            {"ns/first": "a100", "ns/second": None},
            id="nothing moves when no move makes room: the later one waits",
        ),
    ],
)
def test_make_room(batch: list[Any], fleet: Any, expected: dict[str, str | None]) -> None:
    assert placements(batch, fleet) == expected


def test_a_workload_placed_by_moving_others_says_so() -> None:
    fleet = make_fleet(
        pool("a100", free=2, gpu_hour_usd=1, gpu_products=A100), pool("l4", free=1, gpu_hour_usd=2, gpu_products=L4)
    )
    batch = [
        make_request(key="ns/small", priority=2),
        make_request(key="ns/a100-pair", priority=1, gpus=2, gpu_product="NVIDIA-A100"),
    ]
    decisions = {d.request.key: d for d in decide_many(batch, {None: COST_ONLY}, fleet)}
    assert decisions["ns/a100-pair"].message.endswith(MOVED)
    assert decisions["ns/a100-pair"].message.startswith("placed on GPUPool a100")
    assert decisions["ns/small"].message.endswith("; rebalanced for the batch (alone it would take a100)")


def test_room_is_made_at_the_workloads_turn_before_lower_priority_work_takes_it() -> None:
    # The pair can have the A100 pool only if the small job moves to the L4 pool; the later 1-GPU job
    # would take that L4 GPU first if room were made only after the whole greedy ran.
    fleet = make_fleet(
        pool("a100", free=2, gpu_hour_usd=1, gpu_products=A100), pool("l4", free=1, gpu_hour_usd=2, gpu_products=L4)
    )
    batch = [
        make_request(key="ns/small", priority=3),
        make_request(key="ns/a100-pair", priority=2, gpus=2, gpu_product="NVIDIA-A100"),
        make_request(key="ns/later", priority=1, gpu_product="NVIDIA-L4"),
    ]
    assert placements(batch, fleet) == {"ns/small": "l4", "ns/a100-pair": "a100", "ns/later": None}


@settings(max_examples=300, deadline=None)
@given(instance=instances(), data=st.data())
def test_property_make_room_keeps_everyone_placed_and_within_capacity(instance: Any, data: Any) -> None:
    order, options, room = instance
    start = greedy_start(order, options, room)
    placed = [w for w in order if w in start]
    waiting = [(w, {t: o.need for t, o in options[w].items()}) for w in order if w not in start]
    result = make_room(placed, start, waiting, options, room)
    assert set(start) <= set(result)
    used = dict.fromkeys(room, 0)
    for workload, target in result.items():
        assert target in options[workload]
        used[target] += options[workload][target].need
    assert all(used[t] <= room[t] for t in room)
    assert make_room(placed, start, waiting, options, room) == result  # deterministic


def test_make_room_places_a_waiting_workload_with_a_swap() -> None:
    # Slots count one whatever the size: the big job takes the slot, the small one its GPUs.
    pool_key, slot_key = ("GPUPool", "p"), ("Databricks", "dbx")
    options = {
        "big": {pool_key: Option(0.0, 8), slot_key: Option(-5.0, 1)},
        "tiny": {pool_key: Option(0.0, 1), slot_key: Option(0.0, 1)},
    }
    placed = {"big": pool_key, "tiny": slot_key}
    result = make_room(list(placed), placed, [("serving", {pool_key: 1})], options, {pool_key: 8, slot_key: 1})
    assert result == {"big": slot_key, "tiny": pool_key, "serving": pool_key}


@settings(max_examples=100, deadline=None)
@given(batch=st.lists(ANY_REQUEST, min_size=1, max_size=15), fleet_targets=FLEETS)
def test_property_making_room_only_ever_places_more_in_priority_order(
    batch: list[Any], fleet_targets: list[Any]
) -> None:
    # Not "everything the greedy places": a workload placed by moving others may take what a later one got.
    # The first workload, in placement order, whose fate differs is one the batch places and the greedy not.
    batch = [replace(r, key=f"ns/w{i}") for i, r in enumerate(batch)]
    snapshot = unique_fleet(fleet_targets)
    policy = {None: PlacementPolicySpec()}
    greedy = decide_many(batch, policy, snapshot, rebalance_batch=False)
    decisions = decide_many(batch, policy, snapshot)
    placed = {d.request.key: d.placed for d in decisions}
    first = next((d for d in greedy if d.placed != placed[d.request.key]), None)
    assert first is None or placed[first.request.key]
    used: dict[tuple[str, str], int] = {}
    for decision in decisions:
        if decision.chosen is not None:
            target = decision.chosen.target
            used[target.key] = used.get(target.key, 0) + claim_amount(decision.request, target)
    assert all(used[t.key] <= t.capacity for t in snapshot.targets if t.key in used)
    assert all(
        d.chosen.target.kind is not TargetKind.DATABRICKS or d.request.type is not WorkloadType.INFERENCE
        for d in decisions
        if d.chosen is not None
    )
