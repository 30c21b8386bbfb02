"""Databricks runs end to end in-process: the real controller and the real databricks-sdk, over real HTTPS, against
a local stand-in of the Jobs API. Only the home cluster's writes are faked (tests/component/fakes.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlplacement.adapters.databricks import DatabricksJobs
from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import MAX_BACKOFF_SECONDS, WorkloadController
from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign
from tests.builders import make_policy, make_workload, with_annotations
from tests.component.fakes import Clock, Events, FakeCluster
from tests.standins.databricks import Fault, JobsStandIn

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = keyring_core.generate_key()
NAMESPACE = "mlplacement-system"
POLL = 15.0


def signed(obj: dict[str, Any]) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, KEY, "platform"))


def workspace_obj(name: str, host: str) -> dict[str, Any]:
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "DatabricksWorkspace",
        "metadata": {"name": name, "generation": 1},
        "spec": {
            "host": host,
            "region": "eu-west-1",
            "tokenSecretRef": {"name": f"{name}-token"},
            "cost": {"gpuHourUSD": 2.0},
            "maxConcurrentRuns": 5,
        },
    }


def training(name: str = "recsys", workspace: str = "dbx-a", max_attempts: int = 2) -> dict[str, Any]:
    obj = make_workload(
        name=name,
        namespace="team-recsys",
        type="Training",
        resources={"gpus": 8},
        targets={"allowed": ["Databricks"], "pinned": {"kind": "Databricks", "name": workspace}},
        databricks={
            "task": {"spark_python_task": {"python_file": "dbfs:/recsys/train.py"}},
            "newCluster": {"spark_version": "15.4.x-gpu-ml-scala2.12", "num_workers": 2},
            "timeoutSeconds": 3600,
        },
        retry={"maxAttempts": max_attempts, "backoffSeconds": 60},
        costTags={"team": "recsys", "cost-center": "cc-2201"},
    )
    obj["metadata"].update(uid=f"uid-{name}", generation=1, creationTimestamp="2026-11-22T11:00:00Z")
    return signed(obj)


class World:
    def __init__(self, servers: dict[str, JobsStandIn], retry_budget: int = 5, http_timeout: float = 1.0) -> None:
        self.servers = servers
        self.cluster, self.events, self.clock = FakeCluster(), Events(), Clock()
        self.config = OperatorConfig()
        self.cache = FleetCache(config=self.config)
        self.cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
        self.cache.on_policy(signed(make_policy("default")), deleted=False)
        for name, server in servers.items():
            self.cache.on_workspace(workspace_obj(name, server.host), deleted=False)
            self.cluster.put_secret(NAMESPACE, f"{name}-token", {"token": server.state.token})
        self.jobs = DatabricksJobs(http_timeout_seconds=http_timeout, retry_budget_seconds=retry_budget)
        self.controller = self.new_controller()

    def new_controller(self) -> WorkloadController:
        """A fresh operator process: nothing in memory, the same cluster and workspaces."""
        controller = WorkloadController(
            self.config, self.cache, self.cluster, self.events, clock=lambda: NOW, monotonic=self.clock, jobs=self.jobs
        )
        assert controller.databricks is not None
        controller.databricks.poll_seconds = POLL
        return controller

    @property
    def runs(self) -> Any:
        assert self.controller.databricks is not None
        return self.controller.databricks

    def status(self, name: str = "recsys") -> dict[str, Any]:
        return self.controller.records.status_of(f"team-recsys/{name}") or {}

    async def probe(self) -> None:
        await self.runs.probe_due()

    async def place(self, *workloads: dict[str, Any]) -> None:
        """Workspaces probed Ready, the workloads admitted, one placement round (which submits their runs)."""
        await self.probe()
        for obj in workloads:
            assert await self.controller.on_workload(obj) is None
        await self.controller.place_round()

    async def poll_until_finished(self, name: str = "recsys", rounds: int = 20) -> dict[str, Any]:
        """Advance the operator's clock poll by poll (no sleeping): the run moves one step per runs/get."""
        for _ in range(rounds):
            if self.status(name).get("phase") in ("Succeeded", "Failed"):
                break
            self.clock.now += POLL
            await self.runs.poll_due()
        return self.status(name)


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, JobsStandIn]]:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    with JobsStandIn(tls_dir=a_dir) as a, JobsStandIn(token="dapi-second-workspace-token", tls_dir=b_dir) as b:
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(a.ca_bundle.read_bytes() + b.ca_bundle.read_bytes())  # type: ignore[union-attr]
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        yield {"dbx-a": a, "dbx-b": b}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def condition(status: dict[str, Any], type_: str) -> tuple[str, str]:
    found = next(c for c in status["conditions"] if c["type"] == type_)
    return found["status"], found["reason"]


