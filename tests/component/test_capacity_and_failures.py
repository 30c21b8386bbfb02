"""What the first real control plane exposed: committed capacity, refused children, stale status, stuck pods.

Given a fleet and objects, one event happens, and the children, status and Events that come out are asserted.
The cluster and Event sink are fakes at the adapter boundary; everything else is the real controller.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from mlplacement.api.errors import ApplyError
from mlplacement.config import OperatorConfig
from mlplacement.controller.slots import WriteSlots
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy
from tests.component.fakes import Clock, Events, FakeCluster
from tests.component.test_workload_controller import KEY, conditions, gpu_node, signed, workload

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class World:
    """One 8-GPU pool (more with ``pools``), a signed default policy, a clock the test moves."""

    def __init__(self, pools: tuple[str, ...] = ("a100-euw1",), databricks: bool = False) -> None:
        self.config = OperatorConfig()
        self.cache = FleetCache(config=self.config)
        self.cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
        self.cache.on_policy(signed(make_policy("default")), deleted=False)
        for index, pool in enumerate(pools):
            self.cache.on_node(gpu_node(f"n{index}", pool), deleted=False)
        if databricks:
            self.cache.on_workspace(
                {
                    "metadata": {"name": "dbx-euw1"},
                    "spec": {"region": "eu-west-1", "cost": {"gpuHourUSD": 0.01}},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                },
                deleted=False,
            )
        self.cluster, self.events, self.clock = FakeCluster(), Events(), Clock()
        self.controller = self.restart(databricks)

    def restart(self, databricks: bool = False) -> WorkloadController:
        self.controller = WorkloadController(
            self.config,
            self.cache,
            self.cluster,
            self.events,
            clock=lambda: NOW,
            monotonic=self.clock,
            jobs=NeverCalledJobs() if databricks else None,
        )
        return self.controller

    async def place(self, *objects: dict[str, Any]) -> None:
        for obj in objects:
            await self.controller.on_workload(obj)
        await self.controller.place_round()

    def job(self, name: str) -> dict[str, Any]:
        return self.cluster.children[("Job", "team-a", f"mlw-{name}")]

    def phase(self, name: str) -> str:
        return str(self.controller.records.statuses()[f"team-a/{name}"].get("phase"))

    def free_gpus(self, pool: str = "a100-euw1") -> int:
        snapshot = self.cache.snapshot(NOW)
        return next(t.capacity for t in snapshot.targets if t.name == pool)


class NeverCalledJobs:
    """A Databricks port that fails the test if placement ever sends work to it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Databricks {name} was called")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def pod_of(job: Mapping[str, Any], name: str, node: str | None = None, **status: Any) -> dict[str, Any]:
    """A pod the Job controller would make from ``job``'s template, bound to ``node`` or not yet."""
    template = copy.deepcopy(job["spec"]["template"])
    spec = {**template["spec"], "nodeName": node} if node else template["spec"]
    return {
        "metadata": {"name": name, "namespace": "team-a", "labels": template["metadata"]["labels"]},
        "spec": spec,
        "status": {"phase": "Pending", **status},
    }


def finished(job: dict[str, Any]) -> dict[str, Any]:
    return {**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}


# --- committed capacity ---


def test_a_child_created_but_not_yet_scheduled_still_holds_its_gpus() -> None:
    world = World()

    async def scenario() -> None:
        await world.place(signed(workload("first", gpus=6)))
        await world.place(signed(workload("second", gpus=4)))  # the next round: no pod exists for "first"

    run(scenario())
    assert [k[2] for k in world.cluster.children] == ["mlw-first"]
    assert world.phase("second") == "Waiting"
    assert world.controller.records.statuses()["team-a/second"]["placement"]["message"].startswith(
        "0/1 targets fit: 1 lack free GPUs (need 4)"
    )


