"""Databricks runtime: submit a placed workload as a one-time run, poll it to the end, retry, cancel, probe.

Crash safety rests on the idempotency token (workload uid, generation, attempt): a submit repeated after a
timeout, or after a restart that lost the status write, returns the run that already exists. The run id is
written to status right after submit, before anything else. SDK calls run in threads, so a workspace that
answers 429 for minutes delays only its own workloads.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlplacement.api.constants import ACTIVE_PHASES, ConditionType, Phase, Reason
from mlplacement.api.databricks import DatabricksWorkspace, Workspace
from mlplacement.api.errors import DatabricksUnavailableError, RunNotFoundError
from mlplacement.api.workload import MLWorkload, TargetKind
from mlplacement.config import OperatorConfig
from mlplacement.controller.ports import Cluster, DatabricksJobs, EventSink
from mlplacement.controller.state import FleetCache
from mlplacement.core.databricks import RunState, lost_run_status, poll_delay, run_status, submit_payload
from mlplacement.core.learned import after_run
from mlplacement.core.placement import request_from_workload
from mlplacement.core.snapshot import Target
from mlplacement.core.status import set_condition, status_patch, timestamp

log = logging.getLogger("mlplacement.databricks")
Obj = Mapping[str, Any]
StatusWriter = Callable[[Obj, Obj, "tuple[str, str, str] | None"], Awaitable[bool]]


@dataclass
class TrackedRun:
    obj: Obj  # name, namespace, uid: enough to write status and post Events
    workload: MLWorkload
    workspace: str
    attempt: int
    run_id: int | None = None
    next_poll: float = 0.0
    errors: int = 0
    resubmit_at: float | None = None  # set after a failed attempt while retries remain


class DatabricksRuns:
    def __init__(
        self,
        config: OperatorConfig,
        cache: FleetCache,
        cluster: Cluster,
        events: EventSink,
        jobs: DatabricksJobs,
        write_status: StatusWriter,
        statuses: Callable[[str], Obj | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        poll_seconds: float = 15.0,
    ) -> None:
        self.config = config
        self.cache = cache
        self.cluster = cluster
        self.events = events
        self.jobs = jobs
        self.write_status = write_status
        self.statuses = statuses
        self.clock = clock
        self.monotonic = monotonic
        self.poll_seconds = poll_seconds
        self.runs: dict[str, TrackedRun] = {}  # workload key -> its run
        self.probed_at: dict[str, float] = {}
        self._credentials: dict[str, tuple[Any, float, Workspace]] = {}  # name -> (spec, read at, workspace)

    # --- credentials ---

    def workspace(self, name: str) -> Workspace:
        """Host and token of a registered workspace; the token is read from its Secret, never stored in status.

        Cached per workspace for one reload period (as trusted keys are): every poll of every run would
        otherwise be a Secret read on the apiserver. A changed spec, or the period passing, reads it again.
        """
        obj = self.cache.workspaces.get(name)
        if obj is None:
            raise DatabricksUnavailableError(f"DatabricksWorkspace {name!r} is not registered")
        cached = self._credentials.get(name)
        now = self.monotonic()
        if cached and cached[0] == obj.get("spec") and now - cached[1] < self.config.reload_seconds:
            return cached[2]
        spec = DatabricksWorkspace.model_validate(obj).spec
        ref = spec.token_secret_ref
        data = self.cluster.read_secret_data(self.config.namespace, ref.name) or {}
        if ref.key not in data:
            raise DatabricksUnavailableError(f"Secret {self.config.namespace}/{ref.name} has no key {ref.key!r}")
        token = base64.b64decode(data[ref.key]).decode().strip()
        workspace = Workspace(name=name, host=spec.host, token=token)
        self._credentials[name] = (obj.get("spec"), now, workspace)
        return workspace

    # --- submit ---

    def active_runs(self) -> dict[str, int]:
        """Runs this operator has going, per workspace: what holds its run slots right now."""
        counts: dict[str, int] = {}
        for run in self.runs.values():
            counts[run.workspace] = counts.get(run.workspace, 0) + 1
        return counts

    # --- the Runtime interface (controller.runtimes) ---

    kind = TargetKind.DATABRICKS
    remote_cleanup = True  # the run goes on in Databricks: deletion waits for it to be cancelled

    def failover_grace(self, name: str) -> float:
        return float("inf")  # never moved: the run goes on in Databricks (core.kinds)

    def unhealthy(self, name: str, seconds: float) -> str:
        return f"DatabricksWorkspace {name} has been unreachable for {seconds:.0f}s"

    async def run(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> None:
        # A run cannot be edited: a new generation cancels the run of the old one and submits its own.
        if (status.get("databricks") or {}).get("runId"):
            await self.cancel(key, status)
        await self.start(key, obj, workload, target.name)

    def is_current(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> bool:
        return bool(status.get("observedGeneration") == workload.metadata.generation)

    async def clean_up(self, key: str, uid: str, status: Obj) -> bool:
        return await self.cancel(key, status)

    async def stop(self, key: str, uid: str, status: Obj) -> bool:
        return await self.cancel(key, status)  # only when the policy lists Databricks: the run's work is lost

    async def start(self, key: str, obj: Obj, workload: MLWorkload, workspace: str) -> int:
        """Submit (or find again, by idempotency token) the run of this attempt; record its id at once."""
        current = self.statuses(key) or {}
        recorded = current.get("databricks") or {}
        same_generation = current.get("observedGeneration") == workload.metadata.generation
        attempt = int(recorded.get("attempt") or 1) if same_generation else 1
        tracked = TrackedRun(obj=obj, workload=workload, workspace=workspace, attempt=attempt)
        await self._submit(key, tracked)
        return tracked.run_id or 0

    async def _submit(self, key: str, tracked: TrackedRun) -> None:
        payload = submit_payload(tracked.workload, tracked.attempt)
        ws = await asyncio.to_thread(self.workspace, tracked.workspace)
        tracked.run_id = await asyncio.to_thread(self.jobs.submit, ws, payload)
        tracked.resubmit_at = None
        tracked.next_poll = self.monotonic()
        self.runs[key] = tracked
        # Before anything else: a restart from here on finds the run by its id.
        await self.write_status(
            tracked.obj,
            {"databricks": {"runId": tracked.run_id, "workspace": tracked.workspace, "attempt": tracked.attempt}},
            (
                "Normal",
                Reason.SUBMITTED.value,
                f"Databricks run {tracked.run_id} (attempt {tracked.attempt}) in {ws.name}",
            ),
        )

    def adopt(self, key: str, obj: Obj, workload: MLWorkload, status: Obj) -> bool:
        """After a restart: keep polling the run recorded in status instead of submitting another."""
        recorded = status.get("databricks") or {}
        if not recorded.get("runId") or status.get("phase") not in ACTIVE_PHASES:
            return False
        if key not in self.runs:
            self.runs[key] = TrackedRun(
                obj=obj,
                workload=workload,
                workspace=str(recorded.get("workspace")),
                attempt=int(recorded.get("attempt") or 1),
                run_id=int(recorded["runId"]),
            )
        return True

    # --- poll ---

    async def poll_due(self) -> None:
        """Poll every run whose time has come (concurrently), and resubmit failed attempts whose backoff passed."""
        now = self.monotonic()
        due = [(key, run) for key, run in self.runs.items() if now >= (run.resubmit_at or run.next_poll)]
        await asyncio.gather(*(self._poll_one(key, run) for key, run in due))

    async def _poll_one(self, key: str, tracked: TrackedRun) -> None:
        try:
            if tracked.resubmit_at is not None:
                tracked.attempt += 1
                await self._submit(key, tracked)
                return
            ws = await asyncio.to_thread(self.workspace, tracked.workspace)
            state = await asyncio.to_thread(self.jobs.get, ws, tracked.run_id or 0)
        except RunNotFoundError:
            self.runs.pop(key, None)
            generation = tracked.workload.metadata.generation
            status = lost_run_status(
                tracked.run_id or 0, tracked.workspace, self.statuses(key), generation, self.clock()
            )
            await self.write_status(
                tracked.obj, status, ("Warning", Reason.RUN_LOST.value, status["conditions"][-1]["message"])
            )
            return
        except DatabricksUnavailableError as exc:
            tracked.errors += 1
            delay = poll_delay(self.poll_seconds, tracked.errors, exc.retry_after)
            tracked.next_poll = self.monotonic() + delay
            log.warning("%s: %s; next poll in %.0fs", key, exc, delay)
            return
        tracked.errors = 0
        tracked.next_poll = self.monotonic() + self.poll_seconds
        generation = tracked.workload.metadata.generation
        status = run_status(
            state, tracked.workspace, tracked.attempt, dict(self.statuses(key) or {}), generation, self.clock()
        )
        if state.active:
            await self.write_status(tracked.obj, status, None)
            return
        retry = tracked.workload.spec.retry
        if not state.succeeded and tracked.attempt < retry.max_attempts:
            tracked.resubmit_at = self.monotonic() + retry.backoff_seconds
            status["phase"] = Phase.RUNNING.value  # not finished: another attempt follows
            status["conditions"] = set_condition(
                status["conditions"],
                ConditionType.FINISHED,
                False,
                Reason.FAILED,
                f"attempt {tracked.attempt}/{retry.max_attempts} failed ({state.state_message}); "
                f"retrying in {retry.backoff_seconds}s",
                generation,
                self.clock(),
            )
            await self.write_status(
                tracked.obj, status, ("Warning", "RunFailed", f"attempt {tracked.attempt} failed; retrying")
            )
            return
        self.runs.pop(key, None)
        if state.succeeded:
            learned = self._learned(tracked, state, dict(self.statuses(key) or {}))
            if learned is not None:
                status["learned"] = learned
        severity, reason = ("Normal", Reason.SUCCEEDED.value) if state.succeeded else ("Warning", Reason.FAILED.value)
        await self.write_status(tracked.obj, status, (severity, reason, f"Databricks run {state.run_id}: {reason}"))

    def _learned(self, tracked: TrackedRun, state: RunState, status: Obj) -> dict[str, Any] | None:
        """status.learned with this finished run's work (core.learned), when the run says when it ran."""
        if state.started_at is None or state.ended_at is None:
            return None
        request = request_from_workload(tracked.workload)
        # Databricks picks its node types: the product the workload names, if any.
        return after_run(
            status, request, state.started_at, state.ended_at, request.gpu_product, self.cache.snapshot(self.clock())
        )

    # --- delete ---

    async def cancel(self, key: str, status: Obj) -> bool:
        """Cancel the workload's run if it is still active; True once it is terminal (or gone)."""
        self.runs.pop(key, None)
        recorded = status.get("databricks") or {}
        if not recorded.get("runId"):
            return True
        try:
            ws = await asyncio.to_thread(self.workspace, str(recorded.get("workspace")))
            state = await asyncio.to_thread(self.jobs.get, ws, int(recorded["runId"]))
            if not state.active:
                return True
            if state.life_cycle_state != "TERMINATING":
                await asyncio.to_thread(self.jobs.cancel, ws, int(recorded["runId"]))
        except RunNotFoundError:
            return True
        return False

    # --- health ---

    async def probe_due(self) -> None:
        """Probe each workspace on its own interval; write Ready/Reachable and active runs when they change."""
        now = self.monotonic()
        for name, obj in list(self.cache.workspaces.items()):
            interval = DatabricksWorkspace.model_validate(obj).spec.probe_interval_seconds
            if now - self.probed_at.get(name, -1e18) < interval:
                continue
            self.probed_at[name] = now
            await self.probe(name, obj)

    async def probe(self, name: str, obj: Obj) -> bool:
        current = dict(obj.get("status") or {})
        try:
            ws = await asyncio.to_thread(self.workspace, name)
            await asyncio.to_thread(self.jobs.probe, ws)
            ok, message = True, "authenticated call succeeded"
        except DatabricksUnavailableError as exc:
            ok, message = False, str(exc)
        now = self.clock()
        generation = (obj.get("metadata") or {}).get("generation")
        reason = "ProbeSucceeded" if ok else "ProbeFailed"
        conditions = set_condition(
            current.get("conditions") or [], ConditionType.REACHABLE, ok, reason, message, generation, now
        )
        conditions = set_condition(conditions, ConditionType.READY, ok, reason, message, generation, now)
        active = sum(1 for run in self.runs.values() if run.workspace == name)
        desired = {
            "observedGeneration": generation,
            "conditions": conditions,
            "activeRuns": active,
            "message": "" if ok else message,
        }
        patch = status_patch(current, desired)
        if patch is not None:
            patch["lastProbeTime"] = timestamp(now)
            await asyncio.to_thread(self.cluster.patch_workspace_status, name, patch)
            self.cache.on_workspace({**obj, "status": {**current, **patch}}, deleted=False)
        return ok