def test_daily_training_is_submitted_once_and_polled_to_success(servers: dict[str, JobsStandIn]) -> None:
    world = World(servers)
    jobs = servers["dbx-a"].state

    async def scenario() -> dict[str, Any]:
        await world.place(training())
        return await world.poll_until_finished()

    status = run(scenario())
    assert jobs.submits == 1
    (submitted,) = jobs.runs.values()
    # The run id reached status first, alone, before the placement was recorded.
    (_, first), *_ = [p for p in world.cluster.status_patches if p[0] == "team-recsys/recsys"]
    assert first == {"databricks": {"runId": submitted.run_id, "workspace": "dbx-a", "attempt": 1}}
    assert submitted.run_name == "team-recsys/recsys"
    assert submitted.body["idempotency_token"] == "mlw-uid-recsys-g1-a1"
    tags = submitted.body["tasks"][0]["new_cluster"]["custom_tags"]
    assert tags["team"] == "recsys"
    assert tags["cost-center"] == "cc-2201"
    assert tags["mlplacement.io_workload-uid"] == "uid-recsys"
    assert status["phase"] == "Succeeded"
    assert condition(status, "Finished") == ("True", "Succeeded")
    assert status["databricks"]["state"] == "TERMINATED/SUCCESS"
    assert status["databricks"]["runPageUrl"].endswith(f"/runs/{submitted.run_id}")
    assert status["placement"]["target"]["kind"] == "Databricks"
    # What the run took (the Jobs API's start_time and end_time) is learned for its next run (#32).
    took_hours = (submitted.end_time - submitted.start_time) / 3_600_000
    (learned,) = status["learned"]["referenceGPUHours"]
    assert learned == pytest.approx(took_hours * 8, abs=1e-3)  # 8 GPUs asked for, priced on the reference


def test_read_timeout_after_the_server_accepted_the_submit_gives_the_same_run(
    servers: dict[str, JobsStandIn],
) -> None:
    world = World(servers, http_timeout=0.5)
    jobs = servers["dbx-a"].state
    jobs.faults.append(Fault("accept-then-stall", "runs/submit", seconds=1.0))

    async def scenario() -> None:
        await world.place(training())
        # Whether the SDK retries a timed-out read itself (releases differ) or the controller's next round does
        # after its backoff, the submit is repeated with the same idempotency token.
        for _ in range(10):
            if "databricks" in world.status():
                break
            world.clock.now += MAX_BACKOFF_SECONDS
            await world.controller.place_round()

    run(scenario())
    assert jobs.submits >= 2  # the accepted submit was not heard, so it was sent again ...
    assert len(jobs.runs) == 1  # ... and the idempotency token made it the same run
    assert world.status()["databricks"]["runId"] == next(iter(jobs.runs))


def test_operator_killed_between_submit_and_status_write_adopts_the_same_run_after_restart(
    servers: dict[str, JobsStandIn],
) -> None:
    world = World(servers)
    jobs = servers["dbx-a"].state

    async def scenario() -> dict[str, Any]:
        await world.probe()
        world.cluster.fail_status_writes = True  # the submit goes out; the status write does not
        await world.controller.on_workload(training())
        await world.controller.place_round()
        assert "databricks" not in world.status()
        world.cluster.fail_status_writes = False
        world.controller = world.new_controller()  # restart: memory is gone, the run is not
        await world.controller.on_workload(training())
        await world.controller.place_round()
        return await world.poll_until_finished()

    status = run(scenario())
    assert len(jobs.runs) == 1
    assert status["databricks"]["runId"] == next(iter(jobs.runs))
    assert status["phase"] == "Succeeded"


