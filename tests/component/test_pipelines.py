"""The pipeline controller with the workload controller, at the cluster port: stages become MLWorkloads as
their gates open, run stage by stage, retry alone, re-run downstream of a change only; the signature gate
holds for stages (a hand-edited or unreleased stage never runs, a pipeline that stops verifying stops them)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from mlplacement.config import OperatorConfig
from mlplacement.controller.pipelines import PipelineController
from mlplacement.controller.state import FleetCache
from mlplacement.controller.sync import CacheSync
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign
from tests.builders import make_pipeline, make_policy, make_stage, with_annotations
from tests.component.fakes import Clock, Events, FakeCluster
from tests.component.test_capacity_and_failures import NOW
from tests.component.test_workload_controller import KEY, gpu_node, signed
from tests.unit.test_argocd_health import PIPELINE_LUA, health

FEATURES = "sha256:" + "1" * 64
MODEL = "sha256:" + "2" * 64


class World:
    """A cluster with one A100 pool; the fake's MLWorkloads are delivered to both controllers as a watch would."""

    def __init__(self, pipeline: dict[str, Any] | None = None, sync: CacheSync | None = None) -> None:
        self.config = OperatorConfig()
        self.cache = FleetCache(config=self.config)
        self.cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
        self.cache.on_policy(signed(make_policy("default")), deleted=False)
        self.cache.on_node(gpu_node("n1", "a100-euw1"), deleted=False)
        self.cluster, self.events = FakeCluster(), Events()
        self.pipeline_events = Events()
        self.audit: list[Any] = []
        self.clock = Clock()
        self.now = NOW
        self.controller = WorkloadController(
            self.config, self.cache, self.cluster, self.events, clock=lambda: self.now, monotonic=self.clock, sync=sync
        )
        self.pipelines = PipelineController(
            self.config,
            self.cache,
            self.cluster,
            self.pipeline_events,
            readmit=self.controller.readmit,
            clock=lambda: self.now,
            monotonic=self.clock,
            audit=self.audit.append,
            sync=sync,
        )
        self.stage_counts: list[dict[str, int]] = []
        self.pipelines.metrics.pipeline_stages = lambda counts: self.stage_counts.append(dict(counts))  # type: ignore[method-assign]
        self.controller.stages = self.pipelines.stage_verdict
        self.obj = pipeline or make_pipeline()
        self.generation = 0
        self.delivered: dict[str, Any] = {}

    def run(self, *steps: Callable[[], Awaitable[None]]) -> None:
        async def scenario() -> None:
            for step in steps:
                await step()

        asyncio.run(scenario())

    # --- what users and the cluster do ---

    async def apply(self, obj: dict[str, Any] | None = None, sign: bool = True) -> None:
        """kubectl apply of the (re-)signed pipeline: a new generation."""
        self.generation += 1
        self.obj = copy.deepcopy(obj or self.obj)
        self.obj["metadata"].update(uid="uid-pipeline", generation=self.generation)
        body = signed(self.obj) if sign else self.obj
        await self.pipelines.on_pipeline_event("MODIFIED", body)
        await self.settle()

    async def settle(self) -> None:
        """Rounds of both controllers, the watch delivering what changed, until nothing does."""
        for _ in range(8):
            await self.pipelines.round()
            await self.watch()
            await self.controller.place_round()
            for child in list(self.cluster.children.values()):
                self.controller.on_home_child(child, deleted=False)
            await self.watch()

    async def watch(self) -> None:
        for key in sorted(set(self.delivered) - set(self.cluster.workloads)):
            gone = self.delivered.pop(key)
            await self.pipelines.on_stage_event("DELETED", gone)
            await self.controller.on_workload_event("DELETED", gone)
        for key, obj in sorted(self.cluster.workloads.items()):
            seen = {**obj, "status": self.cluster.statuses.get(key) or {}}
            if self.delivered.get(key) != seen:
                self.delivered[key] = copy.deepcopy(seen)
                await self.pipelines.on_stage_event("MODIFIED", seen)
                await self.controller.on_workload_event("MODIFIED", seen)

    def finish(self, stage_workload: str, outcome: str = "Complete", **outputs: str) -> Callable[[], Awaitable[None]]:
        """The stage's Job ends (as the Job controller writes it) and the stage records its outputs."""

        async def step() -> None:
            job = self.cluster.children[("Job", "team-a", f"mlw-{stage_workload}")]
            job["status"] = {"conditions": [{"type": outcome, "status": "True"}]}
            if outputs:
                annotations = self.cluster.workloads[f"team-a/{stage_workload}"]["metadata"].setdefault(
                    "annotations", {}
                )
                annotations["mlplacement.io/outputs"] = json.dumps(outputs)
            self.now += timedelta(hours=1)
            await self.controller.on_child(job)
            await self.settle()

        return step

    # --- what we look at ---

    def status(self) -> dict[str, Any]:
        return self.cluster.pipeline_statuses["team-a/recsys"]

    def stage(self, name: str) -> dict[str, Any]:
        return next(s for s in self.status()["stages"] if s["name"] == name)

    def jobs(self) -> list[str]:
        return sorted(name for kind, _, name in self.cluster.children if kind == "Job")

    def workload_status(self, name: str) -> dict[str, Any]:
        return self.controller.records.statuses()[f"team-a/{name}"]


