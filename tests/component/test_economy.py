"""API calls per placement, counted at the cluster port: what the operator costs the apiserver.

Call counts are deterministic, so they are asserted; timings are not (bench/controller.py prints those).
Budget: create the child, write status; routine placements' Events at a bounded rate (a burst of ten seconds'
worth, then a summary per policy at most every ten seconds: controller.placed_events); nothing for workloads
already settled.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from mlplacement.config import OperatorConfig
from mlplacement.controller import workloads as workloads_module
from mlplacement.controller.state import FleetCache
from mlplacement.controller.sync import CacheSync
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Clock, FakeCluster
from tests.component.test_workload_controller import KEY, gpu_node, signed, workload

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class CountingCluster(FakeCluster):
    """The fake cluster, counting every call by verb and resource as the apiserver would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def apply_workload_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.calls["PATCH mlworkloads/status"] += 1
        super().apply_workload_status(namespace, name, status)

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.calls["PATCH placementpolicies/status"] += 1
        super().patch_policy_status(name, status)

    def apply_child(self, obj: Mapping[str, Any]) -> str:
        self.calls[f"POST {obj['kind'].lower()}s"] += 1
        return super().apply_child(obj)


class CountingEvents:
    def __init__(self, calls: Counter[str]) -> None:
        self.calls = calls

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.calls["POST events"] += 1


@dataclass
class Drain:
    placed: int
    calls_while_placing: Counter[str]
    calls_while_idle: Counter[str]

    @property
    def per_placement(self) -> float:
        return sum(self.calls_while_placing.values()) / max(1, self.placed)


