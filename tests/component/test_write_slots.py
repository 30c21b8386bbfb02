"""Write slots (controller.slots): bounded like a semaphore, served in the plan's order, so in a round of many
placements each workload's status follows its own child instead of every other workload's child."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from mlplacement.config import OperatorConfig
from mlplacement.controller.slots import WriteSlots, ordered
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Events, FakeCluster
from tests.component.test_workload_controller import KEY, NOW, gpu_node, signed, workload


async def settle() -> None:
    """Let every task that can run, run (each write below awaits nothing but the slots)."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_never_more_writes_at_once_than_slots_and_every_write_gets_one() -> None:
    slots = WriteSlots(3)
    running, most, done = 0, 0, 0

    async def write() -> None:
        nonlocal running, most, done
        async with slots:
            running += 1
            most = max(most, running)
            await asyncio.sleep(0)
            running -= 1
            done += 1

    async def scenario() -> None:
        await asyncio.gather(*(write() for _ in range(50)))

    asyncio.run(scenario())
    assert (most, done, slots.free) == (3, 50, 3)


def test_waiting_writes_go_by_their_order_then_by_arrival() -> None:
    slots = WriteSlots(1)
    served: list[str] = []

    async def scenario() -> None:
        hold = asyncio.Event()

        async def holder() -> None:
            async with slots:
                await hold.wait()

        async def write(name: str, order: tuple[int, int]) -> None:
            with ordered(order):
                async with slots:
                    served.append(name)

        first = asyncio.create_task(holder())
        await settle()
        waiting = [
            asyncio.create_task(write(name, order))
            for name, order in [
                ("round 2, first", (2, 0)),
                ("round 1, third", (1, 2)),
                ("round 1, first", (1, 0)),
                ("round 1, first again", (1, 0)),
            ]
        ]
        await settle()
        hold.set()
        await asyncio.gather(first, *waiting)

    asyncio.run(scenario())
    assert served == ["round 1, first", "round 1, first again", "round 1, third", "round 2, first"]


@pytest.mark.parametrize("cancel_after_handover", [False, True], ids=["while waiting", "as its slot is handed over"])
def test_a_cancelled_write_never_keeps_a_slot(cancel_after_handover: bool) -> None:
    slots = WriteSlots(1)

    async def write() -> None:
        async with slots:
            pass

    async def scenario() -> None:
        await slots.__aenter__()  # the one slot is taken
        doomed = asyncio.create_task(write())
        await settle()  # waiting
        if cancel_after_handover:
            await slots.__aexit__(None, None, None)  # handed to the waiter, which has not run since
        doomed.cancel()
        if not cancel_after_handover:
            await slots.__aexit__(None, None, None)
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await asyncio.wait_for(write(), timeout=1)  # the slot came back

    asyncio.run(scenario())
    assert slots.free == 1


class LoggingCluster(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str]] = []

    def apply_child(self, obj: Mapping[str, Any]) -> str:
        self.log.append(("child", obj["metadata"]["name"].removeprefix("mlw-")))
        return super().apply_child(obj)

    def apply_workload_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.log.append(("status", name))
        super().apply_workload_status(namespace, name, status)


def test_in_a_round_of_many_placements_each_status_follows_its_own_child() -> None:
    config = OperatorConfig(write_concurrency=1)
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    cache.on_policy(signed(make_policy("default")), deleted=False)
    cache.on_node(gpu_node("n1", "a100-euw1", gpus=8), deleted=False)
    cluster = LoggingCluster()
    controller = WorkloadController(config, cache, cluster, Events(), clock=lambda: NOW, monotonic=lambda: 0.0)

    async def scenario() -> None:
        for index in range(6):
            await controller.on_workload(signed(workload(f"w{index}", gpus=1)))
        await controller.place_round()

    asyncio.run(scenario())
    children = [name for call, name in cluster.log if call == "child"]
    assert len(children) == 6
    for place, name in enumerate(children[:-2]):
        # Its status is written before the child of the workload two places after it (the next one may have
        # taken the slot while this one's child was being answered). First come, first served, every child
        # came before any status.
        assert cluster.log.index(("status", name)) < cluster.log.index(("child", children[place + 2]))
