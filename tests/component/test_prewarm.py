"""Pre-warming at the cluster port: a placeholder Deployment ahead of a recurring run, gone when the run
arrives or its window closes; its pods' GPUs stay free for placement; metrics say forecast vs actual."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import kubernetes_validate

from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Clock, Events, FakeCluster
from tests.component.test_capacity_and_failures import finished, pod_of
from tests.component.test_workload_controller import KEY, gpu_node, signed, workload
from tests.unit.test_chart import KUBERNETES_SCHEMA_VERSION

NIGHTLY_INTENT = {"trainingFrequency": "Daily", "schedule": {"hour": 2, "minute": 0}, "priority": 10}
PLACEHOLDER = ("Deployment", "team-a", "mlw-nightly-placeholder")


class Recorder:
    def __init__(self) -> None:
        self.runs: list[str] = []
        self.gpus: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def prewarm_run(self, outcome: str) -> None:
        self.runs.append(outcome)

    def prewarm_gpus(self, forecast: int, held: int) -> None:
        self.gpus.append((forecast, held))


class World:
    def __init__(self, prewarming: dict[str, Any] | None = None) -> None:
        self.now = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)
        config = OperatorConfig()
        self.cache = FleetCache(config=config)
        self.cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
        rules = {"enabled": True, "leadMinutes": 15, "maxGPUs": 8} if prewarming is None else prewarming
        self.cache.on_policy(signed(make_policy("default", prewarming=rules)), deleted=False)
        self.cache.on_node(gpu_node("n0", "a100-euw1"), deleted=False)
        self.cluster, self.events, self.metrics = FakeCluster(), Events(), Recorder()
        self.controller = WorkloadController(
            config,
            self.cache,
            self.cluster,
            self.events,
            metrics=self.metrics,
            clock=lambda: self.now,
            monotonic=Clock(),
        )
        self.obj = signed(workload("nightly", gpus=4, intent=NIGHTLY_INTENT))

    async def run_once(self) -> None:
        """Tonight's run is placed at 20:00 and finishes: the workload reads Succeeded."""
        await self.controller.on_workload(self.obj)
        await self.controller.place_round()
        job = finished(self.cluster.children[("Job", "team-a", "mlw-nightly")])
        self.controller.on_home_child(job, deleted=False)  # the child watch: the ledger lets its GPUs go
        await self.controller.on_child(job)

    async def at(self, hour: int, minute: int, day: int = 23) -> None:
        self.now = datetime(2026, 11, day, hour, minute, tzinfo=UTC)
        await self.controller.place_round()

    def placeholder(self) -> dict[str, Any] | None:
        return self.cluster.children.get(PLACEHOLDER)


def test_a_placeholder_holds_the_last_runs_gpus_ahead_of_the_next_and_goes_when_it_arrives() -> None:
    world = World()

    async def scenario() -> None:
        await world.run_once()
        assert world.controller.records.statuses()["team-a/nightly"]["phase"] == "Succeeded"
        await world.at(1, 40)
        assert world.placeholder() is None  # twenty minutes ahead: not yet
        await world.at(1, 50)
        held = world.placeholder()
        assert held is not None
        template = held["spec"]["template"]["spec"]
        assert held["spec"]["replicas"] == 1
        assert template["priorityClassName"] == "mlplacement-placeholder"
        assert template["nodeSelector"] == {"mlplacement.io/pool": "a100-euw1"}
        assert template["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": "4"}
        assert held["metadata"]["ownerReferences"][0]["uid"] == "uid-nightly"
        assert "mlplacement.io/workload-uid" not in held["metadata"]["labels"]  # not a child: no ledger, no status
        kubernetes_validate.validate(held, KUBERNETES_SCHEMA_VERSION, strict=True)
        # Its pods hold GPUs any real pod preempts: placement still sees them free.
        bound = pod_of(held, "nightly-placeholder-x", node="n0")
        world.cache.on_pod({**bound, "status": {"phase": "Running"}}, deleted=False)
        free = next(t.capacity for t in world.cache.snapshot(world.now).targets if t.name == "a100-euw1")
        assert free == 8
        # 02:01: the pipeline applies tonight's generation.
        tonight = copy.deepcopy(world.obj)
        tonight["metadata"]["generation"] = 2
        world.now = datetime(2026, 11, 23, 2, 1, tzinfo=UTC)
        await world.controller.on_workload(signed(tonight))
        await world.controller.place_round()

    asyncio.run(scenario())
    assert world.placeholder() is None
    assert ("Deployment", "team-a", "mlw-nightly-placeholder") in world.cluster.deletes
    (event,) = [e for e in world.events if e[1] == "Prewarming"]
    assert event[2] == (
        "holding 4 GPUs on GPUPool a100-euw1 for the run expected at 2026-11-23T02:00Z "
        "(placeholder pods any real work preempts)"
    )
    assert world.metrics.runs == ["arrived"]
    assert (4, 4) in world.metrics.gpus


def test_a_run_that_never_comes_is_counted_missed_and_its_placeholder_removed() -> None:
    world = World()

    async def scenario() -> None:
        await world.run_once()
        await world.at(1, 50)
        assert world.placeholder() is not None
        await world.at(2, 20)

    asyncio.run(scenario())
    assert world.placeholder() is None
    assert world.metrics.runs == ["missed"]


def test_nothing_is_held_without_the_policy_or_beyond_its_budget() -> None:
    for rules in ({"enabled": False}, {"enabled": True, "maxGPUs": 2}):
        world = World(prewarming=rules)

        async def scenario(world: World = world) -> None:
            await world.run_once()
            await world.at(1, 55)

        asyncio.run(scenario())
        assert world.placeholder() is None, rules
        assert [e for e in world.events if e[1] == "Prewarming"] == []


def test_placeholders_go_and_come_back_with_the_clock_not_with_restarts_of_the_round() -> None:
    world = World()

    async def scenario() -> None:
        await world.run_once()
        for minute in (46, 50, 55):
            await world.at(1, minute)

    asyncio.run(scenario())
    assert world.cluster.applies - 1 == 1  # the run's Job, then one placeholder however many rounds pass
    assert [e[1] for e in world.events].count("Prewarming") == 1


def test_the_window_is_the_leadminutes_of_the_policy() -> None:
    world = World(prewarming={"enabled": True, "leadMinutes": 60, "maxGPUs": 8})

    async def scenario() -> None:
        await world.run_once()
        await world.at(1, 5)

    asyncio.run(scenario())
    assert world.placeholder() is not None  # 55 minutes ahead, inside a 60-minute window