def test_a_signed_pipeline_runs_stage_by_stage_with_lineage() -> None:
    world = World()
    seen: list[Any] = []

    async def look() -> None:
        seen.append((world.jobs(), world.status()["progress"], world.stage("train")["phase"]))

    world.run(
        world.apply,
        look,
        world.finish("recsys-prepare-1", features=FEATURES),
        look,
        world.finish("recsys-train-1", model=MODEL),
        world.finish("recsys-serve-1"),
    )
    assert seen == [
        (["mlw-recsys-prepare-1"], "0/3", "WaitingForData"),
        (["mlw-recsys-prepare-1", "mlw-recsys-train-1"], "1/3", "Scheduled"),
    ]
    status = world.status()
    assert (status["phase"], status["progress"], status["criticalPath"]) == (
        "Succeeded",
        "3/3",
        ["prepare", "train", "serve"],
    )
    assert world.stage("train")["consumed"] == [
        {"name": "features", "uri": "s3://data/features/", "digest": FEATURES, "fromStage": "prepare"}
    ]
    assert world.stage("train")["produced"] == [{"name": "model", "uri": "s3://models/recsys/", "digest": MODEL}]
    assert world.stage("train")["target"] == "GPUPool/a100-euw1"
    # Its pods are told what they consume, to check what they read against the lineage.
    job = world.cluster.children[("Job", "team-a", "mlw-recsys-train-1")]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["MLPLACEMENT_INPUT_FEATURES_URI"], env["MLPLACEMENT_INPUT_FEATURES_DIGEST"]) == (
        "s3://data/features/",
        FEATURES,
    )
    # Each stage workload is the signed template exactly, owned by the pipeline, admitted on its signature.
    train = world.cluster.workloads["team-a/recsys-train-1"]
    assert train["spec"] == world.obj["spec"]["stages"][1]["template"]
    assert train["metadata"]["ownerReferences"][0]["kind"] == "MLPipeline"
    verified = world.workload_status("recsys-train-1")["verified"]
    assert verified["keyId"] == "platform"
    assert [reason for _, reason, _ in world.pipeline_events].count("StageStarted") == 3
    # At the cluster port: one create per stage, and a pipeline status write per transition, no more.
    assert world.cluster.stage_creates == [f"team-a/recsys-{s}-1" for s in ("prepare", "train", "serve")]
    # Per stage: released (Created), placed (Dispatched, target known), finished; a release shares its write
    # with the end of the stage before: 7 for three stages, none while nothing changes.
    assert world.cluster.pipeline_status_writes == 7
    # The audit trail says when each stage started and finished, under which key.
    records = [(r.action.value, r.reason, r.message.split(":")[0]) for r in world.audit]
    assert records[:2] == [
        ("StageStarted", "StageStarted", "stage prepare"),
        ("Waiting", "WaitingForData", "stage train"),
    ]
    assert ("StageFinished", "StageSucceeded", "stage serve") in records
    assert {r.workload_key_id for r in world.audit} == {"platform"}
    assert {r.object.kind for r in world.audit} == {"MLPipeline"}
    assert world.stage_counts[-1] == {"Succeeded": 3}
    # What Argo CD makes of the status the operator wrote, under the shipped health check.
    argocd = health({"metadata": {"generation": 1}, "status": status}, PIPELINE_LUA)
    assert argocd == ("Healthy", "all 3 stages succeeded (3/3 stages)")


