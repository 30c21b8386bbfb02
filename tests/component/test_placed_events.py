"""Routine placements' Events at a bounded rate, summarised per policy beyond it; moves always get their own."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import pytest

from mlplacement.config import ConfigError, OperatorConfig
from mlplacement.controller.placed_events import SUMMARY_SECONDS, PlacedEvents
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Clock, FakeCluster
from tests.component.test_workload_controller import KEY, NOW, gpu_node, not_ready, signed, workload


class Posted(list[tuple[str, str, str, str]]):
    """Events with the name of the object each is about."""

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.append((obj["metadata"]["name"], type_, reason, message))


POLICIES = {"default": signed(make_policy("default")), "gpu-heavy": signed(make_policy("gpu-heavy"))}

BUDGETS = [
    pytest.param(math.inf, 0.0, 500, 500, id="unlimited: every placement its own Event"),
    pytest.param(1.0, 0.0, 25, 10, id="one a second: a burst of ten seconds' worth, then held"),
    pytest.param(1.0, 30.0, 25, 10, id="a quiet start does not overfill the bucket"),
    pytest.param(0.0, 100.0, 5, 0, id="zero: no routine placement gets an Event of its own"),
]


@pytest.mark.parametrize(("rate", "elapsed", "placements", "allowed"), BUDGETS)
def test_the_budget_allows_a_burst_then_the_rate(rate: float, elapsed: float, placements: int, allowed: int) -> None:
    clock = Clock()
    budget = PlacedEvents(rate, clock)
    clock.now += elapsed  # before the first placement
    assert sum(budget.allow("default", "GPUPool a") for _ in range(placements)) == allowed


def test_tokens_come_back_with_time_up_to_the_burst() -> None:
    clock = Clock()
    budget = PlacedEvents(1.0, clock)
    assert sum(budget.allow("default", "GPUPool a") for _ in range(15)) == 10
    clock.now += 3
    assert sum(budget.allow("default", "GPUPool a") for _ in range(15)) == 3
    clock.now += 1000
    assert sum(budget.allow("default", "GPUPool a") for _ in range(15)) == 10


def test_what_was_held_is_said_once_per_policy_with_the_busiest_targets_first() -> None:
    budget = PlacedEvents(0.0, Clock())
    for target, count in [("GPUPool a", 3), ("GPUPool b", 9), *[(f"EdgeCluster e{i}", 1) for i in range(6)]]:
        for _ in range(count):
            budget.allow("default", target)
    budget.allow("gpu-heavy", "GPUPool a")
    budget.allow("deleted-meanwhile", "GPUPool a")
    posted = Posted()
    budget.flush(POLICIES, posted)
    assert [(name, type_, reason) for name, type_, reason, _ in posted] == [
        ("default", "Normal", "Placed"),
        ("gpu-heavy", "Normal", "Placed"),
    ]
    assert posted[0][3].startswith("placed 18 workloads without an Event each")
    assert "9 on GPUPool b, 3 on GPUPool a, 1 on EdgeCluster e0" in posted[0][3]
    assert posted[0][3].endswith("and 3 other targets; each one's status.placement says where and why")
    assert posted[1][3].startswith("placed 1 workload without")
    budget.flush(POLICIES, posted)
    assert len(posted) == 2  # nothing held since: nothing said


def test_a_steady_stream_over_the_rate_gets_one_summary_per_interval_not_one_per_round() -> None:
    clock = Clock()
    budget = PlacedEvents(0.0, clock)
    posted = Posted()
    for _ in range(50):  # rounds of one placement each, 0.2 s apart: 10 s of a steady stream
        budget.allow("default", "GPUPool a")
        budget.flush(POLICIES, posted)
        clock.now += 0.2
    assert [message.split(" without")[0] for *_, message in posted] == ["placed 1 workload"]
    clock.now = SUMMARY_SECONDS  # exactly (0.2 added 50 times is not)
    budget.allow("default", "GPUPool a")
    budget.flush(POLICIES, posted)  # SUMMARY_SECONDS after the first: everything held since, said at once
    assert [message.split(" without")[0] for *_, message in posted] == ["placed 1 workload", "placed 50 workloads"]
    budget.allow("default", "GPUPool a")
    budget.flush(POLICIES, posted, force=True)  # the operator stops: nothing held is left unsaid
    assert len(posted) == 3


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param("-1", "must be >= 0", id="negative"),
        pytest.param("nan", "must be >= 0", id="not a number"),
        pytest.param("often", "is not a valid float", id="a word"),
    ],
)
def test_a_rate_that_cannot_be_used_is_refused_by_name(raw: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error) as caught:
        OperatorConfig.from_env({"MLPLACEMENT_PLACED_EVENTS_PER_SECOND": raw})
    assert "MLPLACEMENT_PLACED_EVENTS_PER_SECOND" in str(caught.value)


def summaries_only(pools: int = 1) -> tuple[WorkloadController, FakeCluster, Posted, Clock]:
    """A controller that gives routine placements no Event of their own (rate 0), over ``pools`` 8-GPU pools."""
    config = OperatorConfig(placed_events_per_second=0.0)
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    cache.on_policy(POLICIES["default"], deleted=False)
    for name, pool in [("n1", "a100-euw1"), ("n2", "a100-euw1-b")][:pools]:
        cache.on_node(gpu_node(name, pool, gpus=8), deleted=False)
    cluster, posted, clock = FakeCluster(), Posted(), Clock()
    controller = WorkloadController(config, cache, cluster, posted, clock=lambda: NOW, monotonic=clock)
    return controller, cluster, posted, clock


def test_over_the_rate_placements_are_summarised_on_the_policy_but_a_move_gets_its_own_event() -> None:
    controller, cluster, posted, clock = summaries_only(pools=2)
    config, cache = controller.config, controller.cache

    async def scenario() -> None:
        for name in ("first", "second", "third"):
            await controller.on_workload(signed(workload(name, gpus=1)))
        await controller.place_round()
        assert [(name, reason) for name, _, reason, _ in posted] == [("default", "Placed")]
        assert posted[0][3].startswith("placed 3 workloads without an Event each")
        pool = cluster.children[("Job", "team-a", "mlw-first")]["spec"]["template"]["spec"]["nodeSelector"]
        down = (
            gpu_node("n1", "a100-euw1") if pool["mlplacement.io/pool"] == "a100-euw1" else gpu_node("n2", "a100-euw1-b")
        )
        cache.on_node(not_ready(down), deleted=False)
        controller.fleet_changed()
        await controller.place_round()  # the grace starts
        clock.now += config.pool_grace_seconds + 1
        await controller.place_round()

    asyncio.run(scenario())
    moved = [(name, reason) for name, _, reason, _ in posted[1:] if reason == "Placed"]
    assert moved
    assert all(name != "default" for name, _ in moved)  # each move said on the workload itself
    assert {name for name, _, reason, _ in posted if reason == "FailingOver"} == {name for name, _ in moved}


def test_what_the_end_of_a_burst_held_back_is_said_by_a_quiet_round() -> None:
    controller, _, posted, clock = summaries_only()

    async def scenario() -> None:
        await controller.on_workload(signed(workload("first", gpus=1)))
        await controller.place_round()  # said at once
        clock.now += 1
        await controller.on_workload(signed(workload("second", gpus=1)))
        await controller.place_round()  # held: the last summary is a second old
        assert len(posted) == 1
        clock.now += SUMMARY_SECONDS
        await controller.place_round()  # nothing to decide; the summary is due

    asyncio.run(scenario())
    assert [message.split(" without")[0] for *_, message in posted] == ["placed 1 workload", "placed 1 workload"]
