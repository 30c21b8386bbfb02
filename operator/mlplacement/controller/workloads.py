"""The workload controller: handlers hand it objects; it admits them and places them in batches.

Per-object work stays tiny (parse, verify, enqueue). One placement round takes every pending workload,
decides them together on one snapshot with decide_many, then writes children and status with bounded
concurrency, off the event loop. Status is written only when it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlplacement.api.audit import AuditAction
from mlplacement.api.constants import (
    ACTIVE_PHASES,
    ANNOTATION_CHECKPOINT_REQUESTED,
    FINALIZER,
    GROUP,
    LABEL_WORKLOAD_UID,
    LEGACY_FINALIZERS,
    ConditionType,
    Phase,
    PreemptReason,
    Reason,
)
from mlplacement.api.policy import Enforcement, PlacementPolicySpec
from mlplacement.api.workload import MLWorkload, MLWorkloadStatus, TargetKind, VerifiedStatus
from mlplacement.config import OperatorConfig
from mlplacement.controller.databricks import DatabricksRuns
from mlplacement.controller.edges import EdgeRuntime
from mlplacement.controller.pipelines import is_stage
from mlplacement.controller.policies import PolicyStatuses
from mlplacement.controller.pool import PoolRuntime
from mlplacement.controller.ports import (
    ApplyError,
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
from mlplacement.controller.state import FleetCache, WorkloadIndex, object_key
from mlplacement.controller.sync import CacheSync
from mlplacement.core.audit import audit_record
from mlplacement.core.kinds import KINDS
from mlplacement.core.ledger import workload_uid
from mlplacement.core.placement import Decision, decide_many, request_from_workload
from mlplacement.core.placement.engine import recheck, target_product
from mlplacement.core.reconcile import (
    Admitted,
    PolicyCheck,
    Refusal,
    admission_view,
    admit,
    apply_failed_status,
    child_status,
    decision_status,
    verdict_horizon,
)
from mlplacement.core.scarcity import QuotaBook, Running, running_from
from mlplacement.core.signing import Verdict
from mlplacement.core.snapshot import Snapshot, Target
from mlplacement.core.status import (
    api_status,
    owned_status,
    placement_target,
    set_condition,
    status_patch,
    undecided,
    with_history,
)

log = logging.getLogger("mlplacement.controller")
Obj = Mapping[str, Any]
FINISHED_PHASES = (Phase.SUCCEEDED.value, Phase.FAILED.value)
MAX_BACKOFF_SECONDS = 300.0
CLEANUP_ATTEMPTS = 24  # x cleanup_poll_seconds: how long deletion waits for a Databricks run or an edge
CLEANUP_POLL_SECONDS = 5.0
# Failures that hold for every workload of the namespace: its others wait out the same backoff untried.
NAMESPACE_FAILURES = frozenset({"NamespaceTerminating", "NamespaceNotFound"})


def _admission_inputs(obj: Obj) -> tuple[Any, ...]:
    """What admission reads: identity, generation, signature annotations, spec (labels and status are not)."""
    view = admission_view(obj)
    meta = view["metadata"]
    return (meta.get("uid"), meta.get("generation"), meta.get("annotations"), view.get("spec"))


@dataclass
class Pending:
    obj: Obj
    admitted: Admitted
    attempts: int = 0
    not_before: float = 0.0
    fleet_version: int = -1
    failover: str = ""  # why the workload left its target; empty unless it is failing over
    avoid: frozenset[tuple[str, str]] = frozenset()  # targets its pods could not be scheduled on
    # The last apply failure: one Event per distinct failure, and a backoff that capacity news does not cut.
    failure: str = ""
    # The rule its current target now breaks (policy or target changed): Move places it elsewhere or stops it.
    violation: str = ""


@dataclass(frozen=True)
class Move:
    """Why a running workload is placed again, said when it is queued (not patched onto its record after)."""

    why: str
    avoid: frozenset[tuple[str, str]] | None = None  # targets to keep away from; None leaves what it had


@dataclass
class Eviction:
    """A preempted workload: its children stop at ``due`` (monotonic); then it waits to be placed again."""

    due: float
    uid: str
    status: Obj  # its status while it ran: where its children are
    back_off: bool = True  # a preempted workload waits its turn; a non-compliant one is placed again at once


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
        self.pending: dict[str, Pending] = {}
        self.statuses: dict[str, Obj] = {}  # last status we know of, per workload, to write only changes
        self.objects: dict[str, Obj] = {}  # key -> what admission reads of it, to re-admit on policy or key news
        self.workloads = WorkloadIndex(self.objects)  # uid -> workload, to map child events back
        self.fleet_version = 0
        self.unhealthy_since: dict[tuple[str, str], float] = {}  # target key -> monotonic time it went bad
        self.unschedulable_since: dict[str, float] = {}  # workload uid -> when its pods were first seen stuck
        self.interrupted_nodes: dict[str, str] = {}  # workload uid -> the reclaimed node it was told about
        self.prewarmer = Prewarmer(cluster, events, self.metrics)
        self.recurring: set[str] = set()  # keys of admitted workloads with intent.schedule
        # Target key -> what the rules read of it (region, GPU products, spot): a change re-checks its workloads.
        self._target_shapes: dict[tuple[str, str], tuple[object, ...]] = {}
        self._signals_seen: datetime | None = None  # the signals' updatedAt at the last round
        # Namespace -> (until, why): it refuses every child (being deleted); see _apply_failed.
        self.blocked_namespaces: dict[str, tuple[float, ApplyError]] = {}
        self._policy_check = PolicyCheck()
        self.finalizers: dict[str, tuple[str, ...]] = {}  # workload key -> metadata.finalizers last seen
        self.cleanups: dict[str, asyncio.Task[None]] = {}  # workload key -> its deletion's remote cleanup
        self.cleanup_poll_seconds = cleanup_poll_seconds
        self._readmit_later: set[str] = set()  # workloads whose child vanished: admitted again next round
        self.policy_of: dict[str, str] = {}  # workload key -> the policy it was admitted under
        # Workload key -> when its admission could stop holding with the time (see _watch_expiry); the heap
        # orders them, with entries an admission since has replaced left in it and skipped.
        self._horizons: dict[str, datetime] = {}
        self._horizon_heap: list[tuple[datetime, str]] = []
        self.preempted: dict[str, Eviction] = {}  # workload key -> when its children stop
        self._room_at: dict[str, float] = {}  # preemptor uid -> when its victims' children stop
        self._running: dict[str, tuple[tuple[Any, ...], Running]] = {}  # key -> (what it was built from, it)
        self.wakeup = asyncio.Event()
        self.last_round_at: float | None = None  # monotonic end of the last round: liveness reads it
        self._stopping = False
        self._round_done = asyncio.Event()
        self._writes = asyncio.Semaphore(config.write_concurrency)
        self.edges = (
            EdgeRuntime(
                config,
                cache,
                cluster,
                events,
                edges,
                statuses=lambda: self.statuses,
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
                self.statuses.get,
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
            self.finalizers.pop(key, None)
            self.forget(obj)
            return
        self.cache.on_workload_phase(obj, deleted=False)
        self.finalizers[key] = tuple(meta.get("finalizers") or ())
        if meta.get("deletionTimestamp"):
            if set(self.finalizers[key]) & {FINALIZER, *LEGACY_FINALIZERS} and key not in self.cleanups:
                self.cleanups[key] = asyncio.create_task(self._clean_up(key, obj))
            return
        known = self.objects.get(key)
        if known is not None and _admission_inputs(known) == _admission_inputs(obj):
            status = self.statuses.get(key) or {}
            if status.get("phase") in ACTIVE_PHASES:  # a finalizer that could not be added before
                target = placement_target(status) or {}
                await self._hold_for_cleanup(key, obj, str(target.get("kind") or ""))
            return
        await self.on_workload(obj)

    async def on_workload(self, obj: Obj, move: Move | None = None) -> Refusal | None:
        """Admit one MLWorkload (create, update, resume). A refusal is recorded now; admission enqueues, with
        ``move`` (why it leaves its target) on its queue record when it is being placed again."""
        key = object_key(obj)
        meta = obj.get("metadata") or {}
        known = self.objects.get(key)
        if key not in self.statuses or (known or {}).get("metadata", {}).get("uid") != meta.get("uid"):
            # Seed from the cluster once; from then on our own writes are newer than any watch copy.
            self.statuses[key] = owned_status(obj.get("status"))
        obj = admission_view(obj)  # all later work reads this much; the rest of the body is not kept
        self.objects[key] = obj
        if not self.sync.ready:
            return None  # kept, and admitted once the caches have synced (run)
        namespace = meta.get("namespace", "")
        signature = None
        if self.stages is not None and is_stage(obj):
            signature = self.stages(obj)
            if signature is None:
                return None  # its pipeline is not known yet after a start: admitted once it is (readmit)
        outcome = admit(
            obj,
            policies=self.cache.policies,
            keyring=self.cache.keyring,
            now=self.clock(),
            dependency_phases=self.cache.dependency_phases(namespace),
            policy_check=self._policy_check,
            signature=signature,
        )
        if isinstance(outcome, Refusal):
            self.pending.pop(key, None)
            self.policy_of.pop(key, None)
            running = self.statuses.get(key) or {}
            desired = outcome.status(running, meta.get("generation"), self.clock())
            if outcome.condition is ConditionType.VERIFIED and self._runs(running):
                # Whatever the policy says: what no longer verifies does not keep running.
                why = f"its authorization no longer holds ({outcome.reason.value}: {outcome.message})"
                self._schedule_stop(key, obj, running, why, Reason.AUTHORIZATION_LOST)
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
            return outcome
        self.workloads.remember(meta.get("uid", ""), key, outcome.workload)
        self.policy_of[key] = outcome.policy_name
        self._watch_expiry(key, obj, outcome.policy_name)
        if outcome.workload.spec.intent.schedule is not None:
            self.recurring.add(key)  # pre-warming looks at these only
        else:
            self.recurring.discard(key)
        if key in self.preempted:
            return None  # queued again once its children have stopped (evict_due)
        status = self.statuses[key]
        if status.get("observedGeneration") != meta.get("generation") and key not in self.pending:
            self._record(AuditAction.ADMITTED, obj, Reason.VERIFIED.value, f"signed by {outcome.key_id!r}", outcome)
        if status.get("observedGeneration") == meta.get("generation"):
            if status.get("phase") in FINISHED_PHASES:
                return None  # this generation ran to its end; only a spec change runs it again
            runtime = self._runtime(str((placement_target(status) or {}).get("kind") or ""))
            if runtime is not None and runtime.adopt(key, obj, outcome.workload, status):
                return None  # after a restart: follow what runs (a Databricks run), never start a second one
        previous = self.pending.get(key)
        if previous is not None and previous.obj.get("metadata", {}).get("generation") == meta.get("generation"):
            # Same intent re-admitted (a policy or key event): keep its backoff and what it learned.
            self.pending[key] = dataclasses.replace(previous, obj=obj, admitted=outcome)
        else:
            self.pending[key] = Pending(obj, outcome)
        if move is not None:
            queued = self.pending[key]
            self.pending[key] = dataclasses.replace(
                queued, failover=move.why, avoid=queued.avoid if move.avoid is None else move.avoid
            )
        self.wakeup.set()
        return None

    async def _hold_for_cleanup(self, key: str, obj: Obj, target_kind: str) -> None:
        """A workload runs outside this cluster: its deletion must wait for the remote cleanup.

        A failure here is not a failed placement (the work runs): it is logged and tried again on the
        workload's next watch event."""
        runtime = self._runtime(target_kind)
        if runtime is None or not runtime.remote_cleanup or FINALIZER in self.finalizers.get(key, ()):
            return
        meta = obj.get("metadata") or {}
        try:
            await asyncio.to_thread(self.cluster.add_workload_finalizer, meta.get("namespace", ""), meta["name"])
        except Exception as exc:
            log.warning("could not add the cleanup finalizer to %s: %s", key, exc)
            return
        self.finalizers[key] = (*self.finalizers.get(key, ()), FINALIZER)

    async def _clean_up(self, key: str, obj: Obj) -> None:
        """A deleted workload: cancel its Databricks run or remove its edge children, then let it go.

        Bounded: after CLEANUP_ATTEMPTS the finalizer is removed anyway with a Warning, so deletion never hangs
        on a workspace or an edge that is gone for good (an edge copy is removed if the edge ever returns).
        """
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta["name"]
        status = self.statuses.get(key) or owned_status(obj.get("status"))
        target = placement_target(status) or {}
        try:
            runtime = self._runtime(str(target.get("kind") or ""))
            for attempt in range(CLEANUP_ATTEMPTS + 1):
                if runtime is None or await self._cleaned(runtime, key, meta.get("uid", ""), status):
                    break
                if attempt == CLEANUP_ATTEMPTS:
                    self.events(obj, "Warning", "RemoteCleanupAbandoned", KINDS[runtime.kind].cleanup_abandoned)
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
            seen = self.finalizers.get(key, ())
            if finalizer in seen:
                await asyncio.to_thread(self.cluster.remove_workload_finalizer, namespace, name, seen, finalizer)
                self.finalizers[key] = tuple(f for f in seen if f != finalizer)

    def _watch_expiry(self, key: str, obj: Obj, policy_name: str) -> None:
        """Remember when the workload's admission could stop holding with the time alone (its signature or its
        policy's expires, a key's validity ends): it is admitted again then (readmit_expired)."""
        moments = [verdict_horizon(obj, self.cache.keyring, self.clock()), self._policy_check.until(policy_name)]
        found = [moment for moment in moments if moment is not None]
        if not found:
            self._horizons.pop(key, None)
            return
        at = min(found)
        if self._horizons.get(key) != at:
            self._horizons[key] = at
            heapq.heappush(self._horizon_heap, (at, key))

    async def readmit_expired(self) -> list[str]:
        """Admitted workloads whose signature, signing key or policy signature has run out since: admitted again,
        so what no longer verifies stops (AuthorizationLost) without waiting for an unrelated event."""
        now = self.clock()
        due = []
        while self._horizon_heap and self._horizon_heap[0][0] <= now:
            at, key = heapq.heappop(self._horizon_heap)
            if self._horizons.get(key) == at:  # else an older entry: admitted again since
                del self._horizons[key]
                due.append(key)
        await self.readmit(due)
        return due

    async def readmit_all(self) -> None:
        """Policies or trusted keys changed: every known workload goes through admission again."""
        await self.readmit(list(self.objects))

    async def readmit(self, keys: Iterable[str]) -> None:
        """These workloads go through admission again (what they are judged by changed)."""
        for key in keys:
            obj = self.objects.get(key)
            if obj is not None:
                await self.on_workload({**obj, "status": self.statuses.get(key) or {}})

    def forget(self, obj: Obj) -> None:
        key = object_key(obj)
        self.objects.pop(key, None)
        self.pending.pop(key, None)
        self.statuses.pop(key, None)
        self.policy_of.pop(key, None)
        self._horizons.pop(key, None)
        self.preempted.pop(key, None)
        self._running.pop(key, None)
        uid = (obj.get("metadata") or {}).get("uid", "")
        namespace, _, name = key.partition("/")
        self.metrics.hourly_cost(namespace, name, None)  # its series goes with it
        self.recurring.discard(key)
        self.workloads.forget(uid)
        self.unschedulable_since.pop(uid, None)
        if self.cache.ledger.release(uid):  # its children go with it (owner references)
            self.fleet_changed()

    async def sync_policies(self) -> None:
        """Each PlacementPolicy's Verified condition and the count of workloads admitted under it."""
        counts: dict[str, int] = {}
        for name in self.policy_of.values():
            counts[name] = counts.get(name, 0) + 1
        await self.policies.sync(counts)

    def fleet_changed(self) -> None:
        """Capacity or health moved: waiting workloads get another chance at once."""
        self.fleet_version += 1
        if any(p.attempts for p in self.pending.values()):
            self.wakeup.set()

    # --- the batch loop ---

    async def run(self) -> None:
        """Once the caches have synced: admit what the watches delivered meanwhile, then place pending workloads
        every interval, or sooner when woken; until cancelled or stopped."""
        await self.sync.wait()
        await self.readmit_all()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.config.placement_interval_seconds)
            self.wakeup.clear()
            if self._stopping:
                break
            # Each step fails on its own: a broken edge or workspace must never stop placement everywhere.
            steps = [
                *([self.edges.probe_due] if self.edges is not None else []),  # first: rounds see fresh health
                self.place_round,
                *([self.databricks.poll_due, self.databricks.probe_due] if self.databricks is not None else []),
            ]
            for step in steps:
                try:
                    await step()
                except Exception:
                    log.exception("%s failed; the next round tries again", step.__name__)
            self.last_round_at = self.monotonic()
        self._round_done.set()

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
        return True

    def _snapshot(self, now: datetime) -> Snapshot:
        full = self.cache.snapshot(now, self.databricks.active_runs() if self.databricks is not None else None)
        runnable = tuple(t for t in full.targets if t.kind in self.runtimes)
        return Snapshot(now=full.now, targets=runnable, signals=full.signals)

    def _due(self) -> list[Pending]:
        """Workloads to decide now: new ones, backoffs that ran out, and waiting ones when capacity moved.

        A workload whose children the cluster refused waits out its backoff whatever the fleet does: retrying
        it sooner cannot help and would claim capacity others could use."""
        now = self.monotonic()
        return [
            p
            for p in self.pending.values()
            if p.attempts == 0 or now >= p.not_before or (p.fleet_version != self.fleet_version and not p.failure)
        ]

    async def fail_over(self, snapshot: Snapshot) -> list[str]:
        """Workloads whose target has been unhealthy (or gone) past the grace period go back through placement."""
        now = self.monotonic()
        healthy = {t.key for t in snapshot.targets if t.healthy}
        for target_key in list(self.unhealthy_since):
            if target_key in healthy:
                del self.unhealthy_since[target_key]
        moved = []
        for key, status in list(self.statuses.items()):
            target = placement_target(status)
            if not target or status.get("phase") not in ACTIVE_PHASES or key in self.pending:
                continue
            target_key = (target["kind"], target["name"])
            # A stale edge copy is removed when the edge comes back (controller.edges).
            if target_key in healthy or not KINDS[TargetKind(target_key[0])].fails_over:
                continue
            since = self.unhealthy_since.setdefault(target_key, now)
            runtime = self._runtime(target_key[0])
            if runtime is None or now - since < runtime.failover_grace(target_key[1]) or key not in self.objects:
                continue
            why = runtime.unhealthy(target_key[1], now - since)
            obj = self.objects[key]
            if await self.on_workload({**obj, "status": status}, Move(why)) is None and key in self.pending:
                self.events(obj, "Warning", Reason.FAILING_OVER.value, f"{why}; placing the workload again")
                moved.append(key)
        return moved

    async def replace_unschedulable(self) -> list[str]:
        """Children whose pods the scheduler has refused past the grace period: a placement that failed.

        Their GPUs are released and the workload is placed again, avoiding that target (another may have room).
        """
        stuck = self.cache.unschedulable()
        now = self.monotonic()
        for uid in set(self.unschedulable_since) - set(stuck):
            del self.unschedulable_since[uid]
        moved = []
        for uid in [u for u, at in self._room_at.items() if at < now - self.config.unschedulable_grace_seconds]:
            del self._room_at[uid]
        for uid, (pool, message) in sorted(stuck.items()):
            workload = self.workloads.get(uid)
            if workload is None:
                continue
            key = f"{workload.metadata.namespace}/{workload.metadata.name}"
            status = self.statuses.get(key) or {}
            target = placement_target(status)
            if target and pool and pool != target.get("name"):
                # The pod of a child it has left (still being collected): says nothing of where it is now.
                self.unschedulable_since.pop(uid, None)
                continue
            # A preemptor's pods wait for its victims' children to stop: its clock starts when they do.
            since = max(self.unschedulable_since.setdefault(uid, now), self._room_at.get(uid, 0.0))
            if now - since < self.config.unschedulable_grace_seconds:
                continue
            if not target or status.get("phase") not in ACTIVE_PHASES or key in self.pending or key not in self.objects:
                continue
            del self.unschedulable_since[uid]
            self.cache.ledger.release(uid, give_up_target=True)
            self.fleet_changed()
            why = f"pods unschedulable on {target['kind']} {target['name']} for {now - since:.0f}s: {message}"
            obj = self.objects[key]
            self.events(obj, "Warning", Reason.UNSCHEDULABLE.value, f"{why}; placing the workload again")
            stuck_on = frozenset({(target["kind"], target["name"])})
            if await self.on_workload({**obj, "status": status}, Move(why, stuck_on)) is None and key in self.pending:
                moved.append(key)
        return moved

    def _workload_at(self, key: str) -> MLWorkload | None:
        uid = ((self.objects.get(key) or {}).get("metadata") or {}).get("uid")
        return self.workloads.get(uid) if uid else None

    def _policy_at(self, key: str) -> PlacementPolicySpec | None:
        """The verified policy an admitted workload is under, or None."""
        name = self.policy_of.get(key)
        obj = self.cache.policies.get(name) if name is not None else None
        if name is None or obj is None:
            return None
        verdict, spec = self._policy_check(name, obj, self.cache.keyring, self.clock())
        return spec if verdict.ok and isinstance(spec, PlacementPolicySpec) else None

    async def recheck_changed_targets(self, snapshot: Snapshot) -> list[str]:
        """Workloads running on a target whose region, GPU products or spot-ness changed (a relabelled pool)
        are admitted again, so the rules are checked against what the target is now. When the signals change
        (prices, preemption risk: budget and spot rules read them), every running workload is checked in
        memory and only those the rules no longer allow where they run are admitted again."""
        shapes: dict[tuple[str, str], tuple[object, ...]] = {
            t.key: (t.region, t.gpu_products, t.spot) for t in snapshot.targets
        }
        changed = {key for key, shape in shapes.items() if self._target_shapes.get(key, shape) != shape}
        self._target_shapes = shapes
        signals_at = snapshot.signals.updated_at if snapshot.signals is not None else None
        signals_changed = self._signals_seen is not None and signals_at != self._signals_seen
        self._signals_seen = signals_at
        requeued = []
        for key, status in sorted(self.statuses.items()) if changed or signals_changed else ():
            target = placement_target(status) or {}
            if not self._runs(status) or key not in self.objects or key in self.pending or key in self.preempted:
                continue
            where = (str(target.get("kind")), str(target.get("name")))
            if where not in changed and not self._breaks_rules(key, where, snapshot):
                continue
            await self.on_workload({**self.objects[key], "status": status})
            requeued.append(key)
        return requeued

    def _breaks_rules(self, key: str, where: tuple[str, str], snapshot: Snapshot) -> bool:
        workload, policy = self._workload_at(key), self._policy_at(key)
        if workload is None or policy is None:
            return False
        return recheck(request_from_workload(workload), policy, snapshot, where) is not None

    async def checkpoint_interrupted(self) -> list[str]:
        """Children's pods on a node about to be reclaimed (an interruption taint): told to checkpoint, and the
        workload placed again.

        The pod gets ANNOTATION_CHECKPOINT_REQUESTED at once (spot pods read their annotations through the
        downward API) and one Warning says where and why. The node has already left the snapshot, so the new
        decision keeps the pool only while its other nodes have room (the Job makes a new pod: a disruption
        is not a failure) and moves the workload otherwise. Once per workload and node.
        """
        found = self.cache.interrupted()
        for uid in set(self.interrupted_nodes) - set(found):
            del self.interrupted_nodes[uid]
        moved = []
        for uid, (pod_key, node, why) in sorted(found.items()):
            workload = self.workloads.get(uid)
            if workload is None or self.interrupted_nodes.get(uid) == node:
                continue
            key = f"{workload.metadata.namespace}/{workload.metadata.name}"
            status = self.statuses.get(key) or {}
            target = placement_target(status)
            if not target or status.get("phase") not in ACTIVE_PHASES or key not in self.objects:
                continue
            self.interrupted_nodes[uid] = node
            namespace, pod = pod_key.split("/", 1)
            request = {ANNOTATION_CHECKPOINT_REQUESTED: f"{self.clock():%Y-%m-%dT%H:%M:%SZ} {why}"}
            try:
                await asyncio.to_thread(self.cluster.annotate_pod, namespace, pod, request)
                told = f"asked pod {pod} to checkpoint"
            except Exception as exc:  # the drain's SIGTERM still comes; the move must not wait for this
                log.warning("could not annotate pod %s for checkpointing: %s", pod_key, exc)
                told = f"could not annotate pod {pod} ({type(exc).__name__}), its SIGTERM comes with the drain"
            self.metrics.interruption(str(target["kind"]), str(target["name"]))
            self.fleet_changed()
            where = f"node {node} of {target['kind']} {target['name']} is being reclaimed: {why}"
            obj = self.objects[key]
            self.events(obj, "Warning", Reason.INTERRUPTED.value, f"{where}; {told}; placing the workload again")
            self._record(AuditAction.INTERRUPTED, obj, Reason.INTERRUPTED.value, f"{where}; {told}", previous=target)
            queued = key in self.pending or await self.on_workload({**obj, "status": status}, Move(where)) is not None
            if not queued and key in self.pending:
                moved.append(key)
        return moved

    async def place_round(self) -> list[Decision]:
        """One round, in steps like Kueue's schedule(); only steps 1, 2 and 6 talk to the cluster.

        1. Policies: re-verify those whose inputs changed and write their status.
        2. Requeue: workloads whose child vanished, or whose pods stayed unschedulable past the grace period.
        3. Snapshot the fleet once (free capacity net of what the ledger holds) and fail over dead targets.
        4. Take the due workloads: a namespace that refuses every child holds its own back untried; a
           workload keeping its target is only brought to its revision; the rest are nominated.
        5. Decide the nominated together with decide_many, on the snapshot alone.
        6. Act and record: children, status and one Event per workload, with bounded concurrency.

        Nothing at all before the caches have synced: an empty cache is no evidence of anything.
        """
        if not self.sync.ready:
            return []
        now = self.clock()
        await self.sync_policies()  # 1
        if not self.statuses and not self.pending:
            return []
        started = time.perf_counter()
        await self._requeue()  # 2
        await self.evict_due()
        snapshot = self._snapshot(now)  # 3
        await self.fail_over(snapshot)
        await self.recheck_changed_targets(snapshot)
        if self.recurring or self.prewarmer.held:
            recurring = {key: self.statuses[key] for key in sorted(self.recurring) if key in self.statuses}
            await self.prewarmer.round(
                now, snapshot, recurring, self.objects, self._workload_at, self._policy_at, queued=self.pending
            )
        # Refreshed every round, idle or not: a gauge that only moves when work is due lies in quiet times.
        self.metrics.signals_age(snapshot.signals_age_seconds)
        self.metrics.target_health({t.key: t.healthy for t in snapshot.targets})
        due = self._due()  # 4
        if not due:
            return []
        blocked, staying, deciding, stopping = self._partition(due, snapshot)
        for item in stopping:
            await self._stop_noncompliant(item, f"{item.violation} (enforcement Stop)", now)
        policies: dict[str | None, PlacementPolicySpec] = {p.admitted.policy_name: p.admitted.policy for p in deciding}
        requests = [
            dataclasses.replace(p.admitted.request, policy=p.admitted.policy_name, avoid=p.avoid) for p in deciding
        ]
        by_key = {p.admitted.request.key: p for p in deciding}
        scarce = any(p.preemption.enabled or p.quotas for p in policies.values())
        teams = {r.key.partition("/")[0] for r in requests}
        # Workloads being decided again (moving) are requests now, not running work: never counted twice.
        running = self.running(snapshot, exclude=set(by_key)) if scarce or len(teams) > 1 else []
        decisions = decide_many(  # 5
            requests, policies, snapshot, running=running, namespace_labels=self.cache.namespace_labels
        )
        for decision in decisions:  # 6: victims first, so their status says who displaced them
            for victim in decision.preempts:
                await self._preempt(victim, decision, policies, now)
        await asyncio.gather(
            *(self._act(by_key[d.request.key], d, snapshot, now) for d in decisions),
            *(self._reapply(item, snapshot) for item in staying),
            *(self._apply_failed(item, "its namespace", failure, tried=False) for item, failure in blocked),
        )
        self.metrics.workloads_by_phase(self.phase_counts())
        if scarce:
            self._quota_metrics(policies, snapshot)
        self.metrics.round_finished(time.perf_counter() - started, len(decisions))
        return decisions

    # --- scarcity: what runs, preemption, quota metrics ---

    def running(self, snapshot: Snapshot, exclude: set[str] | frozenset[str] = frozenset()) -> list[Running]:
        """Every workload that holds capacity now, as quotas count and preemption may stop it. Built from the
        statuses the operator wrote and cached per (target, generation), so a round parses no model twice."""
        products = {t.key: target_product(t) for t in snapshot.targets}
        found: list[Running] = []
        for key, status in self.statuses.items():
            target = placement_target(status)
            if not target or status.get("phase") not in ACTIVE_PHASES or key in self.preempted or key in exclude:
                continue
            target_key = (str(target.get("kind")), str(target.get("name")))
            token = (target_key, status.get("observedGeneration"), status.get("estimatedHourlyCostUSD"))
            cached = self._running.get(key)
            if cached is not None and cached[0] == token:
                found.append(cached[1])
                continue
            uid = ((self.objects.get(key) or {}).get("metadata") or {}).get("uid", "")
            workload = self.workloads.get(uid)
            entry = running_from(workload, status, products) if workload is not None else None
            if entry is None:
                continue
            self._running[key] = (token, entry)
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
        obj = self.objects.get(victim.key)
        current = self.statuses.get(victim.key) or {}
        if obj is None or decision.chosen is None:
            return
        preemptor = decision.request
        policy = policies.get(preemptor.policy) or next(iter(policies.values()))
        grace = policy.preemption.grace_period_seconds
        target = decision.chosen.target
        why = "to take back its team's quota" if decision.preempt_reason is PreemptReason.RECLAIM_QUOTA else ""
        message = (
            f"preempted by {preemptor.key} (priority {preemptor.priority}) on {target.kind.value} {target.name}"
            f"{' ' + why if why else ''}; its children stop in {grace}s, then it waits to be placed again"
        )
        generation = (obj.get("metadata") or {}).get("generation")
        conditions = list(current.get("conditions") or [])
        for condition in (ConditionType.PLACED, ConditionType.READY):
            conditions = set_condition(conditions, condition, False, Reason.PREEMPTED, message, generation, now)
        status = {"observedGeneration": generation, "phase": Phase.WAITING.value, "conditions": conditions}
        if current.get("verified"):
            status["verified"] = current["verified"]
        uid = (obj.get("metadata") or {}).get("uid", "")
        self.preempted[victim.key] = Eviction(self.monotonic() + grace, uid, current)
        preemptor_uid = ((self.objects.get(preemptor.key) or {}).get("metadata") or {}).get("uid", "")
        self._room_at[preemptor_uid] = max(self._room_at.get(preemptor_uid, 0.0), self.monotonic() + grace)
        self.pending.pop(victim.key, None)
        self.metrics.preemption((decision.preempt_reason or PreemptReason.PRIORITY).value)
        await self._write_status(obj, status, event=("Warning", Reason.PREEMPTED.value, message))
        self._record(
            AuditAction.PREEMPTED,
            obj,
            Reason.PREEMPTED.value,
            message,
            previous=placement_target(current),
        )

    async def evict_due(self) -> None:
        """Preempted workloads whose grace period is over: stop their children, then queue them again."""
        now = self.monotonic()
        for key, eviction in list(self.preempted.items()):
            if now < eviction.due:
                continue
            target = placement_target(eviction.status) or {}
            runtime = self._runtime(str(target.get("kind") or ""))
            try:
                stopped = runtime is None or await runtime.stop(key, eviction.uid, eviction.status)
            except Exception as exc:  # tried again next round
                log.warning("could not stop preempted %s yet: %s", key, exc)
                continue
            if not stopped:
                continue
            del self.preempted[key]
            self._running.pop(key, None)
            if self.cache.ledger.release(eviction.uid):
                self.fleet_changed()
            if key in self.objects:
                await self.on_workload({**self.objects[key], "status": self.statuses.get(key) or {}})
                if key in self.pending and eviction.back_off:
                    self._back_off(self.pending[key])

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

    async def _requeue(self) -> None:
        await self.readmit_expired()
        for key in sorted(self._readmit_later):
            if key in self.objects:
                await self.on_workload({**self.objects[key], "status": self.statuses.get(key) or {}})
        self._readmit_later.clear()
        await self.replace_unschedulable()
        await self.checkpoint_interrupted()

    def _partition(
        self, due: list[Pending], snapshot: Snapshot
    ) -> tuple[list[tuple[Pending, ApplyError]], list[Pending], list[Pending], list[Pending]]:
        """(held back by their namespace, keeping their target, to decide, to stop first)."""
        blocked: list[tuple[Pending, ApplyError]] = []
        staying: list[Pending] = []
        deciding: list[Pending] = []
        stopping: list[Pending] = []
        for item in due:
            failure = self._namespace_failure(item)
            if failure is not None:
                blocked.append((item, failure))
                continue
            route = self._route(item, snapshot)
            {"stay": staying, "decide": deciding, "stop": stopping}[route].append(item)
        return blocked, staying, deciding, stopping

    def _route(self, item: Pending, snapshot: Snapshot) -> str:
        """A placed workload keeps its target across a spec or policy change while the rules still allow it
        there; when they no longer do, the policy's enforcement says: move it (decide), stop it, or warn."""
        status = self.statuses.get(object_key(item.obj)) or {}
        target = placement_target(status)
        if not target or status.get("phase") not in ACTIVE_PHASES or item.failover or item.failure:
            return "decide"
        reason = recheck(item.admitted.request, item.admitted.policy, snapshot, (target["kind"], target["name"]))
        if reason is None:
            return "stay"
        item.violation = f"{target['kind']} {target['name']}: {reason}"
        enforcement = item.admitted.policy.enforcement
        self.metrics.compliance(enforcement.value)
        if enforcement is Enforcement.WARN:
            message = f"{item.violation}; left running (enforcement Warn)"
            self.events(item.obj, "Warning", Reason.POLICY_VIOLATION.value, message)
            self._record(AuditAction.WARNED, item.obj, Reason.POLICY_VIOLATION.value, message, item.admitted)
            return "stay"
        if enforcement is Enforcement.STOP:
            return "stop"
        self.events(
            item.obj, "Warning", Reason.POLICY_VIOLATION.value, f"{item.violation}; moving it (enforcement Move)"
        )
        return "decide"

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

    def _runs(self, status: Obj) -> bool:
        return bool(placement_target(status)) and status.get("phase") in ACTIVE_PHASES

    def _schedule_stop(self, key: str, obj: Obj, status: Obj, why: str, reason: Reason) -> None:
        """Its children stop at the start of the next round (evict_due, retried until they have); then it is
        admitted again and waits to be placed where the rules allow, if anywhere."""
        uid = (obj.get("metadata") or {}).get("uid", "")
        self.preempted[key] = Eviction(self.monotonic(), uid, status, back_off=False)
        self.pending.pop(key, None)
        self.events(obj, "Warning", reason.value, f"{why}; stopping its children")
        previous = placement_target(status)
        self._record(AuditAction.STOPPED, obj, reason.value, f"{why}; stopping its children", previous=previous)
        self.wakeup.set()

    async def _stop_noncompliant(self, item: Pending, why: str, now: datetime) -> None:
        """Stop what runs where the rules no longer allow it: Waiting (not placed) and Compliant=False now, its
        children at the start of the next round; then it is placed again like any waiting workload."""
        key = object_key(item.obj)
        current = self.statuses.get(key) or {}
        self._schedule_stop(key, item.obj, current, why, Reason.POLICY_VIOLATION)
        generation = item.admitted.workload.metadata.generation
        message = f"{why}; its children are stopped"
        conditions = list(current.get("conditions") or [])
        for condition in (ConditionType.PLACED, ConditionType.READY, ConditionType.COMPLIANT):
            conditions = set_condition(conditions, condition, False, Reason.POLICY_VIOLATION, message, generation, now)
        await self._write_status(
            item.obj,
            {**current, "phase": Phase.WAITING.value, "observedGeneration": generation, "conditions": conditions},
        )

    async def _reapply(self, item: Pending, snapshot: Snapshot) -> None:
        """Same target, maybe a new generation: update the child in place and record the verification."""
        key = object_key(item.obj)
        self.pending.pop(key, None)
        status = self.statuses.get(key) or {}
        placement = status.get("placement") or {}
        snapshot_target = next(
            (t for t in snapshot.targets if t.key == (placement["target"]["kind"], placement["target"]["name"])),
            None,
        )
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
        compliance = self._compliance(status, item, None)
        if compliance is not None:
            desired["conditions"] = compliance
        await self._write_status(item.obj, desired)

    def _compliance(self, status: Obj, item: Pending, moved_to: Target | None) -> list[dict[str, Any]] | None:
        """The conditions with Compliant set, when there is news: a violation (Warn leaves it running), or
        compliance again after a move or a new placement; None when nothing changes."""
        generation = item.admitted.workload.metadata.generation
        conditions = status.get("conditions") or []
        was = next((c for c in conditions if c.get("type") == ConditionType.COMPLIANT.value), None)
        if item.violation and moved_to is None:
            message = f"{item.violation}; left running (enforcement Warn)"
            return set_condition(
                conditions, ConditionType.COMPLIANT, False, Reason.POLICY_VIOLATION, message, generation, self.clock()
            )
        if moved_to is None or (was is None and not item.violation):
            return None
        message = f"runs on {moved_to.kind.value} {moved_to.name}, which the rules allow"
        if item.violation:
            message += f" (moved from {item.violation})"
        return set_condition(
            conditions, ConditionType.COMPLIANT, True, Reason.COMPLIANT, message, generation, self.clock()
        )

    async def _act(self, item: Pending, decision: Decision, snapshot: Snapshot, now: datetime) -> None:
        key = object_key(item.obj)
        status = decision_status(item.admitted, decision, self.statuses.get(key), now)
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
            compliance = self._compliance(self.statuses.get(key) or {}, item, decision.chosen.target)
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
                await self.runtimes[target.kind].run(
                    key, item.obj, item.admitted.workload, target, self.statuses.get(key) or {}
                )
                await self._hold_for_cleanup(key, item.obj, target.kind.value)
            except Exception as exc:
                await self._apply_failed(item, f"{target.kind.value} {target.name}", exc)
                return
            self.pending.pop(key, None)
            namespace, name = key.split("/", 1)
            self.metrics.hourly_cost(namespace, name, decision.chosen.hourly_cost_usd)
            before = placement_target(self.statuses.get(key)) or {}
            moved = bool(before) and (before.get("kind"), before.get("name")) != decision.chosen.target.key
            await self._write_status(item.obj, status, event=("Normal", "Placed", decision.message))
            self._record(
                AuditAction.MOVED if moved else AuditAction.PLACED,
                item.obj,
                "Placed",
                decision.message,
                item.admitted,
                decision,
                previous=before if moved else None,
                snapshot=snapshot,
            )
            return
        self._back_off(item)
        if status_patch(undecided(self.statuses.get(key)), undecided(status)) is None:
            return  # still waiting for the same reason: nothing new to write or announce
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

    def _namespace_failure(self, item: Pending) -> ApplyError | None:
        """The failure a workload's namespace is known to give every child (being deleted, gone), if any."""
        return self._held_back((item.obj.get("metadata") or {}).get("namespace", ""))

    def _held_back(self, namespace: str) -> ApplyError | None:
        blocked = self.blocked_namespaces.get(namespace)
        if blocked is None:
            return None
        if self.monotonic() >= blocked[0]:
            del self.blocked_namespaces[namespace]
            return None
        return blocked[1]

    async def _apply_failed(self, item: Pending, where: str, exc: Exception, tried: bool = True) -> None:
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
        status = apply_failed_status(item.admitted, where, text, self.statuses.get(key), self.clock())
        event = (
            None
            if repeated
            else ("Warning", Reason.APPLY_FAILED.value, f"could not create the children on {where}: {text}")
        )
        try:
            await self._write_status(item.obj, status, event=event)
        except Exception as write_error:  # the status write may fail for the same reason: retried with the backoff
            log.warning("could not record the failure of %s: %s", key, type(write_error).__name__)

    def _back_off(self, item: Pending) -> None:
        item.attempts += 1
        backoff = min(MAX_BACKOFF_SECONDS, self.config.retry_backoff_seconds * 2 ** (item.attempts - 1))
        item.not_before = self.monotonic() + backoff
        item.fleet_version = self.fleet_version

    def phase_counts(self) -> dict[str, int]:
        counts = {phase.value: 0 for phase in Phase}
        for status in self.statuses.values():
            phase = status.get("phase")
            if phase in counts:
                counts[phase] += 1
        return counts

    def _runtime(self, kind: str) -> Runtime | None:
        return next((runtime for runtime in self.runtimes.values() if runtime.kind.value == kind), None)

    async def _write_status(self, obj: Obj, desired: Obj, event: tuple[str, str, str] | None = None) -> bool:
        key = object_key(obj)
        patch = status_patch(self.statuses.get(key), desired)
        if patch is None:
            return False
        meta = obj.get("metadata") or {}
        owned = with_history(self.statuses.get(key), {**(self.statuses.get(key) or {}), **patch}, self.clock())
        async with self._writes:
            await asyncio.to_thread(self.cluster.apply_workload_status, meta.get("namespace", ""), meta["name"], owned)
        self.statuses[key] = owned
        if "phase" in patch:
            self.cache.set_phase(meta.get("namespace", ""), meta["name"], str(patch["phase"]))
            if patch["phase"] not in ACTIVE_PHASES:  # costs nothing while nothing runs
                self.metrics.hourly_cost(meta.get("namespace", ""), meta["name"], None)
        if event is not None:
            self.events(obj, *event)
        return True

    # --- children report back ---

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
        if key in self.objects and key not in self.pending:
            self._readmit_later.add(key)
            self.wakeup.set()

    def _child_gone(self, uid: str) -> None:
        """Drift seen on the watch: an active workload lost its child (not a finished Job) -> apply it again."""
        workload = self.workloads.get(uid)
        if workload is None:
            return
        key = f"{workload.metadata.namespace}/{workload.metadata.name}"
        status = self.statuses.get(key) or {}
        target = placement_target(status) or {}
        active = status.get("phase") in ACTIVE_PHASES and target.get("kind") == TargetKind.GPU_POOL.value
        if active and key in self.objects and key not in self.pending:
            self._readmit_later.add(key)
            self.wakeup.set()

    async def on_child(self, child: Obj) -> bool:
        """A Job or Deployment we own changed: reflect it in the workload's status (only if that changes)."""
        uid = ((child.get("metadata") or {}).get("labels") or {}).get(LABEL_WORKLOAD_UID)
        workload = self.workloads.get(uid or "")
        if workload is None:
            return False
        meta = workload.metadata
        obj = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "MLWorkload",
            "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid},
        }
        desired = child_status(workload, child, self.statuses.get(object_key(obj)), self.clock())
        if desired is None:
            return False
        phase = desired.get("phase", "")
        reason = (
            "Succeeded" if phase == Phase.SUCCEEDED.value else ("Failed" if phase == Phase.FAILED.value else "Running")
        )
        return await self._write_status(
            obj,
            desired,
            event=("Warning" if reason == "Failed" else "Normal", reason, f"{child.get('kind')} {phase.lower()}"),
        )