def test_a_failed_stage_retries_alone_and_completed_stages_never_rerun() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][1]["retry"] = {"maxAttempts": 2, "backoffSeconds": 0}
    world = World(obj)
    world.run(
        world.apply,
        world.finish("recsys-prepare-1", features=FEATURES),
        world.finish("recsys-train-1", outcome="Failed"),
    )
    assert world.cluster.stage_creates.count("team-a/recsys-prepare-1") == 1
    assert "team-a/recsys-prepare-2" not in world.cluster.stage_creates
    assert world.cluster.stage_deletes == ["team-a/recsys-train-1"]
    assert "team-a/recsys-train-2" in world.cluster.workloads
    train = world.stage("train")
    assert (train["phase"], train["run"], train["attempts"]) == ("Scheduled", 2, 1)
    assert any(reason == "Retrying" for _, reason, _ in world.pipeline_events)


def test_retries_exhausted_fail_the_pipeline_and_nothing_downstream_starts() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][0]["retry"] = {"maxAttempts": 1}
    world = World(obj)
    world.run(world.apply, world.finish("recsys-prepare-1", outcome="Failed"))
    status = world.status()
    assert status["phase"] == "Failed"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "Failed")
    assert world.jobs() == ["mlw-recsys-prepare-1"]


def test_a_template_change_reruns_that_stage_and_its_descendants_only() -> None:
    world = World()

    async def change_train() -> None:
        changed = copy.deepcopy(world.obj)
        changed["spec"]["stages"][1]["template"]["args"] = ["--epochs", "5"]
        await world.apply(changed)

    world.run(
        world.apply,
        world.finish("recsys-prepare-1", features=FEATURES),
        world.finish("recsys-train-1", model=MODEL),
        world.finish("recsys-serve-1"),
        change_train,
    )
    assert sorted(world.cluster.stage_deletes) == ["team-a/recsys-serve-1", "team-a/recsys-train-1"]
    assert sorted(world.cluster.workloads) == ["team-a/recsys-prepare-1", "team-a/recsys-train-2"]
    assert (world.stage("prepare")["phase"], world.stage("prepare")["run"]) == ("Succeeded", 1)
    assert world.stage("serve")["phase"] == "WaitingForData"
    assert world.status()["progress"] == "1/3"


def test_a_hand_edited_stage_is_refused_and_its_children_stopped() -> None:
    world = World()

    async def edit_by_hand() -> None:
        edited = copy.deepcopy(world.cluster.workloads["team-a/recsys-prepare-1"])
        edited["spec"]["image"] = "registry.example.com/attacker/miner:1"
        edited["metadata"]["generation"] = 2
        world.cluster.workloads["team-a/recsys-prepare-1"] = edited
        await world.settle()

    world.run(world.apply, edit_by_hand)
    status = world.workload_status("recsys-prepare-1")
    verified = next(c for c in status["conditions"] if c["type"] == "Verified")
    assert (status["phase"], verified["reason"]) == ("Refused", "StageModified")
    assert "spec differs from stage 'prepare' of the signed MLPipeline recsys" in verified["message"]
    assert ("Job", "team-a", "mlw-recsys-prepare-1") in world.cluster.deletes
    assert world.stage("prepare")["phase"] == "Refused"
    assert world.status()["phase"] == "Failed"


def test_a_stage_made_by_hand_before_its_gates_open_does_not_run() -> None:
    world = World()

    async def sneak_in() -> None:
        template = world.obj["spec"]["stages"][1]["template"]
        world.cluster.workloads["team-a/recsys-train-1"] = {
            "apiVersion": "mlplacement.io/v1alpha1",
            "kind": "MLWorkload",
            "metadata": {
                "name": "recsys-train-1",
                "namespace": "team-a",
                "uid": "uid-sneaky",
                "generation": 1,
                "labels": {"mlplacement.io/pipeline": "recsys", "mlplacement.io/stage": "train"},
            },
            "spec": copy.deepcopy(template),
        }
        await world.settle()

    world.run(world.apply, sneak_in)
    status = world.workload_status("recsys-train-1")
    assert status["phase"] == "Waiting"
    placed = next(c for c in status["conditions"] if c["type"] == "Placed")
    assert placed["reason"] == "StageNotReleased"
    assert "stage train: stage prepare has not succeeded" in placed["message"]
    assert world.jobs() == ["mlw-recsys-prepare-1"]