def test_restart_with_the_run_recorded_polls_it_instead_of_submitting(servers: dict[str, JobsStandIn]) -> None:
    world = World(servers)
    jobs = servers["dbx-a"].state

    async def scenario() -> dict[str, Any]:
        await world.place(training())
        recorded = world.status()
        world.controller = world.new_controller()
        await world.controller.on_workload({**training(), "status": recorded})
        await world.controller.place_round()
        return await world.poll_until_finished()

    assert run(scenario())["phase"] == "Succeeded"
    assert jobs.submits == 1


def test_delete_cancels_the_active_run_and_waits_for_it_to_stop(servers: dict[str, JobsStandIn]) -> None:
    world = World(servers)
    jobs = servers["dbx-a"].state
    jobs.steps_per_state = 100  # the run would go on for a long time

    async def scenario() -> list[bool]:
        await world.place(training())
        status = world.status()
        return [await world.runs.cancel("team-recsys/recsys", status) for _ in range(3)]

    assert run(scenario()) == [False, True, True]  # cancel requested; then seen terminal
    (cancelled,) = jobs.runs.values()
    assert (cancelled.life_cycle, cancelled.result) == ("TERMINATED", "CANCELED")
    assert "team-recsys/recsys" not in world.runs.runs


def test_a_429_storm_on_one_workspace_backs_off_while_the_other_progresses(servers: dict[str, JobsStandIn]) -> None:
    world = World(servers, retry_budget=1)
    storming = servers["dbx-a"].state

    async def scenario() -> None:
        await world.probe()
        await world.controller.on_workload(training("stormy", "dbx-a"))
        await world.controller.on_workload(training("calm", "dbx-b"))
        await world.controller.place_round()
        storming.faults.extend(Fault("429", "runs/get", seconds=120) for _ in range(50))
        await world.poll_until_finished("calm")

    run(scenario())
    assert world.status("calm")["phase"] == "Succeeded"
    assert world.status("stormy")["phase"] == "Placed"
    tracked = world.runs.runs["team-recsys/stormy"]
    # Polled once in the storm (first round, at t=POLL), then left alone for the server's Retry-After.
    assert tracked.errors == 1
    assert tracked.next_poll >= POLL + 120
    storming.faults.clear()

    async def recover() -> dict[str, Any]:
        world.clock.now += 300
        return await world.poll_until_finished("stormy")

    assert run(recover())["phase"] == "Succeeded"


@pytest.mark.parametrize(
    ("outcomes", "phase", "submits"),
    [
        (["FAILED", "SUCCESS"], "Succeeded", 2),
        (["FAILED", "FAILED"], "Failed", 2),
    ],
    ids=["a failed first attempt is retried and succeeds", "retries stop at maxAttempts"],
)
def test_failed_run_is_retried_with_a_new_attempt(
    servers: dict[str, JobsStandIn], outcomes: list[str], phase: str, submits: int
) -> None:
    world = World(servers)
    jobs = servers["dbx-a"].state
    jobs.outcomes.extend(outcomes)

    async def scenario() -> dict[str, Any]:
        await world.place(training(max_attempts=2))
        first = await world.poll_until_finished(rounds=4)
        assert first["phase"] == "Running"  # attempt 1 failed, attempt 2 is due after the backoff
        assert condition(first, "Finished") == ("False", "Failed")
        world.clock.now += 60
        return await world.poll_until_finished()

    status = run(scenario())
    assert status["phase"] == phase
    assert jobs.submits == submits
    tokens = [r.body["idempotency_token"] for r in jobs.runs.values()]
    assert tokens == ["mlw-uid-recsys-g1-a1", "mlw-uid-recsys-g1-a2"]
    assert status["databricks"]["attempt"] == 2


def test_a_run_deleted_in_databricks_becomes_a_condition_not_a_resubmit(servers: dict[str, JobsStandIn]) -> None:
    world = World(servers)
    jobs = servers["dbx-a"].state

    async def scenario() -> dict[str, Any]:
        await world.place(training())
        jobs.delete_run(world.status()["databricks"]["runId"])
        status = await world.poll_until_finished()
        for _ in range(3):
            world.clock.now += 600
            await world.controller.place_round()
            await world.runs.poll_due()
        return status

    status = run(scenario())
    assert status["phase"] == "Failed"
    assert condition(status, "Finished") == ("True", "RunLost")
    assert jobs.submits == 1
    assert ("Warning", "RunLost") in [e[:2] for e in world.events]


