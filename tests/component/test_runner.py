"""The process around kopf (handlers.runner.lead): what a leader does when it loses its Lease, and how it hands
over on SIGTERM. kopf itself is replaced by a stand-in that behaves as it does toward the runner (runs until
its stop flag is set, its cleanup letting the controller finish); the Lease store is the one of
test_leader.py, which keeps resourceVersions as the API server does.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlplacement.handlers.runner import Shared, lead
from tests.component.test_leader import CONFIG, LeaseStore, elector, in_loop


def shared(executor: ThreadPoolExecutor, grace: float = 5.0) -> Shared:
    from dataclasses import replace

    config = replace(CONFIG, shutdown_grace_seconds=grace)
    return Shared(config, None, None, None, None, None, executor)  # type: ignore[arg-type]


class Kopf:
    """Runs until the stop flag; on its way out leaves one write in flight in the blocking executor (the
    controller's last round), which takes ``write_seconds``."""

    def __init__(self, write_seconds: float = 0.3) -> None:
        self.write_seconds = write_seconds
        self.write_done_at: float | None = None
        self.started = asyncio.Event()

    async def __call__(self, shared: Shared, stop: asyncio.Event) -> None:
        self.started.set()
        await stop.wait()
        shared.executor.submit(self._write)

    def _write(self) -> None:
        time.sleep(self.write_seconds)  # a PATCH on its way to the API server
        self.write_done_at = time.monotonic()


@in_loop
async def test_a_leader_that_loses_its_lease_exits_before_a_standby_may_take_over() -> None:
    store, exits = LeaseStore(), []
    leader = elector(store, "pod-a")
    assert await leader.acquire(asyncio.Event())
    kopf = Kopf()
    stop = asyncio.Event()
    running = asyncio.create_task(
        lead(shared(ThreadPoolExecutor(2)), leader, stop, operator_factory=kopf, exit_now=exits.append)
    )
    await kopf.started.wait()
    store.down = True  # partitioned from the API server
    cut_at = time.monotonic()
    assert await asyncio.wait_for(running, timeout=5) == 1
    assert exits == [1]
    assert time.monotonic() - cut_at < CONFIG.lease_duration_seconds
    assert not stop.is_set()  # no graceful stop: it would write after a standby may have taken over
    stop.set()


@in_loop
async def test_on_sigterm_the_lease_is_released_only_after_the_last_write_returned() -> None:
    store = LeaseStore()
    leader = elector(store, "pod-a")
    assert await leader.acquire(asyncio.Event())
    kopf, stop = Kopf(write_seconds=0.3), asyncio.Event()
    released_at: list[float] = []
    original = store.replace

    def replace(namespace: str, name: str, spec: Any, resource_version: str) -> Any:
        if not spec["holderIdentity"]:
            released_at.append(time.monotonic())
        return original(namespace, name, spec, resource_version)

    store.replace = replace  # type: ignore[method-assign]
    running = asyncio.create_task(lead(shared(ThreadPoolExecutor(2)), leader, stop, operator_factory=kopf))
    await kopf.started.wait()
    stop.set()
    assert await asyncio.wait_for(running, timeout=5) == 0
    assert kopf.write_done_at is not None
    assert released_at
    assert released_at[0] >= kopf.write_done_at
    assert store.obj is not None
    assert store.obj["spec"]["holderIdentity"] == ""  # a standby takes it within one retry period


@in_loop
async def test_writes_that_outlast_the_grace_leave_the_lease_to_expire() -> None:
    store = LeaseStore()
    leader = elector(store, "pod-a")
    assert await leader.acquire(asyncio.Event())
    kopf, stop = Kopf(write_seconds=1.0), asyncio.Event()
    running = asyncio.create_task(lead(shared(ThreadPoolExecutor(2), grace=0.2), leader, stop, operator_factory=kopf))
    await kopf.started.wait()
    stop.set()
    assert await asyncio.wait_for(running, timeout=5) == 0
    assert store.obj is not None
    assert store.obj["spec"]["holderIdentity"] == leader.identity  # not released: the write may still land