def test_a_pipeline_that_no_longer_verifies_stops_its_running_stages() -> None:
    world = World()

    async def edit_without_signing() -> None:
        changed = copy.deepcopy(world.obj)
        changed["spec"]["stages"][0]["template"]["image"] = "registry.example.com/other:2"
        stale = signed(world.obj)["metadata"]["annotations"]  # the old signature over the old spec
        changed["metadata"]["annotations"] = stale
        await world.apply(changed, sign=False)

    world.run(world.apply, edit_without_signing)
    assert world.status()["phase"] == "Refused"
    verified = next(c for c in world.status()["conditions"] if c["type"] == "Verified")
    assert verified["reason"] == "SignatureInvalid"
    stage_status = world.workload_status("recsys-prepare-1")
    assert stage_status["phase"] == "Refused"
    assert ("Job", "team-a", "mlw-recsys-prepare-1") in world.cluster.deletes
    compliant = next(c for c in stage_status["conditions"] if c["type"] == "Compliant")
    assert compliant["reason"] == "AuthorizationLost"


def test_deleting_the_pipeline_removes_its_stages() -> None:
    world = World()

    async def delete() -> None:
        await world.pipelines.on_pipeline_event("DELETED", world.obj)
        await world.settle()

    world.run(world.apply, world.finish("recsys-prepare-1", features=FEATURES), delete)
    assert world.cluster.workloads == {}
    assert sorted(world.cluster.stage_deletes) == ["team-a/recsys-prepare-1", "team-a/recsys-train-1"]


def signals_with(datasets: dict[str, Any]) -> dict[str, Any]:
    document = {"updatedAt": NOW.isoformat(), "ttlSeconds": 3600, "datasets": datasets}
    return {"metadata": {"name": "mlplacement-signals"}, "data": {"signals.yaml": json.dumps(document)}}


def test_a_stage_waits_on_its_dataset_gate_until_the_signals_say_it_is_fresh() -> None:
    obj = make_pipeline(make_stage("train", gates={"datasets": [{"dataset": "clicks", "maxAgeMinutes": 60}]}))
    world = World(obj)
    seen: list[Any] = []

    async def stale_then_fresh() -> None:
        stale = {"clicks": {"updatedAt": (NOW - timedelta(hours=2)).isoformat(), "validated": True}}
        world.cache.on_signals(signals_with(stale))
        await world.settle()
        seen.append((world.stage("train")["phase"], world.stage("train")["message"], world.jobs()))
        world.cache.on_signals(signals_with({"clicks": {"updatedAt": NOW.isoformat(), "validated": True}}))
        await world.settle()
        seen.append((world.stage("train")["phase"], world.jobs()))

    world.run(world.apply, stale_then_fresh)
    assert seen == [
        ("WaitingForData", "dataset clicks was updated 2h00m ago; the gate allows 60m", []),
        ("Scheduled", ["mlw-recsys-train-1"]),
    ]
    assert world.status()["conditions"][1]["type"] == "Ready"


def test_object_gates_are_read_once_per_poll_period_and_open_on_the_condition() -> None:
    gate = {"apiVersion": "data.example.com/v1", "kind": "Dataset", "name": "clicks"}
    world = World(make_pipeline(make_stage("train", gates={"objects": [gate]})))
    key = ("data.example.com/v1", "Dataset", "team-a", "clicks")

    async def ready_later() -> None:
        assert world.stage("train")["message"] == "Dataset team-a/clicks: not found"
        world.cluster.objects[key] = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        await world.settle()
        assert world.jobs() == []  # read again only after the poll period
        world.clock.now += world.config.gate_poll_seconds
        await world.settle()

    world.run(world.apply, ready_later)
    assert world.jobs() == ["mlw-recsys-train-1"]
    assert len(world.cluster.object_reads) == 2