def test_children_applied_in_successive_rounds_never_exceed_the_pool() -> None:
    world = World()

    async def scenario() -> None:
        for index in range(6):  # one round each, like applies seconds apart; 6 x 2 GPUs asked of 8
            await world.place(signed(workload(f"w{index}", gpus=2)))

    run(scenario())
    asked = sum(
        int(job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        for job in world.cluster.children.values()
    )
    assert asked == 8
    assert world.free_gpus() == 0


def test_bound_pods_take_over_the_claim_without_counting_twice() -> None:
    world = World()

    async def scenario() -> None:
        await world.place(signed(workload("first", gpus=6)))
        world.cache.on_pod(pod_of(world.job("first"), "first-abc", node="n0", phase="Running"), deleted=False)

    run(scenario())
    assert world.free_gpus() == 2


@pytest.mark.parametrize(
    "gone",
    [
        pytest.param(lambda w: w.controller.on_home_child(finished(w.job("first")), deleted=False), id="job finished"),
        pytest.param(lambda w: w.controller.on_home_child(w.job("first"), deleted=True), id="child deleted"),
    ],
)
def test_capacity_comes_back_when_the_child_finishes_or_is_deleted(gone: Any) -> None:
    world = World()

    async def scenario() -> None:
        await world.place(signed(workload("first", gpus=6)))
        await world.place(signed(workload("second", gpus=4)))
        assert world.phase("second") == "Waiting"
        gone(world)
        await world.controller.place_round()  # woken by the release, not by its backoff

    run(scenario())
    assert world.phase("second") == "Placed"


def test_after_a_restart_the_ledger_counts_the_children_that_exist() -> None:
    world = World()

    async def scenario() -> None:
        await world.place(signed(workload("first", gpus=6)))
        existing = world.job("first")
        world.cache.ledger = type(world.cache.ledger)()  # the process died: memory is gone
        world.restart()
        world.controller.on_home_child(existing, deleted=False)  # the watch lists it at start
        await world.place(signed(workload("second", gpus=4)))

    run(scenario())
    assert world.phase("second") == "Waiting"


# --- Databricks feasibility ---


def test_a_workload_without_spec_databricks_is_never_placed_on_databricks() -> None:
    world = World(pools=(), databricks=True)

    run(world.place(signed(workload("trainer", gpus=1))))
    status = world.controller.records.statuses()["team-a/trainer"]
    assert status["phase"] == "Waiting"
    assert conditions(status)["Placed"] == ("False", "NoFeasibleTarget")
    assert status["placement"]["message"] == "0/1 targets fit: 1 no spec.databricks task"


# --- refused children ---


def terminating(obj: Mapping[str, Any]) -> str:
    raise ApplyError(
        "NamespaceTerminating",
        f"403 jobs.batch {obj['metadata']['name']!r} is forbidden: unable to create new content in namespace "
        f"{obj['metadata']['namespace']} because it is being terminated",
    )


def test_a_403_on_create_gives_apply_failed_one_event_backoff_and_frees_its_gpus() -> None:
    world = World()
    world.cluster.apply_child = terminating

    async def scenario() -> None:
        await world.place(signed(workload("trainer", gpus=8)))
        world.controller.fleet_changed()  # capacity news does not cut an apply failure's backoff
        await world.controller.place_round()
        world.clock.now += world.config.retry_backoff_seconds + 1
        await world.controller.place_round()  # backoff over: tried again, same failure, no second Event

    run(scenario())
    status = world.controller.records.statuses()["team-a/trainer"]
    assert status["phase"] == "Waiting"
    assert conditions(status)["Placed"] == ("False", "ApplyFailed")
    assert "because it is being terminated" in next(c for c in status["conditions"] if c["type"] == "Placed")["message"]
    assert [e[:2] for e in world.events if e[1] == "ApplyFailed"] == [("Warning", "ApplyFailed")]
    assert world.controller.records.queued()["team-a/trainer"].attempts == 2
    assert len(world.cache.ledger) == 0
    assert world.free_gpus() == 8


def test_a_namespace_being_deleted_does_not_starve_the_others() -> None:
    world = World()

    def refuse_dying(obj: Mapping[str, Any]) -> str:
        if obj["metadata"]["namespace"] == "team-dying":
            return terminating(obj)
        return FakeCluster.apply_child(world.cluster, obj)

    world.cluster.apply_child = refuse_dying
    dying = []
    for index in range(4):
        obj = workload(f"doomed-{index}", gpus=8, intent={"priority": 900})
        obj["metadata"]["namespace"] = "team-dying"
        dying.append(signed(obj))

    async def scenario() -> None:
        await world.place(*dying, signed(workload("modest", gpus=2, intent={"priority": 1})))
        await world.controller.place_round()

    run(scenario())
    assert world.phase("modest") == "Placed"
    assert list(world.cluster.children) == [("Job", "team-a", "mlw-modest")]


def test_once_a_namespace_says_it_is_being_deleted_its_other_workloads_are_not_tried() -> None:
    world = World()
    tried: list[str] = []

    def refuse(obj: Mapping[str, Any]) -> str:
        tried.append(obj["metadata"]["name"])
        return terminating(obj)

    world.cluster.apply_child = refuse
    doomed = []
    for index in range(8):  # all decided in one round: 1 GPU each
        obj = workload(f"doomed-{index}", gpus=1)
        obj["metadata"]["namespace"] = "team-dying"
        doomed.append(signed(obj))
    config = world.config
    world.controller._writes = WriteSlots(1)  # one write at a time: the first refusal is seen by the rest
    world.controller.pool.writes = world.controller._writes

    async def scenario() -> None:
        await world.place(*doomed)
        world.clock.now += config.retry_backoff_seconds / 2
        await world.controller.place_round()

    run(scenario())
    assert tried == ["mlw-doomed-0"]
    statuses = [world.controller.records.statuses()[f"team-dying/doomed-{i}"] for i in range(8)]
    assert {conditions(s)["Placed"] for s in statuses} == {("False", "ApplyFailed")}


def test_a_same_named_child_of_someone_else_is_an_apply_failure() -> None:
    world = World()

    def foreign(obj: Mapping[str, Any]) -> str:
        raise ApplyError("NotOwned", "Job team-a/mlw-trainer exists and belongs to another workload or to nobody")

    world.cluster.apply_child = foreign
    run(world.place(signed(workload("trainer", gpus=2))))
    assert conditions(world.controller.records.statuses()["team-a/trainer"])["Placed"] == ("False", "ApplyFailed")
    assert world.free_gpus() == 8


# --- status written by several hands ---


def test_a_childs_status_flowing_back_keeps_verified_and_placed() -> None:
    world = World()
    obj = signed(workload("trainer", gpus=2))

    async def scenario() -> None:
        await world.place(obj)
        # Another controller adds a condition of its own to the stored object.
        world.cluster.statuses["team-a/trainer"]["conditions"].append(
            {"type": "QuotaReserved", "status": "True", "reason": "Admitted", "message": "", "lastTransitionTime": "x"}
        )
        # kopf hands over the create event's body again: its status is older than what was written since.
        await world.controller.on_workload({**obj, "status": {"kopf": {"progress": {}}}})
        job = world.job("trainer")
        await world.controller.on_child({**job, "status": {"active": 1, "ready": 1}})

    run(scenario())
    stored = world.cluster.statuses["team-a/trainer"]
    assert {c["type"]: c["status"] for c in stored["conditions"]} == {
        "QuotaReserved": "True",
        "Verified": "True",
        "Placed": "True",
        "Ready": "True",
    }
    assert stored["phase"] == "Running"


# --- pods that never run ---


def test_pending_unschedulable_pods_are_not_running_and_past_the_grace_the_workload_moves() -> None:
    world = World(pools=("a100-euw1", "a100-euw1-b"))
    obj = signed(workload("trainer", gpus=2))

    async def scenario() -> str:
        await world.place(obj)
        job = world.job("trainer")
        first = job["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"]
        await world.controller.on_child({**job, "status": {"active": 1, "ready": 0}})
        assert world.phase("trainer") == "Placed"  # a pod exists, none runs
        message = "0/9 nodes are available: 9 node(s) had untolerated taint {gpu: reserved}."
        stuck = pod_of(
            job,
            "trainer-xyz",
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}],
        )
        world.cache.on_pod(stuck, deleted=False)
        await world.controller.place_round()
        assert [e for e in world.events if e[1] == "Unschedulable"] == []  # inside the grace period
        world.clock.now += world.config.unschedulable_grace_seconds + 1
        await world.controller.place_round()
        # The old pod is still there (being collected with its Job) and still says Unschedulable: that is news of
        # the pool the workload has left, not of where it runs now, however long it lingers.
        for _ in range(3):
            world.clock.now += world.config.unschedulable_grace_seconds + 1
            await world.controller.place_round()
        return first

    first = run(scenario())
    (unschedulable,) = [e for e in world.events if e[1] == "Unschedulable"]
    assert unschedulable[0] == "Warning"
    assert "untolerated taint" in unschedulable[2]
    moved = world.job("trainer")
    assert moved["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"] != first
    assert world.phase("trainer") == "Placed"
    commitment = world.cache.ledger.get("uid-trainer")
    assert commitment is not None
    assert commitment.target[1] != first
    assert world.free_gpus(first) == 8


