"""Spot interruptions: a child's pod on a node about to be reclaimed is told to checkpoint, and its workload
placed again (kept on the pool while its other nodes have room, moved otherwise)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mlplacement.api.constants import ANNOTATION_CHECKPOINT_REQUESTED
from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Clock, Events, FakeCluster
from tests.component.test_capacity_and_failures import NOW, pod_of
from tests.component.test_workload_controller import KEY, gpu_node, signed, workload

SPOT = "karpenter.sh/capacity-type"
NTH_TAINT = {"key": "aws-node-termination-handler/spot-itn", "value": "1700000000", "effect": "NoSchedule"}


class Recorder:
    def __init__(self) -> None:
        self.interruptions: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def interruption(self, target_kind: str, target: str) -> None:
        self.interruptions.append(f"{target_kind}/{target}")


def world(spot_nodes: int) -> tuple[WorkloadController, FleetCache, FakeCluster, Events, Recorder]:
    config = OperatorConfig()
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    cache.on_policy(signed(make_policy("default")), deleted=False)
    signals = {
        "updatedAt": NOW.isoformat(),
        "spotDiscount": 0.7,
        "pools": {"spot-euw1": {"preemptionProbability": 0.05}},
    }
    cache.signals_configmap = {"data": {"signals.yaml": json.dumps(signals)}}
    for index in range(spot_nodes):
        cache.on_node(gpu_node(f"spot-{index}", "spot-euw1", spot=True), deleted=False)
    cache.on_node(gpu_node("on-demand-0", "a100-euw1"), deleted=False)
    cluster, events, metrics = FakeCluster(), Events(), Recorder()
    controller = WorkloadController(
        config, cache, cluster, events, metrics=metrics, clock=lambda: NOW, monotonic=Clock()
    )
    return controller, cache, cluster, events, metrics


def tainted(node: dict[str, Any]) -> dict[str, Any]:
    return {**node, "spec": {"taints": [NTH_TAINT]}}


def pool_of_job(cluster: FakeCluster) -> str:
    (job,) = [c for c in cluster.children.values() if c["kind"] == "Job"]
    return str(job["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"])


def interrupt(spot_nodes: int) -> tuple[FakeCluster, Events, Recorder, list[str], WorkloadController]:
    """A trainer on the spot pool, its pod bound to spot-0, then spot-0 gets the EC2 interruption taint."""
    controller, cache, cluster, events, metrics = world(spot_nodes)
    obj = signed(workload("trainer", gpus=8, intent={"spot": "Preferred"}))
    pools: list[str] = []

    async def scenario() -> None:
        await controller.on_workload(obj)
        await controller.place_round()
        pools.append(pool_of_job(cluster))
        job = next(c for c in cluster.children.values() if c["kind"] == "Job")
        cache.on_pod({**pod_of(job, "trainer-abc", node="spot-0"), "status": {"phase": "Running"}}, deleted=False)
        await controller.place_round()
        cache.on_node(tainted(gpu_node("spot-0", "spot-euw1", spot=True)), deleted=False)
        await controller.place_round()
        pools.append(pool_of_job(cluster))
        await controller.place_round()  # told once, not every round

    asyncio.run(scenario())
    return cluster, events, metrics, pools, controller


def test_the_pod_on_a_reclaimed_spot_node_is_told_to_checkpoint_and_the_workload_moves_when_no_room_is_left() -> None:
    cluster, events, metrics, pools, controller = interrupt(spot_nodes=1)
    assert pools == ["spot-euw1", "a100-euw1"]
    ((pod, annotations),) = cluster.pod_annotations
    assert pod == "team-a/trainer-abc"
    assert annotations[ANNOTATION_CHECKPOINT_REQUESTED] == (
        "2026-11-22T12:00:00Z EC2 spot interruption notice (aws-node-termination-handler/spot-itn)"
    )
    (warning,) = [e for e in events if e[1] == "Interrupted"]
    assert warning[0] == "Warning"
    assert warning[2] == (
        "node spot-0 of GPUPool spot-euw1 is being reclaimed: EC2 spot interruption notice "
        "(aws-node-termination-handler/spot-itn); asked pod trainer-abc to checkpoint; placing the workload again"
    )
    assert metrics.interruptions == ["GPUPool/spot-euw1"]
    status = controller.records.statuses()["team-a/trainer"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert "node spot-0 of GPUPool spot-euw1 is being reclaimed" in degraded["message"]
    assert "moved to GPUPool a100-euw1" in degraded["message"]


def test_a_pool_with_room_on_its_other_nodes_keeps_the_workload() -> None:
    cluster, events, _, pools, _ = interrupt(spot_nodes=2)
    assert pools == ["spot-euw1", "spot-euw1"]  # the Job makes a new pod there: a disruption is not a failure
    assert len(cluster.pod_annotations) == 1
    assert [e[1] for e in events].count("Interrupted") == 1
    (job,) = [c for c in cluster.children.values() if c["kind"] == "Job"]
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]


def test_a_taint_that_is_not_an_interruption_changes_nothing() -> None:
    controller, cache, cluster, events, _ = world(spot_nodes=1)

    async def scenario() -> None:
        await controller.on_workload(signed(workload("trainer", gpus=8, intent={"spot": "Preferred"})))
        await controller.place_round()
        job = next(c for c in cluster.children.values() if c["kind"] == "Job")
        cache.on_pod({**pod_of(job, "trainer-abc", node="spot-0"), "status": {"phase": "Running"}}, deleted=False)
        node = gpu_node("spot-0", "spot-euw1", spot=True)
        cache.on_node({**node, "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}}, deleted=False)
        await controller.place_round()

    asyncio.run(scenario())
    assert cluster.pod_annotations == []
    assert [e for e in events if e[1] == "Interrupted"] == []
