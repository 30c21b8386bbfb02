"""Leader election (controller.leader) between replicas sharing one Lease, at the cluster port.

The store below keeps a Lease as the API server does (a resourceVersion every write must match, create
refused when it exists) and counts writes by writer: a standby must write nothing. Durations are short so
the tests take a second; every wait polls with a bound.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from mlplacement.api.errors import LeaseConflictError
from mlplacement.config import OperatorConfig
from mlplacement.controller.leader import LeaderElector, LeaderState, candidate_identity

CONFIG = OperatorConfig(lease_duration_seconds=1.0, renew_deadline_seconds=0.7, retry_period_seconds=0.05)


class LeaseStore:
    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0
        self.writes: Counter[str] = Counter()  # holder written -> count ("" for a release)
        self.down = False  # the API server unreachable

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("connection refused")

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return None if self.obj is None else {**self.obj, "spec": dict(self.obj["spec"])}

    def _store(self, spec: Mapping[str, Any], writer: str) -> dict[str, Any]:
        self.version += 1
        self.obj = {"metadata": {"resourceVersion": str(self.version)}, "spec": dict(spec)}
        self.writes[writer] += 1
        return self.read("", "") or {}

    def create(self, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        self._check()
        if self.obj is not None:
            raise LeaseConflictError("AlreadyExists")
        return self._store(spec, str(spec["holderIdentity"]))

    def replace(self, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str) -> dict[str, Any]:
        self._check()
        if self.obj is None or self.obj["metadata"]["resourceVersion"] != resource_version:
            raise LeaseConflictError("Conflict")
        return self._store(spec, str(spec["holderIdentity"]))


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition``; the seconds it took. Fails with ``what`` after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def in_loop(test: Callable[..., Any]) -> Callable[..., Any]:
    """Runs an async test in a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return run


def elector(store: LeaseStore, name: str, changes: list[LeaderState] | None = None) -> LeaderElector:
    return LeaderElector(
        CONFIG, store, candidate_identity(name), on_change=(changes.append if changes is not None else lambda _: None)
    )


@pytest.fixture
def store() -> LeaseStore:
    return LeaseStore()


@in_loop
async def test_one_replica_leads_and_the_standby_writes_nothing(store: LeaseStore) -> None:
    first, second = elector(store, "pod-a"), elector(store, "pod-b")
    stop = asyncio.Event()
    assert await first.acquire(stop)
    holding = asyncio.create_task(first.hold())
    waiting = asyncio.create_task(second.acquire(stop))
    await until(lambda: store.writes[first.identity] >= 6, 5, "several renewals")  # a few lease durations
    assert not waiting.done()
    assert store.writes[second.identity] == 0
    stop.set()
    assert await waiting is False
    holding.cancel()


@in_loop
async def test_a_released_lease_is_taken_within_a_retry_period_or_two(store: LeaseStore) -> None:
    first, second = elector(store, "pod-a"), elector(store, "pod-b")
    stop = asyncio.Event()
    assert await first.acquire(stop)
    waiting = asyncio.create_task(second.acquire(stop))
    await until(lambda: second.election.observed is not None, 2, "the standby to see the lease")
    await first.release()
    assert not first.leading()
    took = await until(waiting.done, 2, "the standby to take over")
    assert waiting.result() is True
    assert second.leading()
    assert took < CONFIG.lease_duration_seconds  # not a whole lease duration: the release said it is free
    assert store.obj is not None
    assert store.obj["spec"]["leaseTransitions"] == 1


@in_loop
async def test_a_crashed_leaders_lease_is_taken_only_after_its_duration(store: LeaseStore) -> None:
    first, second = elector(store, "pod-a"), elector(store, "pod-b")
    stop = asyncio.Event()
    assert await first.acquire(stop)  # then it "crashes": it never renews nor releases
    crashed_at = time.monotonic()
    assert await second.acquire(stop)
    assert time.monotonic() - crashed_at >= CONFIG.lease_duration_seconds


@in_loop
async def test_a_leader_cut_off_from_the_api_server_stops_at_the_renew_deadline(store: LeaseStore) -> None:
    changes: list[LeaderState] = []
    leader = elector(store, "pod-a", changes)
    assert await leader.acquire(asyncio.Event())
    holding = asyncio.create_task(leader.hold())
    store.down = True
    cut_at = time.monotonic()
    await asyncio.wait_for(holding, timeout=3)
    stopped_after = time.monotonic() - cut_at
    assert CONFIG.renew_deadline_seconds - CONFIG.retry_period_seconds <= stopped_after
    assert stopped_after < CONFIG.lease_duration_seconds  # stops before anyone may take over
    assert changes == [LeaderState.LEADING, LeaderState.STANDBY]


@in_loop
async def test_a_leader_that_sees_another_holder_stops_at_once(store: LeaseStore) -> None:
    leader = elector(store, "pod-a")
    assert await leader.acquire(asyncio.Event())
    holding = asyncio.create_task(leader.hold())
    assert store.obj is not None
    store._store({**store.obj["spec"], "holderIdentity": "intruder"}, "intruder")  # e.g. an edit by hand
    await asyncio.wait_for(holding, timeout=2)
    assert not leader.leading()


def test_two_processes_on_one_host_never_share_an_identity() -> None:
    assert candidate_identity("pod-a") != candidate_identity("pod-a")
    assert candidate_identity("pod-a").startswith("pod-a_")
