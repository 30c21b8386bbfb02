"""Edge clusters through the real controller: probe, place, run remotely, fail over, heal, delete.

The remote clusters are in-memory at the adapter boundary (tests.component.fakes.FakeEdges); credentials,
probing, status, placement, manifests, failover and cleanup are the real code. The same story against real
API servers is tests/integration/test_edges.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ruamel.yaml import YAML

from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import edge_kubeconfig, make_policy
from tests.component.fakes import Clock, Events, FakeCluster, FakeEdges
from tests.component.test_workload_controller import KEY, signed, workload

TOKEN = "edge-secret-token-value"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def kubeconfig(server: str, **user: Any) -> str:
    return edge_kubeconfig(server, PEM, **(user or {"token": TOKEN}))


def edge_cluster(name: str, region: str = "eu-west-1", grace: int = 60) -> dict[str, Any]:
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "EdgeCluster",
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "region": region,
            "credentialsSecretRef": {"name": f"{name}-kubeconfig"},
            "namespace": "ml-edge",
            "capabilities": {"gpuProducts": ["NVIDIA-L4"], "maxModelSizeGB": 2},
            "cost": {"gpuHourUSD": 0.4},
            "probe": {"intervalSeconds": 10, "timeoutSeconds": 2, "failureGraceSeconds": grace},
        },
    }


def realtime(name: str = "scorer") -> dict[str, Any]:
    obj = workload(
        name,
        gpus=1,
        type="Inference",
        intent={"dataRegion": "eu-west-1", "dataSizeGB": 1, "latencyTargetMs": 20, "priority": 50},
        model={"uri": "s3://models/scorer", "sizeGB": 1},
    )
    return signed(obj)


class World:
    def __init__(self, edges_named: tuple[str, ...] = ("edge-a", "edge-b")) -> None:
        self.clock = Clock()
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        config = OperatorConfig(cluster_name="home-1", edge_cleanup_grace_seconds=300)
        self.cache = FleetCache(config=config)
        self.cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
        self.cache.on_policy(signed(make_policy("default")), deleted=False)
        self.cluster, self.events, self.edges = FakeCluster(), Events(), FakeEdges()
        for name in edges_named:
            self.cluster.put_secret(
                config.namespace, f"{name}-kubeconfig", {"kubeconfig": kubeconfig(f"https://{name}:6443")}
            )
            self.cache.on_edge_cluster(edge_cluster(name), deleted=False)
        self.controller = WorkloadController(
            config,
            self.cache,
            self.cluster,
            self.events,
            clock=lambda: self.now,
            monotonic=self.clock,
            edges=self.edges,
        )
        self.edges.gpus = {"edge-a": 4, "edge-b": 2}

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.now += timedelta(seconds=seconds)

    async def tick(self, seconds: float = 0.0) -> None:
        """One loop iteration of the operator, ``seconds`` later: probe what is due, then place."""
        self.advance(seconds)
        assert self.controller.edges is not None
        await self.controller.edges.probe_due()
        await self.controller.place_round()

    def status(self, key: str) -> dict[str, Any]:
        return dict(self.controller.records.status_of(key) or {})

    def edge_status(self, name: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for patched, patch in self.cluster.edge_patches:
            if patched == name:
                merged.update(patch)
        return merged


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def target_of(status: dict[str, Any]) -> str | None:
    return ((status.get("placement") or {}).get("target") or {}).get("name")


def test_probe_writes_ready_then_stays_quiet_while_nothing_changes() -> None:
    world = World()

    async def scenario() -> None:
        await world.tick()
        for _ in range(5):
            await world.tick(10)

    run(scenario())
    writes = [name for name, _ in world.cluster.edge_patches]
    assert sorted(writes) == ["edge-a", "edge-b"]  # one write each: five more probes found nothing new
    status = world.edge_status("edge-a")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"Reachable": ("True", "ProbeSucceeded"), "Ready": ("True", "ProbeSucceeded")}
    assert (status["readyNodes"], status["gpusAllocatable"], status["gpusFree"], status["rttMs"]) == (1, 4, 4, 12.0)
    assert len(world.edges.probes) == 12  # every interval, both clusters
    assert ("Normal", "EdgeReady", "1 ready nodes, 4/4 GPUs free") in world.events


def test_realtime_inference_runs_on_the_edge_with_origin_labels_and_reports_back() -> None:
    world = World()

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload(realtime())
        await world.tick()

    run(scenario())
    assert target_of(world.status("team-a/scorer")) == "edge-a"  # the edge with more free GPUs scores higher
    assert world.edges.kinds("edge-a") == [("Deployment", "mlw-scorer"), ("Service", "mlw-scorer")]
    deployment = world.edges.objects["edge-a"][("Deployment", "ml-edge", "mlw-scorer")]
    meta = deployment["metadata"]
    assert "ownerReferences" not in meta  # the owner lives in the home cluster
    assert meta["labels"]["mlplacement.io/home-cluster"] == "home-1"
    assert meta["labels"]["mlplacement.io/workload-uid"] == "uid-scorer"
    assert meta["annotations"]["mlplacement.io/origin"] == "home-1/team-a/scorer"
    assert "nodeSelector" not in deployment["spec"]["template"]["spec"]
    assert not world.cluster.children  # nothing runs in the home cluster
    assert world.edges.credentials_seen["edge-a"].token == TOKEN

    # The edge's Deployment becomes available; the next probe brings that home.
    deployment["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1}
    run(world.tick(10))
    assert world.status("team-a/scorer")["phase"] == "Running"


def test_unreachable_edge_fails_over_after_its_grace_and_the_stale_copy_goes_when_it_heals() -> None:
    world = World()

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload(realtime())
        await world.tick()
        assert target_of(world.status("team-a/scorer")) == "edge-a"
        world.edges.down.add("edge-a")
        await world.tick(10)  # first failed probe: not placeable, grace starts
        assert world.edge_status("edge-a")["conditions"][-1]["status"] == "False"
        assert target_of(world.status("team-a/scorer")) == "edge-a"
        await world.tick(30)
        assert target_of(world.status("team-a/scorer")) == "edge-a"  # still within 60 s of grace
        await world.tick(40)  # 70 s unreachable: fails over to the other edge
        assert target_of(world.status("team-a/scorer")) == "edge-b"
        assert world.edges.kinds("edge-b") == [("Deployment", "mlw-scorer"), ("Service", "mlw-scorer")]
        world.edges.down.discard("edge-a")
        await world.tick(10)  # healed: the copy left behind is removed, no duplicate runs

    run(scenario())
    assert world.edges.kinds("edge-a") == []
    assert world.edges.kinds("edge-b") == [("Deployment", "mlw-scorer"), ("Service", "mlw-scorer")]
    reasons = [reason for _, reason, _ in world.events]
    assert "FailingOver" in reasons
    assert reasons.count("StaleCopyRemoved") == 2
    degraded = next(c for c in world.status("team-a/scorer")["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "TargetUnhealthy"
    assert "EdgeCluster edge-a has been unreachable" in degraded["message"]
    edge_a = world.edge_status("edge-a")
    assert edge_a["consecutiveFailures"] == 0
    assert "edge-secret" not in str(world.cluster.edge_patches)
    assert "edge-secret" not in str(world.events)


def test_deleting_the_workload_removes_the_remote_copy_and_waits_for_an_unreachable_edge() -> None:
    world = World()

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload(realtime())
        await world.tick()
        edges = world.controller.edges
        assert edges is not None
        status = world.status("team-a/scorer")
        world.edges.down.add("edge-a")
        assert await edges.delete_workload("team-a/scorer", "uid-scorer", status) is False  # retry later
        world.edges.down.discard("edge-a")
        assert await edges.delete_workload("team-a/scorer", "uid-scorer", status) is True

    run(scenario())
    assert world.edges.kinds("edge-a") == []


def test_a_copy_whose_workload_is_unknown_is_removed_only_after_the_cleanup_grace() -> None:
    world = World()
    world.edges.objects["edge-a"] = {
        ("Job", "ml-edge", "mlw-orphan"): {
            "kind": "Job",
            "metadata": {
                "name": "mlw-orphan",
                "namespace": "ml-edge",
                "labels": {"mlplacement.io/home-cluster": "home-1", "mlplacement.io/workload-uid": "uid-orphan"},
            },
        },
        ("Job", "ml-edge", "mlw-foreign"): {
            "kind": "Job",
            "metadata": {
                "name": "mlw-foreign",
                "namespace": "ml-edge",
                "labels": {"mlplacement.io/home-cluster": "home-2", "mlplacement.io/workload-uid": "uid-foreign"},
            },
        },
    }

    async def scenario() -> None:
        await world.tick()
        assert world.edges.kinds("edge-a") == [("Job", "mlw-foreign"), ("Job", "mlw-orphan")]  # just restarted?
        await world.tick(290)
        assert ("Job", "mlw-orphan") in world.edges.kinds("edge-a")
        await world.tick(20)

    run(scenario())
    assert world.edges.kinds("edge-a") == [("Job", "mlw-foreign")]  # another home cluster's child is not ours


BAD_CREDENTIALS = [
    pytest.param(kubeconfig("https://edge-a:6443", exec={"command": "steal"}), "exec", id="exec plugin"),
    pytest.param(kubeconfig("http://edge-a:6443"), "https", id="plain http server"),
    pytest.param("not: [valid", "YAML", id="not YAML"),
]


@pytest.mark.parametrize(("raw", "named"), BAD_CREDENTIALS)
def test_bad_credentials_make_the_edge_not_ready_without_echoing_them(raw: str, named: str) -> None:
    world = World(edges_named=("edge-a",))
    world.cluster.put_secret("mlplacement-system", "edge-a-kubeconfig", {"kubeconfig": raw})

    run(world.tick())
    status = world.edge_status("edge-a")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CredentialsInvalid")
    assert named.lower() in ready["message"].lower()
    assert "steal" not in str(status)
    assert TOKEN not in str(status)
    assert TOKEN not in str(world.events)
    assert world.edges.probes == []  # no client ever saw it


def test_a_stale_probe_makes_the_edge_unplaceable() -> None:
    world = World(edges_named=("edge-a",))
    run(world.tick())
    snapshot = world.cache.snapshot(world.now + timedelta(seconds=100))  # > 3 intervals without a probe
    (target,) = snapshot.targets
    assert not target.healthy
    assert target.health_detail.startswith("probe stale")


def test_deletion_with_the_edge_gone_for_good_gives_up_with_a_warning_and_lets_the_workload_go() -> None:
    world = World()
    world.controller.cleanup_poll_seconds = 0.0

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload_event("ADDED", realtime())
        await world.tick()
        assert world.cluster.finalizer_calls == [("add", "team-a/scorer")]
        world.edges.down.add("edge-a")
        gone = realtime()
        gone["metadata"].update(deletionTimestamp="2026-11-22T12:05:00Z", finalizers=["mlplacement.io/remote-cleanup"])
        await world.controller.on_workload_event("MODIFIED", gone)
        await world.controller.cleanups["team-a/scorer"]

    run(scenario())
    assert [e[:2] for e in world.events if e[1] == "RemoteCleanupAbandoned"] == [("Warning", "RemoteCleanupAbandoned")]
    assert world.cluster.finalizer_calls[-1] == ("remove mlplacement.io/remote-cleanup", "team-a/scorer")


def sized(name: str, gpus: int) -> dict[str, Any]:
    obj = realtime(name)
    obj["spec"]["resources"]["gpus"] = gpus
    return signed({**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "annotations"}})


def test_an_edge_copy_holds_its_gpus_until_the_edges_probe_sees_its_pods_bound() -> None:
    world = World(edges_named=("edge-a",))  # 4 free GPUs, as its probe keeps saying: no pod is bound yet

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload(sized("first", 3))
        await world.tick()
        await world.controller.on_workload(sized("second", 3))
        await world.tick(10)  # the next probe still reports 4 free: the first copy's pods are not bound

    run(scenario())
    assert target_of(world.status("team-a/first")) == "edge-a"
    assert world.status("team-a/second")["phase"] == "Waiting"
    assert world.status("team-a/second")["placement"]["message"].startswith(
        "0/1 targets fit: 1 lack free GPUs (need 3)"
    )


def test_once_the_edges_probe_counts_the_copy_the_claim_is_not_counted_twice() -> None:
    world = World(edges_named=("edge-a",))

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload(sized("first", 3))
        await world.tick()
        uid = world.controller.records.views()["team-a/first"]["metadata"]["uid"]
        world.edges.gpus["edge-a"] = 1  # its pods are bound: the edge's free GPUs drop by 3 ...
        world.edges.bound = {"edge-a": {uid: 3}}  # ... and the probe says whose they are

    run(scenario())
    run(world.controller.edges.probe("edge-a"))  # type: ignore[union-attr]
    snapshot = world.cache.snapshot(world.now + timedelta(seconds=1))
    assert next(t.capacity for t in snapshot.targets if t.name == "edge-a") == 1


def test_a_broken_edge_kubeconfig_makes_that_edge_unplaceable_and_nothing_else() -> None:
    world = World()
    config = world.controller.config
    # A list where the current-context name belongs: no kubeconfig has this shape.
    broken_config = json.loads(json.dumps(YAML(typ="safe", pure=True).load(kubeconfig("https://edge-a:6443"))))
    broken_config["current-context"] = [broken_config.get("current-context") or "edge"]
    world.cluster.put_secret(config.namespace, "edge-a-kubeconfig", {"kubeconfig": json.dumps(broken_config)})
    world.cache.on_node(
        {
            "metadata": {
                "name": "n1",
                "labels": {"mlplacement.io/pool": "pool-a", "topology.kubernetes.io/region": "eu-west-1"},
            },
            "status": {"allocatable": {"nvidia.com/gpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]},
        },
        deleted=False,
    )
    batch = signed(workload("batch", gpus=1))

    async def scenario() -> None:
        await world.controller.on_workload(batch)
        await world.controller.on_workload(realtime())
        await world.tick()  # the run loop's steps, as run() calls them
        await world.tick(10)

    run(scenario())
    assert world.status("team-a/batch")["phase"] == "Placed"
    assert target_of(world.status("team-a/scorer")) == "edge-b"
    broken = world.edge_status("edge-a")
    assert {c["type"]: c["reason"] for c in broken["conditions"]}["Ready"] == "CredentialsInvalid"


def test_a_copy_deleted_by_hand_on_the_edge_is_applied_again() -> None:
    world = World(edges_named=("edge-a",))

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload(realtime())
        await world.tick()
        assert ("Deployment", "mlw-scorer") in world.edges.kinds("edge-a")
        world.edges.objects["edge-a"].clear()  # someone deletes it on the edge
        await world.tick(10)  # the probe's listing misses it
        await world.tick(10)

    run(scenario())
    assert ("Deployment", "mlw-scorer") in world.edges.kinds("edge-a")
    assert target_of(world.status("team-a/scorer")) == "edge-a"


def test_a_job_that_finished_on_the_edge_teaches_the_workload_its_run_length() -> None:
    """#32 for edge copies: the edge's listing brings the finished Job home with its start and completion
    times; 2 h on one L4 (0.3 of an A100) is 0.6 A100 GPU-hours of work, kept in status.learned."""
    world = World(edges_named=("edge-a",))
    obj = workload(
        "scorer-batch",
        gpus=1,
        type="Batch",
        intent={"dataRegion": "eu-west-1", "latencyTargetMs": 20, "priority": 50},
        targets={"allowed": ["Edge"]},
    )

    async def scenario() -> None:
        await world.tick()
        await world.controller.on_workload(signed(obj))
        await world.tick()
        job = world.edges.objects["edge-a"][("Job", "ml-edge", "mlw-scorer-batch")]
        job["status"] = {"active": 1, "startTime": "2026-11-22T12:00:00Z"}
        await world.tick(10)
        job["status"] = {
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
            "startTime": "2026-11-22T12:00:00Z",
            "completionTime": "2026-11-22T14:00:00Z",
        }
        await world.tick(10)

    run(scenario())
    status = world.status("team-a/scorer-batch")
    assert target_of(status) == "edge-a"
    assert status["phase"] == "Succeeded"
    assert status["learned"] == {"referenceGPUHours": [0.6]}
