"""The workload controller: handlers hand it objects; it admits them and applies each round's plan.

Per-object work stays tiny (parse, verify, enqueue into the workload's record). A placement round plans on the
records and one snapshot (core.round.plan_round, pure), then this executor applies the plan through the Runtimes
and writes status with bounded concurrency, off the event loop; it decides nothing. Status is written only when
it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from mlplacement.api.audit import AuditAction
from mlplacement.api.constants import (
    ACTIVE_PHASES,
    ANNOTATION_CHECKPOINT_REQUESTED,
    ANNOTATION_TARGET,
    FINALIZER,
    GROUP,
    LABEL_WORKLOAD_UID,
    LEGACY_FINALIZERS,
    ConditionType,
    Phase,
    PreemptReason,
    Reason,
)
from mlplacement.api.errors import ApplyError
from mlplacement.api.policy import Enforcement, PlacementPolicySpec
from mlplacement.api.workload import MLWorkload, MLWorkloadStatus, TargetKind, VerifiedStatus
from mlplacement.config import OperatorConfig
from mlplacement.controller.databricks import DatabricksRuns
from mlplacement.controller.edges import EdgeRuntime
from mlplacement.controller.pipelines import is_stage
from mlplacement.controller.placed_events import PlacedEvents
from mlplacement.controller.policies import PolicyStatuses
from mlplacement.controller.pool import PoolRuntime
from mlplacement.controller.ports import (
    AuditSink,
    Cluster,
    DatabricksJobs,
    EdgeClusters,
    EventSink,
    Metrics,
    NoMetrics,
)
from mlplacement.controller.prewarm import Prewarmer
from mlplacement.controller.runtimes import Runtime
from mlplacement.controller.slots import Order, WriteSlots, ordered
from mlplacement.controller.state import FleetCache, WorkloadIndex, object_key
from mlplacement.controller.sync import CacheSync
from mlplacement.core.audit import audit_record
from mlplacement.core.counterfactual import counterfactuals
from mlplacement.core.counterfactual import summary as would_fit_summary
from mlplacement.core.kinds import KINDS
from mlplacement.core.learned import after_run, job_times
from mlplacement.core.ledger import workload_uid
from mlplacement.core.placement import Decision, PlacementRequest, request_from_workload
from mlplacement.core.placement.engine import target_product
from mlplacement.core.reconcile import (
    Admitted,
    PolicyCheck,
    Refusal,
    admission_view,
    admit,
    apply_failed_status,
    child_status,
    compliance_conditions,
    decision_status,
    verdict_horizon,
)
from mlplacement.core.records import Eviction, Queued, Records, WorkloadRecord
from mlplacement.core.round import MoveCause, RoundInputs, RoundMemory, RoundPlan, Route, Routed, plan_round
from mlplacement.core.scarcity import QuotaBook, Running, running_from
from mlplacement.core.signing import Verdict
from mlplacement.core.snapshot import Snapshot
from mlplacement.core.status import (
    api_status,
    owned_status,
    placement_target,
    set_condition,
    status_patch,
    undecided,
    with_history,
    with_would_fit,
)

log = logging.getLogger("mlplacement.controller")
Obj = Mapping[str, Any]
FINISHED_PHASES = (Phase.SUCCEEDED.value, Phase.FAILED.value)
MAX_BACKOFF_SECONDS = 300.0
CLEANUP_ATTEMPTS = 24  # x cleanup_poll_seconds: how long deletion waits for a Databricks run or an edge
CLEANUP_POLL_SECONDS = 5.0
# The Event a child's new phase brings (severity, reason); any other phase says it runs.
CHILD_EVENTS: Mapping[str, tuple[str, Reason]] = {
    Phase.SUCCEEDED.value: ("Normal", Reason.SUCCEEDED),
    Phase.FAILED.value: ("Warning", Reason.FAILED),
}
# Failures that hold for every workload of the namespace: its others wait out the same backoff untried.
NAMESPACE_FAILURES = frozenset({"NamespaceTerminating", "NamespaceNotFound"})
# After a start, settled workloads are admitted again this many per round (run).
READMIT_CHUNK = 1000
# Waiting workloads a round works out what would make them fit for (each a few engine calls; only those whose
# status is written anyway). The rest say it the next time their message changes.
WOULD_FIT_PER_ROUND = 20
# Plans written in the background at once (RoundPlan.overlaps): one being written while the next is planned and
# started. A round that would start a third waits for the oldest to land, so a backlog cannot pile up writes.
PLANS_IN_FLIGHT = 2


@dataclasses.dataclass
class _Hints:
    """What one plan's waiting workloads are told would make them fit: a budget, and what runs, walked once."""

    budget: int = WOULD_FIT_PER_ROUND
    running: list[Running] | None = None


def _settled(record: WorkloadRecord) -> bool:
    """Verified and placed (or finished) at its current generation, as its status says."""
    status = record.status
    return (
        record.obj is not None
        and bool(status.get("verified"))
        and status.get("observedGeneration") == record.generation
        and status.get("phase") in (*ACTIVE_PHASES, *FINISHED_PHASES)
    )


async def _in_order(order: Order, write: Awaitable[None]) -> None:
    with ordered(order):
        await write


def _generation(obj: Obj) -> Any:
    return (obj.get("metadata") or {}).get("generation")


def _admission_inputs(obj: Obj) -> tuple[Any, ...]:
    """What admission reads: identity, generation, signature annotations, spec (labels and status are not)."""
    view = admission_view(obj)
    meta = view["metadata"]
    return (meta.get("uid"), meta.get("generation"), meta.get("annotations"), view.get("spec"))


