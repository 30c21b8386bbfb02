"""Preemption and quotas through the controller, at the cluster port: who is told what, which child goes when,
and that nothing else moves."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Clock, Events, FakeCluster
from tests.component.test_workload_controller import KEY, NOW, gpu_node, signed, workload

PREEMPTION = {"preemption": {"enabled": True, "gracePeriodSeconds": 30}}


def world(**policy: Any) -> tuple[WorkloadController, FakeCluster, Events, Clock]:
    config = OperatorConfig()
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    cache.on_policy(signed(make_policy("default", **policy)), deleted=False)
    cache.on_node(gpu_node("n1", "a100-euw1", gpus=8), deleted=False)
    cluster, events, clock = FakeCluster(), Events(), Clock()
    controller = WorkloadController(
        config, cache, cluster, events, clock=lambda: NOW + timedelta(seconds=clock.now), monotonic=clock
    )
    return controller, cluster, events, clock


def job(name: str, priority: int, created: str, gpus: int = 2, **intent: Any) -> dict[str, Any]:
    obj = workload(name, gpus=gpus, intent={"priority": priority, **intent})
    obj["metadata"]["creationTimestamp"] = created
    return signed(obj)


def conditions(controller: WorkloadController, key: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in controller.records.statuses()[key]["conditions"]}


def fill_the_pool(controller: WorkloadController, cluster: FakeCluster, clock: Clock) -> None:
    async def scenario() -> None:
        for index in range(4):
            await controller.on_workload(job(f"batch-{index}", 10, f"2026-11-22T10:0{index}:00Z"))
            clock.now += 1
            await controller.place_round()  # one a round: each starts at its own time

    asyncio.run(scenario())
    assert [k[2] for k in cluster.children if k[0] == "Job"] == [f"mlw-batch-{i}" for i in range(4)]


def test_a_high_priority_service_displaces_exactly_one_batch_job_after_the_grace_period() -> None:
    controller, cluster, events, clock = world(**PREEMPTION)
    fill_the_pool(controller, cluster, clock)
    before = Counter(k[2] for k in cluster.children)
    events.clear()

    async def arrive() -> None:
        await controller.on_workload(job("service", 1000, "2026-11-22T11:00:00Z"))
        await controller.place_round()

    asyncio.run(arrive())
    victim = "team-a/batch-3"  # the most recently placed of four equals
    assert controller.records.statuses()["team-a/service"]["phase"] == "Placed"
    assert (
        "preempting team-a/batch-3 (priority 10)"
        in controller.records.statuses()["team-a/service"]["placement"]["message"]
    )
    assert conditions(controller, victim)["Placed"] == ("False", "Preempted")
    assert controller.records.statuses()[victim]["phase"] == "Waiting"
    (warning,) = [e for e in events if e[1] == "Preempted"]
    assert warning[0] == "Warning"
    assert "preempted by team-a/service (priority 1000)" in warning[2]
    # Within the grace period nothing is deleted; every other job keeps running untouched.
    assert cluster.deletes == []
    assert ("Job", "team-a", "mlw-service") in cluster.children
    for index in range(3):
        assert controller.records.statuses()[f"team-a/batch-{index}"]["phase"] == "Placed"

    async def grace_passes() -> None:
        clock.now += 31
        await controller.place_round()

    asyncio.run(grace_passes())
    assert cluster.deletes == [("Job", "team-a", "mlw-batch-3")]
    assert Counter(k[2] for k in cluster.children) == before - Counter({"mlw-batch-3": 1}) + Counter({"mlw-service": 1})
    # Back in the queue with a backoff, and waiting: the room it had is the service's now.
    assert victim in controller.records.queued()
    assert controller.records.queued()[victim].attempts == 1


def test_a_workload_that_is_not_preemptible_is_never_a_victim() -> None:
    controller, _, _, clock = world(**PREEMPTION)

    async def scenario() -> None:
        for index in range(4):
            await controller.on_workload(
                job(f"steady-{index}", 10, f"2026-11-22T10:0{index}:00Z", preemptible=index != 3)
            )
            clock.now += 1
            await controller.place_round()
        await controller.on_workload(job("service", 1000, "2026-11-22T11:00:00Z"))
        await controller.place_round()

    asyncio.run(scenario())
    assert conditions(controller, "team-a/steady-2")["Placed"] == ("False", "Preempted")  # 3 is not preemptible
    assert controller.records.statuses()["team-a/steady-3"]["phase"] == "Placed"


def test_over_quota_the_reason_reads_in_kubectl_get() -> None:
    controller, _, _, _ = world(
        quotas=[{"name": "team-a", "namespaces": ["team-a"], "nominal": {"gpus": 4}, "borrowingLimit": {"gpus": 0}}]
    )

    async def scenario() -> None:
        for index in range(3):
            await controller.on_workload(job(f"j{index}", 10, f"2026-11-22T10:0{index}:00Z"))
        await controller.place_round()

    asyncio.run(scenario())
    ready = {c["type"]: c for c in controller.records.statuses()["team-a/j2"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "QuotaExceeded")  # the Reason printer column
    assert ready["message"] == "team-a uses 4/4 GPUs, needs 2 (may borrow 0)"
    assert (
        controller.records.statuses()["team-a/j0"]["phase"]
        == controller.records.statuses()["team-a/j1"]["phase"]
        == "Placed"
    )


def test_a_preemptors_pods_waiting_for_its_victims_are_not_a_failed_placement() -> None:
    """Its pods cannot schedule until the victims' children stop: with a grace period longer than the
    unschedulable grace, the preemptor must not be moved away meanwhile."""
    from tests.component.test_capacity_and_failures import pod_of

    controller, cluster, events, clock = world(preemption={"enabled": True, "gracePeriodSeconds": 300})
    fill_the_pool(controller, cluster, clock)

    async def scenario() -> None:
        await controller.on_workload(job("service", 1000, "2026-11-22T11:00:00Z"))
        await controller.place_round()
        service = cluster.children[("Job", "team-a", "mlw-service")]
        waiting = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}]
        controller.cache.on_pod(pod_of(service, "service-abc", conditions=waiting), deleted=False)
        for _ in range(4):  # 200 s: past the unschedulable grace (120 s), inside the victims' (300 s)
            clock.now += 50
            await controller.place_round()

    asyncio.run(scenario())
    assert [e for e in events if e[1] == "Unschedulable"] == []
    assert controller.records.statuses()["team-a/service"]["phase"] == "Placed"
    assert ("Job", "team-a", "mlw-service") in cluster.children
