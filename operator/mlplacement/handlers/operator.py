"""kopf registrations. Each handler is a line or two that hands the object to the controller."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from mlplacement.adapters.audit import LogAudit
from mlplacement.adapters.databricks import DatabricksJobs
from mlplacement.adapters.kube import KubeEvents
from mlplacement.adapters.remote import RemoteClusters
from mlplacement.api.constants import GROUP, LABEL_MANAGED_BY, VERSION
from mlplacement.config import OperatorConfig
from mlplacement.controller.heap import HeapCollector
from mlplacement.controller.pipelines import PipelineController, is_stage
from mlplacement.controller.sync import WATCHES, CacheSync, sync_caches
from mlplacement.controller.workloads import WorkloadController

log = logging.getLogger("mlplacement")
CHILD_LABELS = {LABEL_MANAGED_BY: "mlplacement"}


def _deleted(event_type: str | None) -> bool:
    return event_type == "DELETED"


def feeds_cache(handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Every event handler: once it has taken the object in, the start-up sync counts it as delivered."""

    @functools.wraps(handler)
    async def handle(**kwargs: Any) -> None:
        try:
            await handler(**kwargs)
        finally:
            kwargs["memo"].sync.seen(kwargs["resource"].plural, kwargs["body"])

    return handle


class EventsOnly(kopf.StatusDiffBaseStorage):
    """Every handler here is an event handler: kopf's change detection, which deep-copies each object's body on
    every event to diff it (the largest CPU cost of a drain, most of it on the echoes of our own status writes),
    has nothing to detect. Should a change handler ever be registered, this must go (tests/unit enforce it)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> None:  # type: ignore[override]
        return None

    def fetch(self, *, body: kopf.Body) -> None:
        return None


LIST_CHUNK_SIZE = 500


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    shared = memo.shared  # handlers.runner: what outlives this (leader-only) part of the process
    config: OperatorConfig = shared.config
    # No change handlers are registered, so kopf stores nothing on objects; should one ever be added, its
    # bookkeeping goes in status: Argo CD compares annotations and would see drift there.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = EventsOnly(field="status.kopf.last-handled-configuration")
    settings.posting.level = logging.WARNING  # the controller posts its own, well-formed Events
    # Per-object workers only hand events to the controller; a bounded pool keeps memory flat with thousands of
    # objects, and a short idle timeout keeps a worker slot from being held long after its object's event.
    settings.queueing.worker_limit = config.worker_limit
    settings.queueing.idle_timeout = config.idle_timeout_seconds
    settings.batching.idle_timeout = config.idle_timeout_seconds
    # A new leader lists what exists in pages: one LIST of 10,000 Jobs is a single response decoded at once, and
    # that, not the objects kept afterwards, set its peak memory (bench/drain.py --restart).
    settings.watching.chunk_size = LIST_CHUNK_SIZE
    # The runner lets the current round finish on SIGTERM; kopf must not kill the process meanwhile.
    settings.process.ultimate_exiting_timeout = config.shutdown_grace_seconds + 10
    memo.config, memo.cache, memo.cluster = config, shared.cache, shared.cluster
    # Decisions wait until every watch below has delivered what exists and the keys have been read since
    # this process started leading (controller.sync).
    memo.sync = shared.sync = CacheSync()
    memo.remotes = RemoteClusters()  # closed on stop: its clients keep credential files in the temp directory
    memo.controller = WorkloadController(
        config,
        shared.cache,
        shared.cluster,
        KubeEvents(shared.api_client),
        shared.metrics,
        jobs=DatabricksJobs(),
        edges=memo.remotes,
        audit=LogAudit(),
        sync=memo.sync,
    )
    memo.pipelines = PipelineController(
        config,
        shared.cache,
        shared.cluster,
        KubeEvents(shared.api_client),
        readmit=memo.controller.readmit,
        audit=LogAudit(),
        metrics=shared.metrics,
        sync=memo.sync,
    )
    memo.controller.stages = memo.pipelines.stage_verdict
    shared.controller = memo.controller

    async def keys_changed() -> None:
        memo.pipelines.keys_changed()
        await memo.controller.readmit_all()

    shared.keys.readmit = keys_changed
    memo.heap = HeapCollector()
    memo.heap.install()
    memo.tasks = [
        asyncio.create_task(
            sync_caches(
                memo.sync,
                lambda kind: shared.cluster.list_keys(WATCHES[kind].path, WATCHES[kind].selector),
                shared.keys.reload,
            )
        ),
        asyncio.create_task(memo.controller.run()),
        asyncio.create_task(memo.pipelines.run()),
        asyncio.create_task(memo.heap.run()),
    ]


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """SIGTERM: the round in progress finishes (bounded by MLPLACEMENT_SHUTDOWN_GRACE_SECONDS), none starts."""
    pipelines = getattr(memo, "pipelines", None)
    if pipelines is not None:
        pipelines.stop()
    controller = getattr(memo, "controller", None)
    if controller is not None:
        await controller.stop(memo.config.shutdown_grace_seconds)
    for task in getattr(memo, "tasks", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    heap = getattr(memo, "heap", None)
    if heap is not None:
        heap.uninstall()
    remotes = getattr(memo, "remotes", None)
    if remotes is not None:
        remotes.close()


# MLWorkloads are only watched: no kopf change handlers, so kopf keeps no progress or diff-base for them
# (no extra write per object) and the controller decides from generation and signature annotations what
# needs admission. Deletion that must wait for remote cleanup uses the operator's own finalizer.
@kopf.on.event(GROUP, VERSION, "mlworkloads")
@feeds_cache
async def workload(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    obj = dict(body)
    if is_stage(obj):  # first: the stage gate must know the stage before it is admitted
        await memo.pipelines.on_stage_event(type, obj)
    await memo.controller.on_workload_event(type, obj)


@kopf.on.event(GROUP, VERSION, "mlpipelines")
@feeds_cache
async def pipeline(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await memo.pipelines.on_pipeline_event(type, dict(body))


@kopf.on.event(GROUP, VERSION, "placementpolicies")
@feeds_cache
async def policy(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if memo.cache.on_policy(dict(body), _deleted(type)):
        await memo.controller.readmit_all()


@kopf.on.event("", "v1", "nodes")
@feeds_cache
async def node(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_node(body, _deleted(type))
    memo.controller.fleet_changed()


@kopf.on.event("", "v1", "namespaces")
@feeds_cache
async def namespace(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if memo.cache.on_namespace(dict(body), _deleted(type)):
        memo.controller.fleet_changed()  # a label may move a namespace into or out of a quota team


# Every pod, not only those placement tracks (GPU requests or ours): the start-up sync can only count pods it
# can tell from a metadata list. Untracked ones cost a call that returns at once; kopf sees them anyway.
@kopf.on.event("", "v1", "pods")
@feeds_cache
async def gpu_pod(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if memo.cache.on_pod(body, _deleted(type)):
        memo.controller.fleet_changed()


@kopf.on.event(GROUP, VERSION, "edgeclusters")
@feeds_cache
async def edge_cluster(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_edge_cluster(dict(body), _deleted(type))
    memo.controller.fleet_changed()


@kopf.on.event(GROUP, VERSION, "databricksworkspaces")
@feeds_cache
async def workspace(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_workspace(dict(body), _deleted(type))
    memo.controller.fleet_changed()


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS)
@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@feeds_cache
async def child(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.on_home_child(dict(body), _deleted(type))
    if not _deleted(type):
        await memo.controller.on_child(dict(body))
