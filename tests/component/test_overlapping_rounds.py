"""Overlapping rounds: a plan that only starts new work on GPU pools is written in the background while the next
round is planned (controller.workloads.start_round). Its capacity is committed before any write, its workloads
are left alone until it lands, and whatever changed meanwhile is decided after it.

In flight, a placement counts against its team's quota and is never a preemption victim.

The cluster holds chosen Jobs' POSTs until the test lets them go, as a slow apiserver does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from mlplacement.api.errors import ApplyError
from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Events, FakeCluster
from tests.component.test_workload_controller import KEY, NOW, conditions, gpu_node, signed, workload

POLL = 2000  # event-loop turns a condition may take to come true (each yields for a millisecond at most)


class HeldCluster(FakeCluster):
    """POSTs of the Jobs named in ``held`` block (in the operator's write thread) until ``release``; a released
    Job named in ``refuse`` is refused instead of created."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, threading.Event] = {}
        self.refuse: set[str] = set()

    def hold(self, job: str) -> None:
        self.held[job] = threading.Event()

    def release(self, job: str) -> None:
        self.held[job].set()

    def apply_child(self, obj: Mapping[str, Any]) -> str:
        name = obj["metadata"]["name"]
        gate = self.held.get(name)
        if gate is not None and not gate.wait(timeout=30):
            raise TimeoutError(f"{name} was never released")
        if name in self.refuse:
            raise ApplyError("Forbidden", 'jobs "mlw" is forbidden: exceeded quota: gpus')
        return super().apply_child(obj)


def controller_with(cluster: FakeCluster, gpus: int = 8) -> WorkloadController:
    config = OperatorConfig()
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    cache.on_policy(signed(make_policy("default")), deleted=False)
    cache.on_node(gpu_node("n1", "a100-euw1", gpus=gpus), deleted=False)
    return WorkloadController(config, cache, cluster, Events(), clock=lambda: NOW, monotonic=lambda: 0.0)


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(POLL):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never came true: {what}")


def jobs(cluster: FakeCluster) -> set[str]:
    return {name for kind, _, name in cluster.children if kind == "Job"}


def phase(cluster: FakeCluster, name: str) -> str | None:
    return cluster.statuses.get(f"team-a/{name}", {}).get("phase")


def test_a_workload_created_while_a_round_is_written_is_placed_before_that_round_lands() -> None:
    cluster = HeldCluster()
    controller = controller_with(cluster)
    cluster.hold("mlw-first")

    async def scenario() -> None:
        await controller.on_workload(signed(workload("first", gpus=6)))
        await controller.start_round()  # returns with first's Job still being written
        await controller.on_workload(signed(workload("second", gpus=2)))
        await controller.start_round()
        await until(lambda: phase(cluster, "second") == "Placed", "second placed")
        assert jobs(cluster) == {"mlw-second"}  # first's POST has not come back yet
        assert phase(cluster, "first") is None
        cluster.release("mlw-first")
        await controller.landed()

    asyncio.run(scenario())
    assert jobs(cluster) == {"mlw-first", "mlw-second"}
    assert phase(cluster, "first") == "Placed"
    assert not controller.records.queued()


async def second_waits_while_first_is_written(controller: WorkloadController, cluster: HeldCluster) -> None:
    """first takes 6 of the 8 GPUs, its Job held; second asks for 4 and is told it waits; then first lands."""
    cluster.hold("mlw-first")
    await controller.on_workload(signed(workload("first", gpus=6)))
    await controller.start_round()
    await controller.on_workload(signed(workload("second", gpus=4)))
    await controller.start_round()
    await until(lambda: phase(cluster, "second") == "Waiting", "second told it waits")
    cluster.release("mlw-first")
    await controller.landed()


def test_capacity_of_a_plan_being_written_is_not_free_to_the_next_round() -> None:
    cluster = HeldCluster()
    controller = controller_with(cluster)
    asyncio.run(second_waits_while_first_is_written(controller, cluster))
    assert jobs(cluster) == {"mlw-first"}
    assert conditions(cluster.statuses["team-a/second"])["Placed"] == ("False", "WaitingForCapacity")


def test_a_plan_whose_write_fails_gives_its_capacity_back_to_the_next_round() -> None:
    cluster = HeldCluster()
    controller = controller_with(cluster)
    cluster.refuse.add("mlw-first")

    async def scenario() -> None:
        await second_waits_while_first_is_written(controller, cluster)
        assert controller.wakeup.is_set()  # the capacity came back: the next round is due at once
        await controller.place_round()

    asyncio.run(scenario())
    assert jobs(cluster) == {"mlw-second"}
    assert conditions(cluster.statuses["team-a/first"])["Placed"] == ("False", "ApplyFailed")
    assert phase(cluster, "second") == "Placed"


def test_a_spec_change_that_comes_while_its_decision_is_written_is_decided_after_it_lands() -> None:
    cluster = HeldCluster()
    controller = controller_with(cluster)
    cluster.hold("mlw-first")
    changed = workload("first", gpus=2, args=["--epochs", "9"])
    changed["metadata"]["generation"] = 2

    async def scenario() -> None:
        await controller.on_workload(signed(workload("first", gpus=2)))
        await controller.start_round()
        await controller.on_workload(signed(changed))
        assert await controller.start_round() == []  # in flight: left alone
        cluster.held.pop("mlw-first").set()
        await controller.landed()
        assert controller.wakeup.is_set()
        assert "team-a/first" in controller.records.queued()  # generation 2 still waits to be decided
        await controller.place_round()

    asyncio.run(scenario())
    ((job,),) = [[c for (kind, _, name), c in cluster.children.items() if kind == "Job" and name == "mlw-first"]]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["--epochs", "9"]
    assert cluster.statuses["team-a/first"]["observedGeneration"] == 2
    assert not controller.records.queued()


def test_a_placement_being_written_counts_against_its_teams_quota() -> None:
    cluster = HeldCluster()
    controller = controller_with(cluster)
    quota = [{"name": "team-a", "namespaces": ["team-a"], "nominal": {"gpus": 4}, "borrowingLimit": {"gpus": 0}}]
    controller.cache.on_policy(signed(make_policy("default", quotas=quota)), deleted=False)
    cluster.hold("mlw-first")

    async def scenario() -> None:
        await controller.on_workload(signed(workload("first", gpus=4)))
        await controller.start_round()
        await controller.on_workload(signed(workload("second", gpus=2)))
        await controller.start_round()
        await until(lambda: phase(cluster, "second") is not None, "second decided")
        cluster.release("mlw-first")
        await controller.landed()

    asyncio.run(scenario())
    assert jobs(cluster) == {"mlw-first"}  # the pool has room; the team's quota has none
    assert conditions(cluster.statuses["team-a/second"])["Ready"] == ("False", "QuotaExceeded")


def test_a_placement_being_written_is_never_chosen_to_make_room() -> None:
    """Of two equal batch jobs the most recently placed is the one preemption takes, but not while its start is
    still being written: the service preempts the one that has landed."""
    cluster = HeldCluster()
    controller = controller_with(cluster)
    controller.cache.on_policy(
        signed(make_policy("default", preemption={"enabled": True, "gracePeriodSeconds": 30})), deleted=False
    )

    def batch(name: str, created: str) -> dict[str, Any]:
        obj = workload(name, gpus=4, intent={"priority": 10})
        obj["metadata"]["creationTimestamp"] = created
        return signed(obj)

    async def scenario() -> None:
        await controller.on_workload(batch("landed", "2026-11-22T10:00:00Z"))
        await controller.place_round()
        controller.clock = lambda: NOW + timedelta(minutes=1)  # decided later: started later
        cluster.hold("mlw-writing")
        await controller.on_workload(batch("writing", "2026-11-22T10:01:00Z"))
        await controller.start_round()
        service = workload("service", gpus=4, intent={"priority": 1000})
        service["metadata"]["creationTimestamp"] = "2026-11-22T11:00:00Z"
        await controller.on_workload(signed(service))
        before = controller._last_snapshot
        deciding = asyncio.create_task(controller.start_round())  # preempts: waits for what is in flight
        # The snapshot is taken and the round planned in one step: once it is new, the plan has been made.
        await until(lambda: controller._last_snapshot is not before, "the service's round planned")
        cluster.release("mlw-writing")
        await deciding
        await controller.landed()

    asyncio.run(scenario())
    assert conditions(cluster.statuses["team-a/landed"])["Placed"] == ("False", "Preempted")
    assert phase(cluster, "writing") == "Placed"
    assert phase(cluster, "service") == "Placed"