def test_a_settled_pipeline_costs_no_writes() -> None:
    world = World()
    counts: list[tuple[int, int, int]] = []

    async def idle_rounds() -> None:
        before = (len(world.cluster.stage_creates), len(world.pipeline_events), len(world.cluster.status_patches))
        writes = dict(world.cluster.pipeline_statuses)
        for _ in range(5):
            await world.settle()
        after = (len(world.cluster.stage_creates), len(world.pipeline_events), len(world.cluster.status_patches))
        counts.extend([before, after])
        assert world.cluster.pipeline_statuses == writes

    world.run(world.apply, idle_rounds)
    assert counts[0] == counts[1]


def test_stages_wait_untouched_for_their_pipeline_after_a_restart() -> None:
    world = World()

    async def restart() -> None:
        statuses = dict(world.cluster.pipeline_statuses)
        sync = CacheSync(kinds=("mlpipelines",), reads=())
        sync.listed("mlpipelines", {"team-a/recsys"})
        fresh = World(sync=sync)
        fresh.cluster = world.cluster
        fresh.controller.cluster = fresh.pipelines.cluster = world.cluster
        fresh.controller.pool.cluster = world.cluster
        patches = len(world.cluster.status_patches)
        await fresh.watch()  # the stage workloads are listed before their pipeline
        await fresh.controller.place_round()
        assert len(world.cluster.status_patches) == patches  # parked: no status written
        body = signed({**world.obj, "status": statuses["team-a/recsys"]})
        body["metadata"].update(uid="uid-pipeline", generation=1)
        await fresh.pipelines.on_pipeline_event("ADDED", body)
        sync.seen("mlpipelines", body)
        assert sync.ready
        await fresh.controller.readmit_all()  # what the workload loop does once the caches have synced
        await fresh.pipelines.round()
        assert fresh.workload_status("recsys-prepare-1")["phase"] in ("Placed", "Running")
        assert fresh.cluster.stage_creates.count("team-a/recsys-prepare-1") == 1

    world.run(world.apply, restart)


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (bounded; yields, never sleeps)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_the_loop_plans_pipelines_with_news_and_sweeps_all_each_gate_poll_period() -> None:
    world = World()
    planned: list[str] = []
    original = world.pipelines._reconcile

    async def recording(key: str, *args: Any) -> Any:
        planned.append(key)
        return await original(key, *args)

    world.pipelines._reconcile = recording  # type: ignore[method-assign]

    async def scenario() -> None:
        await world.apply()
        other = make_pipeline(make_stage("solo"), name="other")
        other["metadata"].update(uid="uid-other", generation=1)
        await world.pipelines.on_pipeline_event("ADDED", signed(other))
        task = asyncio.create_task(world.pipelines.run())
        await until(lambda: sorted(set(planned)) == ["team-a/other", "team-a/recsys"])  # the first pass: all
        planned.clear()
        job = world.cluster.children[("Job", "team-a", "mlw-recsys-prepare-1")]
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        await world.controller.on_child(job)
        await world.watch()  # the stage's new status reaches the pipeline controller: recsys has news
        await until(lambda: "team-a/recsys" in planned)
        assert "team-a/other" not in planned
        planned.clear()
        world.clock.now += world.config.gate_poll_seconds
        world.pipelines.wakeup.set()
        await until(lambda: "team-a/other" in planned)  # the period's sweep plans every pipeline
        world.pipelines.stop()
        await task

    asyncio.run(scenario())


def test_a_stage_whose_inputs_annotation_is_edited_is_refused_for_its_lineage() -> None:
    world = World()

    async def point_elsewhere() -> None:
        edited = copy.deepcopy(world.cluster.workloads["team-a/recsys-train-1"])
        inputs = json.loads(edited["metadata"]["annotations"]["mlplacement.io/inputs"])
        inputs["features"]["digest"] = "sha256:" + "6" * 64
        edited["metadata"]["annotations"]["mlplacement.io/inputs"] = json.dumps(inputs)
        world.cluster.workloads["team-a/recsys-train-1"] = edited
        await world.settle()

    world.run(world.apply, world.finish("recsys-prepare-1", features=FEATURES), point_elsewhere)
    status = world.workload_status("recsys-train-1")
    verified = next(c for c in status["conditions"] if c["type"] == "Verified")
    assert (status["phase"], verified["reason"]) == ("Refused", "ArtifactMismatch")
    assert ("Job", "team-a", "mlw-recsys-train-1") in world.cluster.deletes