def test_a_gang_with_a_worker_never_bound_is_released_whole_past_the_grace_even_if_no_pod_says_why() -> None:
    """No pod says Unschedulable (a scheduling gate, a scheduler that only waits): one worker bound, the other
    not. All or nothing: past the unschedulable grace the whole gang is placed again elsewhere."""
    world = World(pools=("a100-euw1", "a100-euw1-b"))
    for index, pool in enumerate(("a100-euw1", "a100-euw1-b")):
        world.cache.on_node(gpu_node(f"n{index}-second", pool), deleted=False)
    obj = workload("pretrain", gpus=4, type="Training")
    obj["spec"]["resources"]["workers"] = 2
    obj = signed(obj)

    async def scenario() -> str:
        await world.place(obj)
        job = world.job("pretrain")
        first = job["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"]
        node = next(n for n, v in world.cache.nodes.items() if v["metadata"]["labels"]["mlplacement.io/pool"] == first)
        world.cache.on_pod(pod_of(job, "pretrain-0", node=node), deleted=False)
        world.cache.on_pod(pod_of(job, "pretrain-1"), deleted=False)  # pending, no condition at all
        await world.controller.place_round()
        assert world.job("pretrain")["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"] == first
        world.clock.now += world.config.unschedulable_grace_seconds + 1
        await world.controller.place_round()
        return first

    first = run(scenario())
    (unschedulable,) = [e for e in world.events if e[1] == "Unschedulable"]
    assert "1 of the gang's workers not bound yet" in unschedulable[2]
    moved = world.job("pretrain")
    assert moved["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"] != first
    assert moved["spec"]["parallelism"] == 2