def drain(
    workloads: int = 5000, rounds: int = 20, idle_rounds: int = 20, validate_statuses: bool = True
) -> tuple[Drain, WorkloadController]:
    """``workloads`` signed 1-GPU workloads arriving over ``rounds`` rounds, then ``idle_rounds`` with no news.

    Between rounds everything the watches would deliver is delivered: each child the operator created comes
    back as a watch event, each workload comes back with the status the operator wrote, and policy
    status events come back too (as they do on a real cluster).
    """
    config = OperatorConfig()
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    policy = signed(make_policy("default"))
    cache.on_policy(policy, deleted=False)
    for index in range(workloads // 64 + 1):
        cache.on_node(gpu_node(f"n{index}", f"pool-{index % 20}", gpus=80), deleted=False)
    cluster = CountingCluster()
    cluster.validate_statuses = validate_statuses
    controller = WorkloadController(
        config, cache, cluster, CountingEvents(cluster.calls), clock=lambda: NOW, monotonic=Clock()
    )
    objects = [signed(workload(f"w-{i:05d}", gpus=1)) for i in range(workloads)]
    per_round = -(-workloads // rounds)

    async def scenario() -> Counter[str]:
        seen_children: set[tuple[str, str, str]] = set()
        for start in range(0, workloads, per_round):
            for obj in objects[start : start + per_round]:
                await controller.on_workload(obj)
            await controller.place_round()
            for key, child in cluster.children.items():  # the child watch reports what was created
                if key not in seen_children and child["kind"] in ("Job", "Deployment"):
                    seen_children.add(key)
                    controller.on_home_child(child, deleted=False)
            for _, status in cluster.policy_patches:  # the policy's own status write comes back
                if cache.on_policy({**policy, "status": status}, deleted=False):
                    await controller.readmit_all()
        placing = Counter(cluster.calls)
        for _ in range(idle_rounds):
            await controller.place_round()
        return cluster.calls - placing

    idle = asyncio.run(scenario())
    placing = Counter(cluster.calls) - idle
    placed = sum(1 for status in controller.records.statuses().values() if status.get("phase") == "Placed")
    return Drain(placed, placing, idle), controller


def test_five_thousand_placements_cost_two_calls_each_and_settled_workloads_none() -> None:
    result, controller = drain()
    burst = controller.placed_events.burst  # the fake clock stands still: no token comes back during the drain
    assert result.placed == 5000
    assert result.calls_while_placing["POST jobs"] == 5000
    assert result.calls_while_placing["PATCH mlworkloads/status"] == 5000
    # An Event each for the burst (within the first round of 250), then one summary: the fake clock stands still,
    # and what the next 19 rounds hold back waits for the next summary, SUMMARY_SECONDS later.
    assert result.calls_while_placing["POST events"] == burst + 1
    assert result.calls_while_placing["PATCH placementpolicies/status"] == 1
    assert result.per_placement <= 2.03
    assert sum(result.calls_while_idle.values()) == 0


def test_a_policy_change_re_verifies_settled_workloads_without_a_call() -> None:
    result, controller = drain(workloads=200, rounds=2, idle_rounds=0)
    cluster = controller.cluster
    before = Counter(cluster.calls)  # type: ignore[attr-defined]
    changed = signed(make_policy("default", weights={"cost": 90}))
    assert controller.cache.on_policy(changed, deleted=False)

    async def readmit() -> None:
        await controller.readmit_all()
        await controller.place_round()

    asyncio.run(readmit())
    assert result.placed == 200
    assert (
        controller.records.queued() == {}
    )  # every workload was admitted again under the new policy, and kept its place
    assert Counter(cluster.calls) - before == Counter()  # type: ignore[attr-defined]


def test_the_policys_own_status_write_does_not_readmit_the_fleet() -> None:
    _, controller = drain(workloads=10, rounds=1, idle_rounds=0)
    policy = controller.cache.policies["default"]
    assert not controller.cache.on_policy({**policy, "status": {"workloads": 10}}, deleted=False)


def restart(controller: WorkloadController, **policy: Any) -> tuple[WorkloadController, CacheSync]:
    """A new process over the same cluster: nothing in memory, the caches not synced yet."""
    cluster: CountingCluster = controller.cluster  # type: ignore[assignment]
    cache = FleetCache(config=controller.config)
    cache.keyring = controller.cache.keyring
    for node in controller.cache.nodes.values():
        cache.on_node(node, deleted=False)
    written: dict[str, Any] = {}
    for _, patch in cluster.policy_patches:  # the policy comes back from the watch with the status written
        written.update(patch)
    cache.on_policy({**signed(make_policy("default", **policy)), "status": written}, deleted=False)
    sync = CacheSync(kinds=("mlworkloads", "jobs"), reads=())
    restarted = WorkloadController(
        controller.config,
        cache,
        cluster,
        CountingEvents(cluster.calls),
        clock=lambda: NOW,
        monotonic=Clock(),
        sync=sync,
    )
    return restarted, sync


async def deliver_everything(restarted: WorkloadController, sync: CacheSync, extra: list[dict[str, Any]]) -> None:
    """The watches list what exists (workloads with the status written, then children), and ``extra`` new ones."""
    cluster: CountingCluster = restarted.cluster  # type: ignore[assignment]
    names = [key.split("/", 1)[1] for key in cluster.statuses]
    sync.listed(
        "mlworkloads", {f"team-a/{name}" for name in names} | {f"team-a/{o['metadata']['name']}" for o in extra}
    )
    sync.listed("jobs", {f"{ns}/{name}" for kind, ns, name in cluster.children if kind == "Job"})
    for name in names:
        obj = signed(workload(name, gpus=1))
        await restarted.on_workload_event(None, {**obj, "status": cluster.statuses[f"team-a/{name}"]})
        sync.seen("mlworkloads", obj)
    for obj in extra:
        await restarted.on_workload_event(None, obj)
        sync.seen("mlworkloads", obj)
    for child in list(cluster.children.values()):
        if child["kind"] == "Job":
            restarted.on_home_child(child, deleted=False)
            sync.seen("jobs", child)


@pytest.mark.parametrize(
    ("policy", "admitted_first"),
    [
        pytest.param({}, 1, id="new work first, the settled admitted again a chunk per round after"),
        pytest.param(
            {"preemption": {"enabled": True}}, 301, id="with preemption every workload is admitted before deciding"
        ),
    ],
)
def test_a_new_leader_places_new_work_before_admitting_every_settled_workload_again(
    monkeypatch: pytest.MonkeyPatch, policy: dict[str, Any], admitted_first: int
) -> None:
    monkeypatch.setattr(workloads_module, "READMIT_CHUNK", 100)
    _, controller = drain(workloads=300, rounds=2, idle_rounds=0)
    cluster: CountingCluster = controller.cluster  # type: ignore[assignment]
    restarted, sync = restart(controller, **policy)
    new = signed(workload("after-restart", gpus=1))
    admitted_at_first_round: list[int] = []
    start_round = restarted.start_round

    async def counting_round() -> Any:
        if not admitted_at_first_round:
            admitted_at_first_round.append(sum(restarted.records.index.policies.values()))
        return await start_round()

    restarted.start_round = counting_round  # type: ignore[method-assign]

    async def scenario() -> None:
        await deliver_everything(restarted, sync, [new])
        loop = asyncio.create_task(restarted.run())
        for _ in range(10_000):  # bounded: a few rounds
            placed = cluster.statuses.get("team-a/after-restart", {}).get("phase") == "Placed"
            if placed and sum(restarted.records.index.policies.values()) == 301:
                break
            await asyncio.sleep(0)
        await restarted.stop(grace_seconds=5)
        await loop

    asyncio.run(scenario())
    assert admitted_at_first_round == [admitted_first]
    assert cluster.statuses["team-a/after-restart"]["phase"] == "Placed"
    assert sum(restarted.records.index.policies.values()) == 301  # in the end every one admitted again


def test_a_restart_costs_nothing_for_settled_workloads_and_restores_a_child_lost_meanwhile() -> None:
    first, controller = drain(workloads=100, rounds=2, idle_rounds=0)
    cluster: CountingCluster = controller.cluster  # type: ignore[assignment]
    lost = ("Job", "team-a", "mlw-w-00007")
    del cluster.children[lost]  # deleted while the operator was down
    restarted, sync = restart(controller)
    before = Counter(cluster.calls)

    async def scenario() -> None:
        sync.listed("mlworkloads", {f"team-a/w-{index:05d}" for index in range(100)})
        sync.listed("jobs", {f"{ns}/{name}" for kind, ns, name in cluster.children if kind == "Job"})
        for index in range(100):  # the watches list what exists, workloads first
            obj = signed(workload(f"w-{index:05d}", gpus=1))
            await restarted.on_workload_event(None, {**obj, "status": cluster.statuses[f"team-a/w-{index:05d}"]})
            sync.seen("mlworkloads", obj)
        await restarted.place_round()
        # The child watch has not listed yet: nothing is decided, so nothing is re-applied or written.
        assert Counter(cluster.calls) - before == Counter()
        for child in cluster.children.values():
            if child["kind"] == "Job":
                restarted.on_home_child(child, deleted=False)
                sync.seen("jobs", child)
        assert sync.ready
        await restarted.readmit_all()  # what run() does once the caches have synced
        await restarted.place_round()

    asyncio.run(scenario())
    assert first.placed == 100
    calls = Counter(cluster.calls) - before
    assert calls["POST jobs"] == 1
    assert set(calls) <= {"POST jobs", "PATCH placementpolicies/status"}
    assert lost in cluster.children


def test_a_watch_resumed_after_expiry_lists_everything_again_and_costs_nothing() -> None:
    """A watch whose resourceVersion expired (410 Gone) starts over with a full list: kopf delivers every object
    again. Nothing was changed meanwhile, so nothing is placed again, applied again or written again."""
    result, controller = drain(workloads=300, rounds=3, idle_rounds=0)
    cluster: CountingCluster = controller.cluster  # type: ignore[assignment]
    before = Counter(cluster.calls)

    async def relist() -> None:
        for index in range(300):
            obj = signed(workload(f"w-{index:05d}", gpus=1))
            await controller.on_workload_event(None, {**obj, "status": cluster.statuses[f"team-a/w-{index:05d}"]})
        for child in list(cluster.children.values()):
            if child["kind"] == "Job":
                controller.on_home_child(child, deleted=False)
                await controller.on_child(child)
        for _ in range(3):
            await controller.place_round()

    asyncio.run(relist())
    assert result.placed == 300
    assert controller.records.queued() == {}
    assert Counter(cluster.calls) - before == Counter()


def test_a_child_finishing_before_its_settled_workload_is_admitted_again_is_still_recorded() -> None:
    _, controller = drain(workloads=20, rounds=1, idle_rounds=0)
    cluster: CountingCluster = controller.cluster  # type: ignore[assignment]
    restarted, sync = restart(controller)
    job = cluster.children[("Job", "team-a", "mlw-w-00003")]
    finished = {**job, "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}

    async def scenario() -> bool:
        await deliver_everything(restarted, sync, [])
        assert sync.ready
        assert restarted.records["team-a/w-00003"].policy is None  # settled: not admitted again yet (run)
        return await restarted.on_child(finished)

    assert asyncio.run(scenario())
    assert cluster.statuses["team-a/w-00003"]["phase"] == "Succeeded"