def test_a_stage_is_created_once_even_before_its_watch_event_comes() -> None:
    world = World()

    async def rounds_without_the_watch() -> None:
        world.generation += 1
        world.obj["metadata"].update(uid="uid-pipeline", generation=world.generation)
        await world.pipelines.on_pipeline_event("ADDED", signed(world.obj))
        for _ in range(3):
            await world.pipelines.round()

    async def delete_by_hand() -> None:
        await world.settle()  # the watch delivers it
        del world.cluster.workloads["team-a/recsys-prepare-1"]
        await world.settle()  # the watch says it is gone: released, so it is created again

    world.run(rounds_without_the_watch)
    assert world.cluster.stage_creates == ["team-a/recsys-prepare-1"]
    world.run(delete_by_hand)
    assert world.cluster.stage_creates == ["team-a/recsys-prepare-1"] * 2
    assert "team-a/recsys-prepare-1" in world.cluster.workloads


def test_a_rerun_annotation_runs_a_stage_again_once_per_value() -> None:
    world = World()

    async def ask(value: str) -> None:
        world.obj["metadata"].setdefault("annotations", {})["mlplacement.io/rerun"] = value
        await world.pipelines.on_pipeline_event("MODIFIED", signed(world.obj))  # metadata only: no new generation
        await world.settle()

    async def rerun_train() -> None:
        await ask("train@1")
        await ask("train@1")  # the same request again: nothing new
        await ask("nope@2")

    world.run(
        world.apply,
        world.finish("recsys-prepare-1", features=FEATURES),
        world.finish("recsys-train-1", model=MODEL),
        rerun_train,
    )
    assert world.cluster.stage_creates.count("team-a/recsys-train-2") == 1
    assert "team-a/recsys-prepare-2" not in world.cluster.stage_creates
    assert world.status()["rerunHandled"] == "nope@2"
    assert ("Warning", "RerunIgnored", "mlplacement.io/rerun: no stage nope") in world.pipeline_events
    assert world.stage("train")["run"] == 2


def test_a_retry_comes_due_on_time_between_sweeps() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][0]["retry"] = {"maxAttempts": 2, "backoffSeconds": 5}
    world = World(obj)

    async def loop_after_the_backoff() -> None:
        assert world.stage("prepare")["phase"] == "Retrying"
        world.pipelines._sweep_at = world.clock.now + 1000  # no sweep due: only the retry may wake it
        world.now += timedelta(seconds=6)
        task = asyncio.create_task(world.pipelines.run())
        await until(lambda: "team-a/recsys-prepare-2" in world.cluster.stage_creates)
        world.pipelines.stop()
        await task

    world.run(world.apply, world.finish("recsys-prepare-1", outcome="Failed"), loop_after_the_backoff)


def test_a_pipeline_signature_that_expires_stops_its_running_stages() -> None:
    world = World()

    async def apply_expiring() -> None:
        world.generation += 1
        world.obj["metadata"].update(uid="uid-pipeline", generation=world.generation)
        annotations = sign(world.obj, KEY, "platform", NOW + timedelta(hours=1))
        await world.pipelines.on_pipeline_event("ADDED", with_annotations(world.obj, annotations))
        await world.settle()

    async def time_passes() -> None:
        assert world.jobs() == ["mlw-recsys-prepare-1"]
        assert world.pipelines._due["team-a/recsys"] == NOW + timedelta(hours=1, minutes=5)  # wakes at expiry
        world.now = NOW + timedelta(hours=1, minutes=6)
        await world.settle()

    world.run(apply_expiring, time_passes)
    assert world.status()["phase"] == "Refused"
    assert next(c for c in world.status()["conditions"] if c["type"] == "Verified")["reason"] == "SignatureExpired"
    assert ("Job", "team-a", "mlw-recsys-prepare-1") in world.cluster.deletes
    compliant = next(c for c in world.workload_status("recsys-prepare-1")["conditions"] if c["type"] == "Compliant")
    assert compliant["reason"] == "AuthorizationLost"
