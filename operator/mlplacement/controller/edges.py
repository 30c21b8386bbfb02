"""Edge runtime: probe each EdgeCluster on its interval, run placed workloads there, bring their state home.

- Probing: credentials are read from the referenced Secret and allow-list parsed before any client exists;
  each cluster is probed on its own interval, concurrently and off the event loop. The live result goes to
  the snapshot at once; EdgeCluster status is written only when it changes meaningfully (core.edge).
- Running: the same children the GPU-pool runtime builds (core.manifests.build_children), without owner
  references (the owner lives in another cluster), with origin labels, applied to the edge namespace.
- After each good probe, one listing of our children on the edge serves two ends: those of workloads placed
  there go through the same status mapping as local children (status flows back), and those whose workload
  now runs elsewhere are deleted (a failover left them behind while the edge was unreachable). Children of
  workloads this operator does not know are deleted only after a grace period, so a restart never removes
  live work.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlplacement.api.constants import (
    ACTIVE_PHASES,
    ANNOTATION_ORIGIN,
    LABEL_HOME_CLUSTER,
    LABEL_WORKLOAD_UID,
    ConditionType,
)
from mlplacement.api.edge import EdgeClusterSpec
from mlplacement.api.workload import MLWorkload, TargetKind
from mlplacement.config import OperatorConfig
from mlplacement.controller.ports import Cluster, EdgeClusters, EventSink
from mlplacement.controller.state import FleetCache, object_key
from mlplacement.core.edge import ProbeResult, edge_status, worth_writing
from mlplacement.core.kubeconfig import KubeconfigError, RemoteCredentials, parse_kubeconfig
from mlplacement.core.ledger import child_commitment
from mlplacement.core.manifests import build_children, revision_annotations
from mlplacement.core.snapshot import Target
from mlplacement.core.status import get_condition, placement_target, status_patch

log = logging.getLogger("mlplacement.edge")
Obj = Mapping[str, Any]
# Children whose state is the workload's (a Service has none to report).
RUN_KINDS = ("Job", "Deployment")


class EdgeUnavailableError(RuntimeError):
    """The edge cluster cannot be used now (not registered, bad credentials, unreachable)."""


@dataclass
class EdgeState:
    next_probe: float = 0.0
    failures: int = 0
    placeable: bool = False
    credentials: tuple[str, RemoteCredentials | KubeconfigError, float] | None = None  # (secret data, parsed, read at)
    unknown_since: dict[str, float] = field(default_factory=dict)  # child uid -> when first seen unknown


def edge_spec(obj: Obj) -> EdgeClusterSpec:
    return EdgeClusterSpec.model_validate(obj.get("spec") or {})


def placed_on(status: Obj | None) -> tuple[str, str] | None:
    """(kind, name) of the target a workload status places it on, or None."""
    target = placement_target(status) or {}
    return (target["kind"], target["name"]) if target.get("kind") and target.get("name") else None


class EdgeRuntime:
    def __init__(
        self,
        config: OperatorConfig,
        cache: FleetCache,
        cluster: Cluster,
        events: EventSink,
        remote: EdgeClusters,
        statuses: Callable[[], Mapping[str, Obj]],
        workloads: Callable[[], Mapping[str, MLWorkload]],
        on_child: Callable[[Obj], Awaitable[bool]],
        fleet_changed: Callable[[], None],
        copy_missing: Callable[[str], None] = lambda key: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.cache = cache
        self.cluster = cluster
        self.events = events
        self.remote = remote
        self.statuses = statuses
        self.workloads = workloads
        self.on_child = on_child
        self.fleet_changed = fleet_changed
        self.copy_missing = copy_missing
        self.missing: set[str] = set()  # workload keys whose copy the last listing did not show
        self.clock = clock
        self.monotonic = monotonic
        self.state: dict[str, EdgeState] = {}
        self.written: dict[str, Obj] = {}  # name -> EdgeCluster status as last written
        self._probing = asyncio.Semaphore(config.write_concurrency)

    # --- credentials ---

    def credentials(self, name: str) -> RemoteCredentials:
        """The allow-list parsed kubeconfig of edge ``name``; re-read once per reload period."""
        obj = self.cache.edge_clusters.get(name)
        if obj is None:
            raise EdgeUnavailableError(f"EdgeCluster {name!r} is not registered")
        state = self.state.setdefault(name, EdgeState())
        ref = edge_spec(obj).credentials_secret_ref
        now = self.monotonic()
        cached = state.credentials
        if cached is None or now - cached[2] >= self.config.reload_seconds:
            data = self.cluster.read_secret_data(self.config.namespace, ref.name) or {}
            raw = data.get(ref.key, "")
            parsed: RemoteCredentials | KubeconfigError
            if not raw:
                parsed = KubeconfigError(f"Secret {self.config.namespace}/{ref.name} has no key {ref.key!r}")
            elif cached is not None and cached[0] == raw:
                parsed = cached[1]
            else:
                try:
                    parsed = parse_kubeconfig(base64.b64decode(raw, validate=True))
                except binascii.Error:
                    parsed = KubeconfigError(f"Secret key {ref.key!r} is not valid base64")
                except KubeconfigError as exc:
                    parsed = exc
            state.credentials = cached = (raw, parsed, now)
        if isinstance(cached[1], KubeconfigError):
            raise EdgeUnavailableError(str(cached[1]))
        return cached[1]

    # --- probing ---

    async def probe_due(self) -> None:
        """Probe every edge cluster whose interval has passed, concurrently."""
        now = self.monotonic()
        for name in set(self.state) - set(self.cache.edge_clusters):
            del self.state[name]
            self.written.pop(name, None)
            self.cache.edge_live.pop(name, None)
            self.cache.set_edge_bound(name, None)
            await asyncio.to_thread(self.remote.forget, name)
        due = [name for name in self.cache.edge_clusters if now >= self.state.setdefault(name, EdgeState()).next_probe]
        outcomes = await asyncio.gather(*(self.probe(name) for name in due), return_exceptions=True)
        for name, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, Exception):  # contained: that edge is unplaceable until a probe succeeds
                log.warning("probing EdgeCluster %s failed: %s", name, type(outcome).__name__)
                state = self.state[name]
                state.failures += 1
                obj = self.cache.edge_clusters.get(name) or {}
                current = self.written.get(name) or obj.get("status") or {}
                failed = ProbeResult(reachable=False, error=f"probe failed: {type(outcome).__name__}")
                generation = (obj.get("metadata") or {}).get("generation")
                self.cache.edge_live[name] = edge_status(current, failed, state.failures, self.clock(), generation)
                self.fleet_changed()

    async def probe(self, name: str) -> ProbeResult | None:
        obj = self.cache.edge_clusters[name]
        spec = edge_spec(obj)
        state = self.state.setdefault(name, EdgeState())
        state.next_probe = self.monotonic() + spec.probe.interval_seconds
        result: ProbeResult | None = None
        problem = ""
        async with self._probing:
            try:
                credentials = await asyncio.to_thread(self.credentials, name)
            except EdgeUnavailableError as exc:
                problem = str(exc)
            else:
                result = await asyncio.to_thread(self.remote.probe, name, credentials, spec.probe.timeout_seconds)
        state.failures = 0 if result is not None and result.reachable else state.failures + 1
        current = self.written.get(name) or obj.get("status") or {}
        generation = (obj.get("metadata") or {}).get("generation")
        desired = edge_status(current, result, state.failures, self.clock(), generation, problem)
        self.cache.edge_live[name] = desired
        if result is not None and result.reachable:
            self.cache.set_edge_bound(name, result.bound_by_workload)
        placeable = result is not None and result.placeable
        if placeable != state.placeable:
            state.placeable = placeable
            ready = get_condition(desired, ConditionType.READY) or {}
            if placeable:
                self.events(obj, "Normal", "EdgeReady", str(ready.get("message", "")))
            else:
                self.events(obj, "Warning", str(ready.get("reason", "NotReady")), str(ready.get("message", "")))
            self.fleet_changed()
        elif result is not None and result.placeable and current.get("gpusFree") != result.gpus_free:
            self.fleet_changed()
        if worth_writing(current, desired, spec.probe.interval_seconds):
            patch = status_patch(current, desired)
            if patch:
                try:
                    await asyncio.to_thread(self.cluster.patch_edge_status, name, patch)
                    self.written[name] = {**current, **patch}
                except Exception as exc:  # the next probe tries again
                    log.warning("could not write status of EdgeCluster %s: %s", name, type(exc).__name__)
        if result is not None and result.reachable:
            try:
                await self.reconcile(name, spec)
            except Exception as exc:  # the edge dropped mid-way: the next probe sees it
                log.warning("syncing edge cluster %s failed: %s", name, type(exc).__name__)
        return result

    # --- running ---

    def children_for(
        self, obj: Obj, workload: MLWorkload, target: Target, spec: EdgeClusterSpec
    ) -> list[dict[str, Any]]:
        meta = obj.get("metadata") or {}
        generation = meta.get("generation")
        return build_children(
            obj,
            workload.spec,
            target,
            pool_label_key=None,  # the edge cluster is the target: its scheduler picks the node
            namespace=spec.namespace,
            owned=False,
            extra_labels={LABEL_HOME_CLUSTER: self.config.cluster_name},
            extra_annotations={
                **revision_annotations(generation, target),
                ANNOTATION_ORIGIN: f"{self.config.cluster_name}/{object_key(obj)}",
            },
        )

    async def apply(self, obj: Obj, workload: MLWorkload, target: Target) -> None:
        """Create or bring in line the workload's children on edge ``target`` (raises when it cannot)."""
        edge = self.cache.edge_clusters.get(target.name)
        if edge is None:
            raise EdgeUnavailableError(f"EdgeCluster {target.name!r} is not registered")
        spec = edge_spec(edge)
        credentials = await asyncio.to_thread(self.credentials, target.name)
        children = self.children_for(obj, workload, target, spec)
        await asyncio.to_thread(self.remote.apply, target.name, credentials, children)
        # Held until the edge's probe sees the pods bound, the copy finishes, or the workload moves (core.ledger).
        self.cache.ledger.commit(workload.metadata.uid or "", child_commitment(children[0]))

    # --- the Runtime interface (controller.runtimes) ---

    kind = TargetKind.EDGE
    remote_cleanup = True  # the owner lives here, the copy there: deletion waits for the copy to go

    def adopt(self, key: str, obj: Obj, workload: MLWorkload, status: Obj) -> bool:
        return False  # the probe reads the copy back; a missing one is applied again

    def unhealthy(self, name: str, seconds: float) -> str:
        return f"EdgeCluster {name} has been unreachable or not Ready for {seconds:.0f}s"

    async def run(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> None:
        await self.apply(obj, workload, target)
        self.missing.discard(key)

    def is_current(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> bool:
        # The copy is read back on every good probe: a new generation, or a copy gone from the listing, needs
        # another apply.
        return status.get("observedGeneration") == workload.metadata.generation and key not in self.missing

    async def clean_up(self, key: str, uid: str, status: Obj) -> bool:
        return await self.delete_workload(key, uid, status)

    async def stop(self, key: str, uid: str, status: Obj) -> bool:
        return await self.delete_workload(key, uid, status)

    async def delete_workload(self, key: str, uid: str, status: Obj) -> bool:
        """Remove a deleted workload's children from its edge; True when done (or nothing is left to do)."""
        target = placed_on(status)
        edge = self.cache.edge_clusters.get(target[1]) if target is not None else None
        if target is None or target[0] != TargetKind.EDGE.value or edge is None:
            return True  # not on an edge, or the edge was unregistered: nothing we can reach
        name = target[1]
        spec = edge_spec(edge)
        try:
            credentials = await asyncio.to_thread(self.credentials, name)
            found = await asyncio.to_thread(
                self.remote.inventory, name, credentials, spec.namespace, f"{LABEL_WORKLOAD_UID}={uid}"
            )
            for child in found:
                meta = child.get("metadata") or {}
                await asyncio.to_thread(
                    self.remote.delete, name, credentials, spec.namespace, child["kind"], meta.get("name", "")
                )
        except Exception as exc:
            log.info("edge %s unreachable while deleting %s: %s", name, key, type(exc).__name__)
            return False
        return True

    # --- state coming home ---

    async def reconcile(self, name: str, spec: EdgeClusterSpec) -> None:
        """One listing of our children on edge ``name``: report those that run here, delete stale copies.

        A child whose workload now runs elsewhere is a copy a failover left behind. A child whose workload
        this operator does not know waits the cleanup grace first (after a restart the workloads arrive
        over a few seconds; a workload deleted while the edge was down never does).
        """
        state = self.state[name]
        credentials = await asyncio.to_thread(self.credentials, name)
        selector = f"{LABEL_HOME_CLUSTER}={self.config.cluster_name}"
        found = await asyncio.to_thread(self.remote.inventory, name, credentials, spec.namespace, selector)
        known = self.workloads()
        statuses = self.statuses()
        now = self.monotonic()
        seen_unknown = set()
        here: set[str] = set()  # keys of workloads whose copy runs on this edge
        for child in found:
            meta = child.get("metadata") or {}
            uid = (meta.get("labels") or {}).get(LABEL_WORKLOAD_UID, "")
            workload = known.get(uid)
            if workload is None:
                seen_unknown.add(uid)
                first = state.unknown_since.setdefault(uid, now)
                if now - first < self.config.edge_cleanup_grace_seconds:
                    continue
                why = "its workload no longer exists"
            else:
                status = statuses.get(f"{workload.metadata.namespace}/{workload.metadata.name}")
                target = placed_on(status)
                if target == (TargetKind.EDGE.value, name):
                    if child["kind"] in RUN_KINDS:
                        here.add(f"{workload.metadata.namespace}/{workload.metadata.name}")
                    if child["kind"] in RUN_KINDS and (status or {}).get("phase") in ACTIVE_PHASES:
                        self.cache.ledger.observe_child(child, deleted=False)  # a finished copy holds nothing
                        await self.on_child(child)
                    continue
                if target is None:
                    continue  # not placed anywhere yet: it may come back here, leave it
                why = f"the workload now runs on {target[0]} {target[1]}"
            await asyncio.to_thread(
                self.remote.delete, name, credentials, spec.namespace, child["kind"], meta.get("name", "")
            )
            obj = self.cache.edge_clusters.get(name) or {"metadata": {"name": name}}
            self.events(obj, "Normal", "StaleCopyRemoved", f"{child['kind']} {meta.get('name')}: {why}")
        for uid in set(state.unknown_since) - seen_unknown:
            del state.unknown_since[uid]
        # Drift seen in the listing: a workload placed here whose copy is gone (deleted by hand on the edge).
        for key, status in statuses.items():
            if key in here or placed_on(status) != (TargetKind.EDGE.value, name):
                continue
            if (status or {}).get("phase") in ACTIVE_PHASES and key not in self.missing:
                self.missing.add(key)
                self.copy_missing(key)

    def failover_grace(self, name: str) -> float:
        obj = self.cache.edge_clusters.get(name)
        return float(edge_spec(obj).probe.failure_grace_seconds) if obj is not None else 0.0