class WorkloadController:
    def __init__(
        self,
        config: OperatorConfig,
        cache: FleetCache,
        cluster: Cluster,
        events: EventSink,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        jobs: DatabricksJobs | None = None,
        edges: EdgeClusters | None = None,
        cleanup_poll_seconds: float = CLEANUP_POLL_SECONDS,
        audit: AuditSink | None = None,
        sync: CacheSync | None = None,
    ) -> None:
        self.config = config
        self.audit: AuditSink = audit or (lambda record: None)
        # Nothing is admitted, refused, stopped or placed before every cache a decision reads has listed.
        self.sync = sync or CacheSync.already()
        # The signature gate of pipeline stages (PipelineController.stage_verdict); without it a stage workload
        # needs a signature of its own, which it never has: fail closed.
        self.stages: Callable[[Obj], Verdict | Refusal | None] | None = None
        self.actor = config.pod_name or socket.gethostname()
        self.cache = cache
        self.cluster = cluster
        self.events = events
        self.metrics = metrics or NoMetrics()
        self.clock = clock
        self.monotonic = monotonic
        # Every workload's facts in one record (core.records); what follows is per round, target or namespace.
        self.records = Records()
        self.workloads = WorkloadIndex(self.records.views())  # uid -> workload, to map child events back
        self.fleet_version = 0
        # Some queued workload has been tried (and waits): capacity news wakes the loop for it. Set by a backoff,
        # recounted after each round.
        self._backed_off = False
        # Plans still being written (RoundPlan.overlaps), and their workloads: key -> what it holds once its
        # status lands (None: it waits). Quotas count those; preemption never picks them; no round decides them.
        self._applying: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, Running | None] = {}
        self._last_snapshot: Snapshot | None = None  # the last round's: what a finished run is judged against
        self.memory = RoundMemory()  # what one round leaves the next (core.round)
        self.prewarmer = Prewarmer(cluster, events, self.metrics)
        # Namespace -> (until, why): it refuses every child (being deleted); see _apply_failed.
        self.blocked_namespaces: dict[str, tuple[float, ApplyError]] = {}
        self._policy_check = PolicyCheck()
        self.cleanups: dict[str, asyncio.Task[None]] = {}  # workload key -> its deletion's remote cleanup
        self.cleanup_poll_seconds = cleanup_poll_seconds
        # Records by when their admission could stop holding (record.horizon), with entries an admission since
        # has replaced left in it and skipped.
        self._horizon_heap: list[tuple[datetime, str]] = []
        self._readmit_later: set[str] = set()  # workloads whose child vanished: admitted again next round
        self.wakeup = asyncio.Event()
        self.last_round_at: float | None = None  # monotonic end of the last round: liveness reads it
        self._stopping = False
        self._round_done = asyncio.Event()
        self._writes = WriteSlots(config.write_concurrency)
        self._write_rounds = itertools.count()  # a plan's writes wait by (this, the workload's place in the plan)
        self.placed_events = PlacedEvents(config.placed_events_per_second, monotonic)
        self.edges = (
            EdgeRuntime(
                config,
                cache,
                cluster,
                events,
                edges,
                statuses=self.records.statuses,
                workloads=lambda: self.workloads,
                on_child=self.on_child,
                fleet_changed=self.fleet_changed,
                copy_missing=self._copy_missing,
                clock=clock,
                monotonic=monotonic,
            )
            if edges is not None
            else None
        )
        self.databricks = (
            DatabricksRuns(
                config,
                cache,
                cluster,
                events,
                jobs,
                self._write_status,
                self.records.status_of,
                clock,
                monotonic,
                poll_seconds=config.databricks_poll_seconds,
            )
            if jobs is not None
            else None
        )
        self.pool = PoolRuntime(config, cache, cluster, self._writes, held_back=self._held_back)
        self.policies = PolicyStatuses(config, cache, cluster, events, self._writes, clock, monotonic)
        # The kinds this operator can run, each behind the one Runtime interface; Edge and Databricks join
        # when their adapter is given.
        self.runtimes: dict[TargetKind, Runtime] = {
            runtime.kind: runtime for runtime in (self.pool, self.edges, self.databricks) if runtime is not None
        }

    # --- per-object step: parse, verify, enqueue ---

    async def on_workload_event(self, event_type: str | None, obj: Obj) -> None:
        """Every watch event of an MLWorkload. Admission runs only when what it reads changed (new object, new
        generation, new signature annotations): the operator's own status writes come back here and cost nothing.
        """
        key = object_key(obj)
        meta = obj.get("metadata") or {}
        if event_type == "DELETED":
            self.cache.on_workload_phase(obj, deleted=True)
            self.forget(obj)
            return
        self.cache.on_workload_phase(obj, deleted=False)
        record = self.records.add(key)
        record.finalizers = tuple(meta.get("finalizers") or ())
        if meta.get("deletionTimestamp"):
            if set(record.finalizers) & {FINALIZER, *LEGACY_FINALIZERS} and key not in self.cleanups:
                self.cleanups[key] = asyncio.create_task(self._clean_up(key, obj))
            return
        if record.obj is not None and _admission_inputs(record.obj) == _admission_inputs(obj):
            if record.status.get("phase") in ACTIVE_PHASES:  # a finalizer that could not be added before
                target = record.target or {}
                await self._hold_for_cleanup(key, obj, str(target.get("kind") or ""))
            return
        await self.on_workload(obj)

    async def on_workload(self, obj: Obj) -> Refusal | None:
        """Admit one MLWorkload (create, update, resume). A refusal is recorded now; admission enqueues."""
        key = object_key(obj)
        meta = obj.get("metadata") or {}
        record = self.records.add(key)
        if record.obj is None or record.uid != meta.get("uid"):
            # Seed from the cluster once; from then on our own writes are newer than any watch copy.
            record.status = owned_status(obj.get("status"))
        record.obj = obj = admission_view(obj)  # all later work reads this much; the rest of the body is not kept
        if not self.sync.ready:
            return None  # kept, and admitted once the caches have synced (run)
        outcome = self._admit(record)
        if outcome is None:
            return None  # a stage whose pipeline is not known yet after a start: admitted once it is (readmit)
        if isinstance(outcome, Refusal):
            await self._refuse(record, outcome)
            return outcome
        self._accept(record, outcome)
        if record.eviction is not None:
            return None  # queued again once its children have stopped (evict_due)
        status = record.status
        if status.get("observedGeneration") != meta.get("generation") and record.queued is None:
            self._record(AuditAction.ADMITTED, obj, Reason.VERIFIED.value, f"signed by {outcome.key_id!r}", outcome)
        if status.get("observedGeneration") == meta.get("generation"):
            if status.get("phase") in FINISHED_PHASES:
                return None  # this generation ran to its end; only a spec change runs it again
            runtime = self._runtime(str((record.target or {}).get("kind") or ""))
            if runtime is not None and runtime.adopt(key, obj, outcome.workload, status):
                return None  # after a restart: follow what runs (a Databricks run), never start a second one
        previous = record.queued
        if previous is not None and previous.obj.get("metadata", {}).get("generation") == meta.get("generation"):
            # Same intent re-admitted (a policy or key event): keep its backoff and what it learned. A new entry,
            # not an edit: a round in flight keeps the one it decided.
            record.queued = dataclasses.replace(previous, obj=obj, admitted=outcome)
        else:
            record.queued = Queued(obj, outcome)
        self.wakeup.set()
        return None

    def _admit(self, record: WorkloadRecord) -> Admitted | Refusal | None:
        """Admission of what the record holds, decided on the caches alone (core.reconcile.admit); None for a
        pipeline stage whose pipeline is not known yet."""
        obj = record.obj or {}
        signature = None
        if self.stages is not None and is_stage(obj):
            signature = self.stages(obj)
            if signature is None:
                return None
        return admit(
            obj,
            policies=self.cache.policies,
            keyring=self.cache.keyring,
            now=self.clock(),
            dependency_phases=self.cache.dependency_phases(record.key.partition("/")[0]),
            policy_check=self._policy_check,
            signature=signature,
        )

    def _accept(self, record: WorkloadRecord, outcome: Admitted) -> None:
        """What an admission that holds teaches the record (its queue entry aside)."""
        meta = (record.obj or {}).get("metadata") or {}
        self.workloads.remember(meta.get("uid", ""), record.key, outcome.workload)
        record.policy = outcome.policy_name
        self._watch_expiry(record, outcome.policy_name)
        # Pre-warming looks at recurring workloads only.
        record.recurring = outcome.workload.spec.intent.schedule is not None

    async def _refuse(self, record: WorkloadRecord, outcome: Refusal) -> None:
        """A refusal: its status and Event; what ran under an authorization that no longer holds is stopped."""
        obj = record.obj or {}
        meta = obj.get("metadata") or {}
        record.queued = None
        record.policy = None
        running = record.status
        desired = outcome.status(running, meta.get("generation"), self.clock())
        if outcome.condition is ConditionType.VERIFIED and record.runs:
            # Whatever the policy says: what no longer verifies does not keep running.
            why = f"its authorization no longer holds ({outcome.reason.value}: {outcome.message})"
            self._schedule_stop(record, why, Reason.AUTHORIZATION_LOST)
            desired["conditions"] = set_condition(
                desired.get("conditions") or [],
                ConditionType.COMPLIANT,
                False,
                Reason.AUTHORIZATION_LOST,
                f"{why}; its children are stopped",
                meta.get("generation"),
                self.clock(),
            )
        if outcome.is_warning:
            self.metrics.refusal(outcome.reason.value)
        if await self._write_status(
            obj,
            desired,
            event=("Warning" if outcome.is_warning else "Normal", outcome.reason.value, outcome.message),
        ):
            self._record(AuditAction.REFUSED, obj, outcome.reason.value, outcome.message)

    async def _hold_for_cleanup(self, key: str, obj: Obj, target_kind: str) -> None:
        """A workload runs outside this cluster: its deletion must wait for the remote cleanup.

        A failure here is not a failed placement (the work runs): it is logged and tried again on the
        workload's next watch event."""
        runtime = self._runtime(target_kind)
        record = self.records.add(key)
        if runtime is None or not runtime.remote_cleanup or FINALIZER in record.finalizers:
            return
        meta = obj.get("metadata") or {}
        try:
            await asyncio.to_thread(self.cluster.add_workload_finalizer, meta.get("namespace", ""), meta["name"])
        except Exception as exc:
            log.warning("could not add the cleanup finalizer to %s: %s", key, exc)
            return
        record.finalizers = (*record.finalizers, FINALIZER)

    async def _clean_up(self, key: str, obj: Obj) -> None:
        """A deleted workload: cancel its Databricks run or remove its edge children, then let it go.

        Bounded: after CLEANUP_ATTEMPTS the finalizer is removed anyway with a Warning, so deletion never hangs
        on a workspace or an edge that is gone for good (an edge copy is removed if the edge ever returns).
        """
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta["name"]
        status = self.records.status_of(key) or owned_status(obj.get("status"))
        target = placement_target(status) or {}
        try:
            runtime = self._runtime(str(target.get("kind") or ""))
            for attempt in range(CLEANUP_ATTEMPTS + 1):
                if runtime is None or await self._cleaned(runtime, key, meta.get("uid", ""), status):
                    break
                if attempt == CLEANUP_ATTEMPTS:
                    abandoned = KINDS[runtime.kind].cleanup_abandoned
                    self.events(obj, "Warning", Reason.REMOTE_CLEANUP_ABANDONED.value, abandoned)
                    break
                await asyncio.sleep(self.cleanup_poll_seconds)  # the remote side needs time; nothing to wait on
            for attempt in range(CLEANUP_ATTEMPTS + 1):
                try:
                    await self._release(key, namespace, name)
                    break
                except Exception as exc:  # e.g. the list moved under the patch's test: the next event has it
                    log.warning("could not release %s (attempt %d): %s", key, attempt + 1, exc)
                    await asyncio.sleep(self.cleanup_poll_seconds)
        finally:
            self.cleanups.pop(key, None)

    @staticmethod
    async def _cleaned(runtime: Runtime, key: str, uid: str, status: Obj) -> bool:
        try:
            return await runtime.clean_up(key, uid, status)
        except Exception as exc:  # the workspace or edge failed to answer: tried again after the poll period
            log.warning("remote cleanup of %s not done yet: %s", key, exc)
            return False

    async def _release(self, key: str, namespace: str, name: str) -> None:
        """Remove the operator's finalizer, and one an older release left, from a deleted workload."""
        for finalizer in (FINALIZER, *LEGACY_FINALIZERS):
            record = self.records.get(key)
            seen = record.finalizers if record is not None else ()
            if finalizer in seen:
                await asyncio.to_thread(self.cluster.remove_workload_finalizer, namespace, name, seen, finalizer)
                if record is not None:
                    record.finalizers = tuple(f for f in seen if f != finalizer)

    def _watch_expiry(self, record: WorkloadRecord, policy_name: str) -> None:
        """Remember when the workload's admission could stop holding with the time alone (its signature or its
        policy's expires, a key's validity ends): it is admitted again then (readmit_expired)."""
        obj = record.obj or {}
        moments = [verdict_horizon(obj, self.cache.keyring, self.clock()), self._policy_check.until(policy_name)]
        found = [moment for moment in moments if moment is not None]
        if not found:
            record.horizon = None
            return
        at = min(found)
        if record.horizon != at:
            record.horizon = at
            heapq.heappush(self._horizon_heap, (at, record.key))

    async def readmit_expired(self) -> list[str]:
        """Admitted workloads whose signature, signing key or policy signature has run out since: admitted again,
        so what no longer verifies stops (AuthorizationLost) without waiting for an unrelated event."""
        now = self.clock()
        due = []
        while self._horizon_heap and self._horizon_heap[0][0] <= now:
            at, key = heapq.heappop(self._horizon_heap)
            record = self.records.get(key)
            if record is not None and record.horizon == at:  # else an older entry: admitted again since
                record.horizon = None
                due.append(key)
        await self.readmit(due)
        return due

    async def readmit_all(self) -> None:
        """Policies or trusted keys changed: every known workload goes through admission again."""
        await self.readmit(list(self.records))

    async def readmit(self, keys: Iterable[str]) -> None:
        """These workloads go through admission again (what they are judged by changed)."""
        for key in keys:
            record = self.records.get(key)
            if record is not None and record.obj is not None:
                await self.on_workload({**record.obj, "status": record.status})

    def forget(self, obj: Obj) -> None:
        key = object_key(obj)
        self.records.drop(key)
        uid = (obj.get("metadata") or {}).get("uid", "")
        namespace, _, name = key.partition("/")
        self.metrics.hourly_cost(namespace, name, None)  # its series goes with it
        self.workloads.forget(uid)
        if self.cache.ledger.release(uid):  # its children go with it (owner references)
            self.fleet_changed()

    async def sync_policies(self) -> None:
        """Each PlacementPolicy's Verified condition and the count of workloads admitted under it."""
        await self.policies.sync(self.records.index.policies)

    def fleet_changed(self) -> None:
        """Capacity or health moved: waiting workloads get another chance at once."""
        self.fleet_version += 1
        if self._backed_off:
            self.wakeup.set()

    # --- the batch loop ---

    async def run(self) -> None:
        """Once the caches have synced: admit what the watches delivered meanwhile, then place pending workloads
        every interval, or sooner when woken; until cancelled or stopped."""
        await self.sync.wait()
        # What waits to be decided is admitted before the first round; workloads settled where they run (their
        # children hold their capacity in the ledger already) are admitted again a chunk per round after it, so
        # a new leader with thousands settled places new work at once. Not when quotas or preemption count what
        # runs: then every workload is admitted before anything is decided.
        settled = [] if self._counts_running() else [k for k, r in self.records.items() if _settled(r)]
        skip = set(settled)
        await self.readmit([key for key in self.records if key not in skip])
        try:
            await self._loop(settled)
            await self.landed()
        finally:  # cancelled (the lease is lost): nothing of this leader's may still be writing
            for task in list(self._applying):
                task.cancel()
        self._round_done.set()

    async def _loop(self, settled: list[str]) -> None:
        while not self._stopping:
            if not settled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), timeout=self.config.placement_interval_seconds)
            self.wakeup.clear()
            if self._stopping:
                break
            # Each step fails on its own: a broken edge or workspace must never stop placement everywhere.
            steps = [
                *([self.edges.probe_due] if self.edges is not None else []),  # first: rounds see fresh health
                self.start_round,
                *([self.databricks.poll_due, self.databricks.probe_due] if self.databricks is not None else []),
            ]
            for step in steps:
                try:
                    await step()
                except Exception:
                    log.exception("%s failed; the next round tries again", step.__name__)
            if settled:
                chunk, settled = settled[:READMIT_CHUNK], settled[READMIT_CHUNK:]
                await self.readmit(chunk)
            self.last_round_at = self.monotonic()

    def _counts_running(self) -> bool:
        """Some policy has team quotas or preemption: what runs must be known before anything is decided."""
        for policy in self.cache.policies.values():
            spec = policy.get("spec") or {}
            if spec.get("quotas") or (spec.get("preemption") or {}).get("enabled"):
                return True
        return False

    async def stop(self, grace_seconds: float) -> bool:
        """No new round starts; the one in progress may finish its writes for up to ``grace_seconds``.

        True when it did. Otherwise the caller cancels it: every write is idempotent (server-side apply,
        deterministic child names, Databricks idempotency tokens), so the next leader redoes what was cut.
        """
        self._stopping = True
        self.wakeup.set()
        try:
            await asyncio.wait_for(self._round_done.wait(), timeout=grace_seconds)
        except TimeoutError:
            log.warning("the placement round did not finish within %.0fs of the stop", grace_seconds)
            return False
        self.placed_events.flush(self.cache.policies, self.events, force=True)  # what was still being counted
        return True

    def _snapshot(self, now: datetime) -> Snapshot:
        full = self.cache.snapshot(now, self.databricks.active_runs() if self.databricks is not None else None)
        runnable = tuple(t for t in full.targets if t.kind in self.runtimes)
        return Snapshot(now=full.now, targets=runnable, signals=full.signals)

    async def place_round(self) -> list[Decision]:
        """One round: admissions that are due, evictions whose grace is over, then one plan (core.round.plan_round)
        over the records and one snapshot, applied here. Only admission, eviction and the plan's application talk
        to the cluster; planning decides everything on the snapshot alone. Returns once the plan is written.

        Nothing at all before the caches have synced: an empty cache is no evidence of anything.
        """
        decisions = await self.start_round()
        await self.landed()
        return decisions

    async def start_round(self) -> list[Decision]:
        """place_round, except that a plan that only starts new work on GPU pools (RoundPlan.overlaps) is written
        in the background: the next round is planned meanwhile, with that capacity committed and those workloads
        left alone, so a workload created during a round's writes waits for a plan, not for the writes."""
        if not self.sync.ready:
            return []
        if len(self._applying) >= PLANS_IN_FLIGHT:
            await asyncio.wait(self._applying, return_when=asyncio.FIRST_COMPLETED)
        now = self.clock()
        await self.sync_policies()
        if not self.records:
            return []
        started = time.perf_counter()
        await self.readmit_expired()
        await self.readmit(sorted(self._readmit_later))
        self._readmit_later.clear()
        await self.evict_due()
        snapshot = self._last_snapshot = self._snapshot(now)
        monotonic = self.monotonic()
        for namespace in [ns for ns, (until, _) in self.blocked_namespaces.items() if monotonic >= until]:
            del self.blocked_namespaces[namespace]
        inputs = RoundInputs(
            monotonic=monotonic,
            fleet_version=self.fleet_version,
            unschedulable_grace=self.config.unschedulable_grace_seconds,
            unschedulable=self.cache.unschedulable(),
            interrupted=self.cache.interrupted(),
            blocked={namespace: failure for namespace, (_, failure) in self.blocked_namespaces.items()},
            namespace_labels=self.cache.namespace_labels,
            max_batch=self.config.max_batch,
            in_flight=frozenset(self._in_flight),
        )
        plan = plan_round(
            self.records,
            snapshot,
            inputs,
            self.memory,
            self.runtimes,
            admit=self._admit,
            running=lambda: self.running(snapshot),
            workload_uids=self.workloads.keys_by_uid,
            rules_of=self._rules_of,
        )
        self.memory = plan.memory
        planning = time.perf_counter() - started
        overlaps = plan.overlaps(self.records)
        if not overlaps:
            await self.landed()  # what earlier plans started is written before this one moves or stops anything
        await self._apply_moves(plan)
        recurring = {r.key: r.status for r in self.records.keyed(sorted(self.records.index.recurring))}
        if recurring or self.prewarmer.held:
            await self.prewarmer.round(
                now,
                snapshot,
                recurring,
                self.records.views(),
                self._workload_at,
                self._policy_at,
                queued=self.records.queued(),
            )
        # Refreshed every round, idle or not: a gauge that only moves when work is due lies in quiet times.
        self.metrics.signals_age(snapshot.signals_age_seconds)
        self.metrics.target_health({t.key: t.healthy for t in snapshot.targets})
        # The last of a burst's placements held back from their own Events are summarised by a quiet round.
        self.placed_events.flush(self.cache.policies, self.events)
        if not plan.routed and not plan.blocked:
            return []
        if plan.more:  # a backlog larger than one batch: the next round now, not an interval later
            self.wakeup.set()
        if overlaps:
            decided = self._hold_in_flight(plan, snapshot, now)
            task = asyncio.create_task(self._write_plan(plan, snapshot, now, started, planning, decided))
            self._applying.add(task)
            task.add_done_callback(self._applying.discard)
        else:
            await self._apply_placement(plan, snapshot, now)
            self._round_written(plan, snapshot, started, planning)
        return [decision for _, decision in plan.decisions]

    def _hold_in_flight(self, plan: RoundPlan, snapshot: Snapshot, now: datetime) -> dict[str, Obj]:
        """Before the first write of an overlapping plan: its GPUs are committed in the ledger and its workloads
        marked in flight, so a round planned meanwhile neither counts that capacity free nor decides them again.
        Returns the statuses its placements will write (workload key -> status), built once for both uses."""
        products = {t.key: target_product(t) for t in snapshot.targets}
        decided: dict[str, Obj] = {}
        for entry, decision in plan.decisions:
            key = entry.admitted.request.key
            held: Running | None = None
            if decision.chosen is not None:
                try:
                    self.pool.reserve(entry.obj, entry.admitted.workload, decision.chosen.target)
                except Exception:  # nothing to hold: the write fails the same way and says so in its status
                    log.debug("could not build the children of %s to reserve their capacity", key, exc_info=True)
                status = decided[key] = decision_status(entry.admitted, decision, self.records[key].status, now)
                found = running_from(entry.admitted.workload, status, products)
                held = dataclasses.replace(found, preemptible=False) if found is not None else None
            self._in_flight[key] = held
        return decided

    async def _write_plan(
        self,
        plan: RoundPlan,
        snapshot: Snapshot,
        now: datetime,
        started: float,
        planning: float,
        decided: Mapping[str, Obj],
    ) -> None:
        """An overlapping plan, written in the background; its workloads are no longer in flight once it lands."""
        try:
            await self._apply_placement(plan, snapshot, now, decided)
            self._round_written(plan, snapshot, started, planning)
        except Exception:
            log.exception("writing a placement round failed; the next round tries again")
        finally:
            for entry, _ in plan.decisions:
                self._in_flight.pop(entry.admitted.request.key, None)
        # A workload whose spec changed while its decision was being written is queued again: decide it now.
        for entry, _ in plan.decisions:
            queued = getattr(self.records.get(entry.admitted.request.key), "queued", None)
            if queued is not None and _generation(queued.obj) != _generation(entry.obj):
                self.wakeup.set()

    async def landed(self) -> None:
        """Every plan still being written in the background has landed."""
        while self._applying:
            await asyncio.wait(self._applying)

    def _round_written(self, plan: RoundPlan, snapshot: Snapshot, started: float, planning: float) -> None:
        self.metrics.workloads_by_phase(self.phase_counts())
        if plan.scarce:
            self._quota_metrics(plan.policies, snapshot)
        self._backed_off = any(q.attempts for q in self.records.queued().values())  # recount
        self.metrics.round_finished(time.perf_counter() - started, len(plan.decisions), planning)

    async def _apply_moves(self, plan: RoundPlan) -> None:
        """The plan's moves: clocks, checkpoint requests, freed claims, Events and audit, then the queue entries."""
        for key, since in plan.stuck_since.items():
            self.records[key].unschedulable_since = since
        for key, node in plan.told.items():
            self.records[key].interrupted_node = node
        for move in plan.moves:
            record = self.records[move.key]
            obj = record.obj or {}
            target = move.target
            if move.cause is MoveCause.UNSCHEDULABLE:
                self.cache.ledger.release(record.uid, give_up_target=True)
                self.fleet_changed()
                self.events(obj, "Warning", Reason.UNSCHEDULABLE.value, f"{move.why}; placing the workload again")
            elif move.cause is MoveCause.INTERRUPTED:
                told = await self._ask_checkpoint(move.pod, move.notice)
                self.metrics.interruption(str(target["kind"]), str(target["name"]))
                self.fleet_changed()
                message = f"{move.why}; {told}"
                self.events(obj, "Warning", Reason.INTERRUPTED.value, f"{message}; placing the workload again")
                self._record(AuditAction.INTERRUPTED, obj, Reason.INTERRUPTED.value, message, previous=target)
            if isinstance(move.outcome, Refusal):
                await self._refuse(record, move.outcome)
            elif isinstance(move.outcome, Queued):
                self._accept(record, move.outcome.admitted)
                record.queued = move.outcome
                if move.cause is MoveCause.FAILOVER:
                    self.events(obj, "Warning", Reason.FAILING_OVER.value, f"{move.why}; placing the workload again")

    async def _ask_checkpoint(self, pod_key: str, why: str) -> str:
        """The pod gets ANNOTATION_CHECKPOINT_REQUESTED at once (spot pods read their annotations through the
        downward API); what was done, in words."""
        namespace, pod = pod_key.split("/", 1)
        request = {ANNOTATION_CHECKPOINT_REQUESTED: f"{self.clock():%Y-%m-%dT%H:%M:%SZ} {why}"}
        try:
            await asyncio.to_thread(self.cluster.annotate_pod, namespace, pod, request)
            return f"asked pod {pod} to checkpoint"
        except Exception as exc:  # the drain's SIGTERM still comes; the move must not wait for this
            log.warning("could not annotate pod %s for checkpointing: %s", pod_key, exc)
            return f"could not annotate pod {pod} ({type(exc).__name__}), its SIGTERM comes with the drain"

    async def _apply_placement(
        self, plan: RoundPlan, snapshot: Snapshot, now: datetime, decided: Mapping[str, Obj] | None = None
    ) -> None:
        """The plan's routes and decisions: compliance news, stops, preemption victims first (so their status
        says who displaced them), then children and status, with bounded concurrency. ``decided`` holds the
        statuses built already for some placements (_hold_in_flight)."""
        decided = decided or {}
        hints = _Hints()
        for routed in plan.routed:
            if routed.violation:
                self._violation(routed)
        for routed in plan.route(Route.STOP):
            await self._stop_noncompliant(routed.entry, f"{routed.violation} (enforcement Stop)", now)
        for _, decision in plan.decisions:
            for victim in decision.preempts:
                await self._preempt(victim, decision, plan.policies, now)
        writes = [
            *(
                self._act(entry, decision, snapshot, now, hints, decided.get(entry.admitted.request.key))
                for entry, decision in plan.decisions
            ),
            *(self._reapply(routed.entry, snapshot) for routed in plan.route(Route.STAY)),
            *(self._apply_failed(entry, "its namespace", failure, tried=False) for entry, failure in plan.blocked),
        ]
        # Each workload's writes in the plan's order (controller.slots): its status right after its own child,
        # not after every other workload's child.
        round_ = next(self._write_rounds)
        await asyncio.gather(*(_in_order((round_, place), write) for place, write in enumerate(writes)))
        self.placed_events.flush(self.cache.policies, self.events)

    def _violation(self, routed: Routed) -> None:
        """A placed workload the rules no longer allow where it runs: counted, and said as its enforcement acts."""
        entry = routed.entry
        entry.violation = routed.violation
        enforcement = routed.enforcement or Enforcement.MOVE
        self.metrics.compliance(enforcement.value)
        if enforcement is Enforcement.WARN:
            message = f"{entry.violation}; left running (enforcement Warn)"
            self.events(entry.obj, "Warning", Reason.POLICY_VIOLATION.value, message)
            self._record(AuditAction.WARNED, entry.obj, Reason.POLICY_VIOLATION.value, message, entry.admitted)
        elif enforcement is Enforcement.MOVE:
            message = f"{entry.violation}; moving it (enforcement Move)"
            self.events(entry.obj, "Warning", Reason.POLICY_VIOLATION.value, message)

    def _workload_at(self, key: str) -> MLWorkload | None:
        record = self.records.get(key)
        return self.workloads.get(record.uid) if record is not None and record.uid else None

    def _policy_at(self, key: str) -> PlacementPolicySpec | None:
        """The verified policy an admitted workload is under, or None."""
        record = self.records.get(key)
        name = record.policy if record is not None else None
        obj = self.cache.policies.get(name) if name is not None else None
        if name is None or obj is None:
            return None
        verdict, spec = self._policy_check(name, obj, self.cache.keyring, self.clock())
        return spec if verdict.ok and isinstance(spec, PlacementPolicySpec) else None

    def _rules_of(self, record: WorkloadRecord) -> tuple[PlacementRequest, PlacementPolicySpec] | None:
        """An admitted workload's request and the verified policy it is under, for re-checking where it runs."""
        workload, policy = self._workload_at(record.key), self._policy_at(record.key)
        if workload is None or policy is None:
            return None
        return request_from_workload(workload), policy

    # --- scarcity: what runs, preemption, quota metrics ---

    def running(self, snapshot: Snapshot, exclude: set[str] | frozenset[str] = frozenset()) -> list[Running]:
        """Every workload that holds capacity now, as quotas count and preemption may stop it. Built from the
        statuses the operator wrote and cached per (target, generation), so a round parses no model twice."""
        products = {t.key: target_product(t) for t in snapshot.targets}
        found = [held for key, held in self._in_flight.items() if held is not None and key not in exclude]
        for key, record in self.records.items():
            if key in self._in_flight:
                continue
            status = record.status
            target = record.target
            if not target or status.get("phase") not in ACTIVE_PHASES or record.eviction is not None or key in exclude:
                continue
            target_key = (str(target.get("kind")), str(target.get("name")))
            token = (target_key, status.get("observedGeneration"), status.get("estimatedHourlyCostUSD"))
            if record.running is not None and record.running[0] == token:
                found.append(record.running[1])
                continue
            workload = self.workloads.get(record.uid)
            entry = running_from(workload, status, products) if workload is not None else None
            if entry is None:
                continue
            record.running = (token, entry)
            found.append(entry)
        return found

    async def _preempt(
        self,
        victim: Running,
        decision: Decision,
        policies: Mapping[str | None, PlacementPolicySpec],
        now: datetime,
    ) -> None:
        """Stop ``victim`` for the preemptor of ``decision``: Preempted now, its children after the grace period."""
        record = self.records.get(victim.key)
        if record is None or record.obj is None or decision.chosen is None:
            return
        obj, current = record.obj, record.status
        preemptor = decision.request
        policy = policies.get(preemptor.policy) or next(iter(policies.values()))
        grace = policy.preemption.grace_period_seconds
        target = decision.chosen.target
        why = "to take back its team's quota" if decision.preempt_reason is PreemptReason.RECLAIM_QUOTA else ""
        message = (
            f"preempted by {preemptor.key} (priority {preemptor.priority}) on {target.kind.value} {target.name}"
            f"{' ' + why if why else ''}; its children stop in {grace}s, then it waits to be placed again"
        )
        generation = record.generation
        conditions = list(current.get("conditions") or [])
        for condition in (ConditionType.PLACED, ConditionType.READY):
            conditions = set_condition(conditions, condition, False, Reason.PREEMPTED, message, generation, now)
        status = {"observedGeneration": generation, "phase": Phase.WAITING.value, "conditions": conditions}
        if current.get("verified"):
            status["verified"] = current["verified"]
        record.eviction = Eviction(self.monotonic() + grace, record.uid, current)
        preemptor_record = self.records.get(preemptor.key)
        if preemptor_record is not None:
            preemptor_record.room_at = max(preemptor_record.room_at, self.monotonic() + grace)
        record.queued = None
        self.metrics.preemption((decision.preempt_reason or PreemptReason.PRIORITY).value)
        await self._write_status(obj, status, event=("Warning", Reason.PREEMPTED.value, message))
        self._record(AuditAction.PREEMPTED, obj, Reason.PREEMPTED.value, message, previous=placement_target(current))

    async def evict_due(self) -> None:
        """Workloads being stopped whose grace period is over: stop their children, then queue them again."""
        now = self.monotonic()
        for record in self.records.keyed(self.records.index.evicting):
            key, eviction = record.key, record.eviction
            if eviction is None or now < eviction.due:
                continue
            target = placement_target(eviction.status) or {}
            runtime = self._runtime(str(target.get("kind") or ""))
            try:
                stopped = runtime is None or await runtime.stop(key, eviction.uid, eviction.status)
            except Exception as exc:  # tried again next round
                log.warning("could not stop %s yet: %s", key, exc)
                continue
            if not stopped:
                continue
            record.eviction = None
            record.running = None
            if self.cache.ledger.release(eviction.uid):
                self.fleet_changed()
            if record.obj is not None:
                await self.on_workload({**record.obj, "status": record.status})
                if record.queued is not None and eviction.back_off:
                    self._back_off(record.queued)

    def _quota_metrics(self, policies: Mapping[str | None, PlacementPolicySpec], snapshot: Snapshot) -> None:
        running = self.running(snapshot)
        for policy in policies.values():
            if not policy.quotas:
                continue
            book = QuotaBook(policy.quotas, self.cache.namespace_labels, running)
            for team in policy.quotas:
                usage = book.usage.get(team.name)
                self.metrics.quota_usage(team.name, "gpus", usage.gpus if usage else 0, team.nominal.gpus)
                self.metrics.quota_usage(
                    team.name, "hourly_cost_usd", usage.usd if usage else 0.0, team.nominal.hourly_cost_usd
                )

    def _record(
        self,
        action: AuditAction,
        obj: Obj,
        reason: str,
        message: str,
        admitted: Admitted | None = None,
        decision: Decision | None = None,
        previous: Obj | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        """One audit record (api.audit) for what was just done."""
        signals = snapshot.signals if snapshot is not None else None
        self.audit(
            audit_record(
                now=self.clock(),
                actor=self.actor,
                action=action,
                obj=obj,
                reason=reason,
                message=message,
                admitted=admitted,
                decision=decision,
                signals_updated_at=signals.updated_at if signals is not None else None,
                previous=previous,
            )
        )

    def _schedule_stop(self, record: WorkloadRecord, why: str, reason: Reason) -> None:
        """Its children stop at the start of the next round (evict_due, retried until they have); then it is
        admitted again and waits to be placed where the rules allow, if anywhere."""
        obj = record.obj or {}
        record.eviction = Eviction(self.monotonic(), record.uid, record.status, back_off=False)
        record.queued = None
        self.events(obj, "Warning", reason.value, f"{why}; stopping its children")
        previous = record.target
        self._record(AuditAction.STOPPED, obj, reason.value, f"{why}; stopping its children", previous=previous)
        self.wakeup.set()

    async def _stop_noncompliant(self, item: Queued, why: str, now: datetime) -> None:
        """Stop what runs where the rules no longer allow it: Waiting (not placed) and Compliant=False now, its
        children at the start of the next round; then it is placed again like any waiting workload."""
        record = self.records[object_key(item.obj)]
        current = record.status
        self._schedule_stop(record, why, Reason.POLICY_VIOLATION)
        generation = item.admitted.workload.metadata.generation
        message = f"{why}; its children are stopped"
        conditions = list(current.get("conditions") or [])
        for condition in (ConditionType.PLACED, ConditionType.READY, ConditionType.COMPLIANT):
            conditions = set_condition(conditions, condition, False, Reason.POLICY_VIOLATION, message, generation, now)
        await self._write_status(
            item.obj,
            {**current, "phase": Phase.WAITING.value, "observedGeneration": generation, "conditions": conditions},
        )

    async def _reapply(self, item: Queued, snapshot: Snapshot) -> None:
        """Same target, maybe a new generation: update the child in place and record the verification."""
        key = object_key(item.obj)
        record = self.records[key]
        record.queued = None
        status = record.status
        where = record.target or {}
        snapshot_target = next((t for t in snapshot.targets if t.key == (where["kind"], where["name"])), None)
        label, _, value = str(where.get("block") or "").partition("=")
        if snapshot_target is not None and value:  # a gang stays pinned to the block it was placed in
            snapshot_target = dataclasses.replace(snapshot_target, pin=(label, value))
        generation = (item.obj.get("metadata") or {}).get("generation")
        runtime = self.runtimes.get(snapshot_target.kind) if snapshot_target is not None else None
        workload = item.admitted.workload
        # Re-admitted with nothing new for what runs (a policy or key change, a restart): nothing is applied,
        # and status is written only if it changed.
        if snapshot_target is not None and runtime is not None:
            if not runtime.is_current(key, item.obj, workload, snapshot_target, status):
                try:
                    await runtime.run(key, item.obj, workload, snapshot_target, status)
                except Exception as exc:
                    await self._apply_failed(item, f"{snapshot_target.kind.value} {snapshot_target.name}", exc)
                    return
            await self._hold_for_cleanup(key, item.obj, snapshot_target.kind.value)
        verified = VerifiedStatus(
            key_id=item.admitted.key_id, digest=item.admitted.digest, policy_key_id=item.admitted.policy_key_id
        )
        desired = api_status(MLWorkloadStatus(observed_generation=generation, verified=verified))
        compliance = compliance_conditions(status, item.violation, None, generation, self.clock())
        if compliance is not None:
            desired["conditions"] = compliance
        await self._write_status(item.obj, desired)

    async def _act(
        self,
        item: Queued,
        decision: Decision,
        snapshot: Snapshot,
        now: datetime,
        hints: _Hints,
        decided: Obj | None = None,
    ) -> None:
        key = object_key(item.obj)
        record = self.records[key]
        status = dict(decided) if decided is not None else decision_status(item.admitted, decision, record.status, now)
        if item.failover:
            where = (
                f"moved to {decision.chosen.target.kind.value} {decision.chosen.target.name}"
                if decision.chosen
                else ("no other target fits yet")
            )
            status["conditions"] = set_condition(
                status["conditions"],
                ConditionType.DEGRADED,
                True,
                Reason.TARGET_UNHEALTHY,
                f"{item.failover}; {where}",
                item.admitted.workload.metadata.generation,
                now,
            )
        if decision.chosen is None and item.violation:
            # Move found no target the rules allow: what runs where it may not is stopped, not left running.
            await self._stop_noncompliant(item, f"{item.violation}; no target the rules allow fits", now)
            return
        if decision.chosen is not None:
            generation = item.admitted.workload.metadata.generation
            compliance = compliance_conditions(record.status, item.violation, decision.chosen.target, generation, now)
            if compliance is not None:
                status["conditions"] = [
                    *(c for c in status.get("conditions") or [] if c.get("type") != ConditionType.COMPLIANT.value),
                    *(c for c in compliance if c.get("type") == ConditionType.COMPLIANT.value),
                ]
        kind = decision.chosen.target.kind.value if decision.chosen else "none"
        self.metrics.decision(kind, "placed" if decision.placed else decision.reason.value)
        if decision.chosen is not None:
            target = decision.chosen.target
            try:
                await self.runtimes[target.kind].run(key, item.obj, item.admitted.workload, target, record.status)
                await self._hold_for_cleanup(key, item.obj, target.kind.value)
            except Exception as exc:
                await self._apply_failed(item, f"{target.kind.value} {target.name}", exc)
                return
            if record.queued is not None and _generation(record.queued.obj) == _generation(item.obj):
                record.queued = None  # this generation is placed; a newer one that came meanwhile stays queued
            namespace, name = key.split("/", 1)
            self.metrics.hourly_cost(namespace, name, decision.chosen.hourly_cost_usd)
            before = record.target or {}
            moved = bool(before) and (before.get("kind"), before.get("name")) != decision.chosen.target.key
            routine = not (before or item.failover or item.violation)
            event: tuple[str, str, str] | None = ("Normal", Reason.PLACED.value, decision.message)
            if routine and not self.placed_events.allow(record.policy or "", f"{target.kind.value} {target.name}"):
                event = None  # said in the round's summary (controller.placed_events)
            await self._write_status(item.obj, status, event=event)
            self._record(
                AuditAction.MOVED if moved else AuditAction.PLACED,
                item.obj,
                Reason.PLACED.value,
                decision.message,
                item.admitted,
                decision,
                previous=before if moved else None,
                snapshot=snapshot,
            )
            return
        self._back_off(item)
        if status_patch(undecided(record.status), undecided(status)) is None:
            return  # still waiting for the same reason: nothing new to write or announce
        # Written anyway: say what would make it fit now (a bounded number of engine calls, a bounded number of
        # workloads a round).
        if hints.budget > 0:
            hints.budget -= 1
            if hints.running is None:  # walked once a round, however many workloads are explained
                hints.running = self.running(snapshot)
            found = counterfactuals(decision.request, item.admitted.policy, snapshot, hints.running, decision)
            if found:
                status = with_would_fit(status, would_fit_summary(found), decision.reason.value)
        severity = "Normal" if decision.reason is Reason.WAITING_FOR_CAPACITY else "Warning"
        if await self._write_status(item.obj, status, event=(severity, decision.reason.value, decision.message)):
            self._record(
                AuditAction.WAITING,
                item.obj,
                decision.reason.value,
                decision.message,
                item.admitted,
                decision,
                snapshot=snapshot,
            )

    def _held_back(self, namespace: str) -> ApplyError | None:
        """The failure a namespace is known to give every child (being deleted, gone), while that holds."""
        blocked = self.blocked_namespaces.get(namespace)
        if blocked is None:
            return None
        if self.monotonic() >= blocked[0]:
            del self.blocked_namespaces[namespace]
            return None
        return blocked[1]

    async def _apply_failed(self, item: Queued, where: str, exc: Exception, tried: bool = True) -> None:
        """The cluster refused the children: Placed=False (ApplyFailed) with the server's words, capacity freed,
        one Warning per distinct failure, and a backoff of the workload's own. A namespace that refuses every
        child (being deleted) holds its other workloads back for as long, untried, so it cannot starve others."""
        failure = exc if isinstance(exc, ApplyError) else ApplyError(type(exc).__name__, "unexpected error")
        key = object_key(item.obj)
        namespace = key.split("/", 1)[0]
        tried = tried and failure is not (self.blocked_namespaces.get(namespace) or (0.0, None))[1]
        text = f"{failure.reason}: {failure.message}"
        if not tried:
            text = f"{failure.reason}: not tried, namespace {namespace} refused another child: {failure.message}"
        if tried:
            log.warning("could not create children of %s on %s: %s", key, where, text)
            self.metrics.apply_failure(failure.reason)
        if self.cache.ledger.release(item.admitted.workload.metadata.uid or ""):
            self.fleet_changed()
        # What this round's decisions claimed for it is free again: let the workloads that waited retry now.
        self.fleet_version += 1
        self.wakeup.set()
        repeated = text == item.failure
        item.failure = text
        self._back_off(item)
        if tried and failure.reason in NAMESPACE_FAILURES:
            self.blocked_namespaces[namespace] = (item.not_before, failure)
        status = apply_failed_status(item.admitted, where, text, self.records.status_of(key), self.clock())
        event = (
            None
            if repeated
            else ("Warning", Reason.APPLY_FAILED.value, f"could not create the children on {where}: {text}")
        )
        try:
            await self._write_status(item.obj, status, event=event)
        except Exception as write_error:  # the status write may fail for the same reason: retried with the backoff
            log.warning("could not record the failure of %s: %s", key, type(write_error).__name__)

    def _back_off(self, item: Queued) -> None:
        item.attempts += 1
        backoff = min(MAX_BACKOFF_SECONDS, self.config.retry_backoff_seconds * 2 ** (item.attempts - 1))
        item.not_before = self.monotonic() + backoff
        item.fleet_version = self.fleet_version
        self._backed_off = True

    def phase_counts(self) -> dict[str, int]:
        counted = self.records.index.phases
        return {phase.value: counted.get(phase.value, 0) for phase in Phase}

    def _runtime(self, kind: str) -> Runtime | None:
        return next((runtime for runtime in self.runtimes.values() if runtime.kind.value == kind), None)

    async def _write_status(self, obj: Obj, desired: Obj, event: tuple[str, str, str] | None = None) -> bool:
        key = object_key(obj)
        record = self.records.add(key)
        patch = status_patch(record.status, desired)
        if patch is None:
            return False
        meta = obj.get("metadata") or {}
        owned = with_history(record.status, {**record.status, **patch}, self.clock())
        async with self._writes:
            await asyncio.to_thread(self.cluster.apply_workload_status, meta.get("namespace", ""), meta["name"], owned)
        record.status = owned
        if "phase" in patch:
            self.cache.set_phase(meta.get("namespace", ""), meta["name"], str(patch["phase"]))
            if patch["phase"] not in ACTIVE_PHASES:  # costs nothing while nothing runs
                self.metrics.hourly_cost(meta.get("namespace", ""), meta["name"], None)
        if event is not None:
            self.events(obj, *event)
        return True

    # --- children report back ---

    def _learned(self, workload: MLWorkload, job: Obj, status: Obj) -> dict[str, Any] | None:
        """status.learned with this finished Job's run added (its work in reference GPU-hours), or None."""
        times = job_times(job)
        snapshot = self._last_snapshot
        if times is None or snapshot is None:
            return None
        where = str(((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TARGET) or "")
        kind, _, name = where.partition("/")
        target = next((t for t in snapshot.targets if t.key == (kind, name)), None)
        product = workload.spec.resources.gpu_product or (target_product(target) if target is not None else None)
        return after_run(status, request_from_workload(workload), *times, product, snapshot)

    def on_home_child(self, child: Obj, deleted: bool) -> None:
        """A child on this cluster, seen on the watch: the capacity ledger follows it (and is rebuilt from it)."""
        uid = workload_uid(child)
        before = self.cache.ledger.get(uid)
        self.cache.on_child(child, deleted)
        if self.cache.ledger.get(uid) != before:
            self.fleet_changed()
        if deleted and child.get("kind") in ("Job", "Deployment"):
            self._child_gone(uid)

    def _copy_missing(self, key: str) -> None:
        """An edge's listing lacks the copy of a workload placed there: apply it again next round."""
        record = self.records.get(key)
        if record is not None and record.obj is not None and record.queued is None:
            self._readmit_later.add(key)
            self.wakeup.set()

    def _child_gone(self, uid: str) -> None:
        """Drift seen on the watch: an active workload lost its home child (not a finished Job) -> apply it again.
        A Job or Deployment here is a pool's child; an edge's copy is missed by its probe (_copy_missing)."""
        key = self.workloads.keys_by_uid.get(uid)
        record = self.records.get(key) if key is not None else None
        if record is not None and record.runs and KINDS[TargetKind(str((record.target or {}).get("kind")))].home:
            self._copy_missing(record.key)

    async def on_child(self, child: Obj) -> bool:
        """A Job or Deployment we own changed: reflect it in the workload's status (only if that changes)."""
        uid = ((child.get("metadata") or {}).get("labels") or {}).get(LABEL_WORKLOAD_UID)
        workload = self.workloads.get(uid or "")
        known = self.records.index.by_uid.get(uid or "")
        if workload is None and known is not None and self.sync.ready:
            # Settled and not admitted again yet after a start (run): admitted now, so its child's news is kept.
            await self.readmit([known])
            workload = self.workloads.get(uid or "")
        if workload is None:
            return False
        meta = workload.metadata
        obj = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "MLWorkload",
            "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
        }
        current = self.records.status_of(object_key(obj)) or {}
        desired = child_status(workload, child, current, self.clock())
        if desired is None:
            return False
        phase = str(desired.get("phase", ""))
        if phase == Phase.SUCCEEDED.value and child.get("kind") == "Job" and current.get("phase") != phase:
            learned = self._learned(workload, child, current)
            if learned is not None:
                desired["learned"] = learned
        severity, reason = CHILD_EVENTS.get(phase, ("Normal", Reason.RUNNING))
        return await self._write_status(
            obj, desired, event=(severity, reason.value, f"{child.get('kind')} {phase.lower()}")
        )