def test_probe_marks_the_workspace_ready_once_and_a_bad_token_never_leaks(
    servers: dict[str, JobsStandIn], caplog: pytest.LogCaptureFixture
) -> None:
    world = World(servers)
    leaked = "dapi-this-token-is-wrong-and-secret"
    world.cluster.put_secret(NAMESPACE, "dbx-b-token", {"token": leaked})
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        await world.probe()
        world.clock.now += 3600
        await world.probe()

    run(scenario())
    by_name: dict[str, list[dict[str, Any]]] = {}
    for name, patch in world.cluster.workspace_patches:
        by_name.setdefault(name, []).append(patch)
    assert len(by_name["dbx-a"]) == 1  # no heartbeat churn: the second probe changed nothing
    assert condition(by_name["dbx-a"][0], "Ready") == ("True", "ProbeSucceeded")
    assert condition(by_name["dbx-b"][0], "Ready") == ("False", "ProbeFailed")
    everything = repr(world.cluster.workspace_patches) + repr(world.events) + caplog.text
    assert leaked not in everything
    assert servers["dbx-a"].state.token not in everything


def test_dropped_connections_are_retried_by_the_sdk_and_the_run_still_finishes(servers: dict[str, JobsStandIn]) -> None:
    world = World(servers)
    jobs = servers["dbx-a"].state
    jobs.faults.extend([Fault("drop", "runs/submit"), Fault("drop", "runs/get"), Fault("503", "runs/get", 1)])

    async def scenario() -> dict[str, Any]:
        await world.place(training())
        return await world.poll_until_finished()

    assert run(scenario())["phase"] == "Succeeded"
    assert len(jobs.runs) == 1
    assert not jobs.faults  # every injected fault was hit


def deleting(obj: dict[str, Any], finalizers: list[str]) -> dict[str, Any]:
    gone = {**obj, "metadata": {**obj["metadata"], "finalizers": finalizers}}
    gone["metadata"]["deletionTimestamp"] = "2026-11-22T12:05:00Z"
    return gone


def test_a_workload_on_databricks_holds_a_finalizer_until_its_run_is_cancelled(
    servers: dict[str, JobsStandIn],
) -> None:
    world = World(servers)
    world.controller.cleanup_poll_seconds = 0.0
    jobs = servers["dbx-a"].state
    jobs.steps_per_state = 100  # the run would go on for a long time

    async def scenario() -> None:
        await world.place(training())
        assert world.cluster.finalizer_calls == [("add", "team-recsys/recsys")]
        await world.controller.on_workload_event("MODIFIED", deleting(training(), ["mlplacement.io/remote-cleanup"]))
        await world.controller.cleanups["team-recsys/recsys"]

    run(scenario())
    (cancelled,) = jobs.runs.values()
    assert (cancelled.life_cycle, cancelled.result) == ("TERMINATED", "CANCELED")
    assert world.cluster.finalizer_calls[-1] == ("remove mlplacement.io/remote-cleanup", "team-recsys/recsys")


def test_a_run_submitted_since_the_last_probe_holds_its_slot(servers: dict[str, JobsStandIn]) -> None:
    world = World(servers)
    obj = workspace_obj("dbx-a", servers["dbx-a"].host)
    obj["spec"]["maxConcurrentRuns"] = 1
    world.cache.on_workspace(obj, deleted=False)
    servers["dbx-a"].state.steps_per_state = 100  # the run goes on

    async def scenario() -> None:
        await world.probe()  # Ready, 0 active runs, and no probe again before the next round
        await world.controller.on_workload(training("first", "dbx-a"))
        await world.controller.place_round()
        await world.controller.on_workload(training("second", "dbx-a"))
        await world.controller.place_round()

    run(scenario())
    assert world.status("first")["phase"] == "Placed"
    assert world.status("second")["phase"] == "Waiting"
    assert "no free run slots" in world.status("second")["placement"]["message"]
    assert len(servers["dbx-a"].state.runs) == 1
