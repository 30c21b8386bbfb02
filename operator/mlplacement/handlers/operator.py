"""kopf registrations. Each handler is a line or two that hands the object to the controller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from mlplacement.adapters.databricks import DatabricksJobs
from mlplacement.adapters.kube import KubeCluster, KubeEvents, load_client
from mlplacement.adapters.metrics import PrometheusMetrics
from mlplacement.adapters.remote import RemoteClusters
from mlplacement.api.constants import ACTIVE_PHASES, GROUP, LABEL_MANAGED_BY, VERSION
from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache, tracked_pod
from mlplacement.controller.workloads import WorkloadController

log = logging.getLogger("mlplacement")
CHILD_LABELS = {LABEL_MANAGED_BY: "mlplacement"}
CANCEL_RETRIES = 24  # x CANCEL_POLL_SECONDS: how long deletion waits for a Databricks run to stop
CANCEL_POLL_SECONDS = 5
EDGE_DELETE_RETRIES = 24  # x CANCEL_POLL_SECONDS: how long deletion waits for an unreachable edge cluster


def _deleted(event_type: str | None) -> bool:
    return event_type == "DELETED"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorConfig.from_env()
    # kopf's bookkeeping lives in status: Argo CD compares annotations and would see drift there.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.last-handled-configuration")
    settings.posting.level = logging.WARNING  # the controller posts its own, well-formed Events
    # Per-object workers only parse, verify and enqueue; a bounded pool with a short idle timeout keeps
    # memory flat with thousands of objects (README, "How it works").
    settings.queueing.worker_limit = config.worker_limit
    settings.queueing.idle_timeout = config.idle_timeout_seconds
    settings.batching.idle_timeout = config.idle_timeout_seconds
    if config.webhook_port:
        from mlplacement.handlers import webhook

        webhook.configure(settings, config)
    api_client = await asyncio.to_thread(load_client)
    metrics = PrometheusMetrics()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    cache = FleetCache(config=config)
    cluster = KubeCluster(api_client)
    memo.config, memo.cache, memo.cluster = config, cache, cluster
    memo.controller = WorkloadController(
        config, cache, cluster, KubeEvents(api_client), metrics, jobs=DatabricksJobs(), edges=RemoteClusters()
    )
    await reload_keys_and_signals(memo)
    memo.tasks = [asyncio.create_task(memo.controller.run()), asyncio.create_task(reload_forever(memo))]


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    for task in getattr(memo, "tasks", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def reload_keys_and_signals(memo: kopf.Memo) -> None:
    """Trusted keys (Secret, or ConfigMap) and the signals ConfigMap, read by name: no cluster-wide watch."""
    config, cache, cluster = memo.config, memo.cache, memo.cluster
    if config.trusted_keys_configmap:
        data = await asyncio.to_thread(cluster.read_configmap_data, config.namespace, config.trusted_keys_configmap)
        encoded = False
    else:
        data = await asyncio.to_thread(cluster.read_secret_data, config.namespace, config.trusted_keys_secret)
        encoded = True
    before = set(cache.keyring.keys)
    keyring = cache.on_trusted_keys(data, base64_encoded=encoded)
    for problem in keyring.problems.values():
        log.warning("trusted key ignored: %s", problem)
    signals = await asyncio.to_thread(cluster.read_configmap_data, config.namespace, config.signals_configmap)
    cache.on_signals({"data": signals} if signals is not None else None)
    if set(keyring.keys) != before:
        await memo.controller.readmit_all()


async def reload_forever(memo: kopf.Memo) -> None:
    while True:
        await asyncio.sleep(memo.config.reload_seconds)
        try:
            await reload_keys_and_signals(memo)
        except Exception:
            log.exception("reloading trusted keys and signals failed")


@kopf.on.create(GROUP, VERSION, "mlworkloads")
@kopf.on.update(GROUP, VERSION, "mlworkloads", field="spec")
@kopf.on.resume(GROUP, VERSION, "mlworkloads")
async def workload(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.on_workload(dict(body))


@kopf.on.update(GROUP, VERSION, "mlworkloads", field="metadata.annotations")
async def workload_resigned(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.on_workload(dict(body))


@kopf.on.event(GROUP, VERSION, "mlworkloads")
def workload_seen(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_workload_phase(body, _deleted(type))
    if _deleted(type):
        memo.controller.forget(body)


def _has_active_run(status: kopf.Status, **_: Any) -> bool:
    return bool((status.get("databricks") or {}).get("runId")) and status.get("phase") in ACTIVE_PHASES


# Only workloads with a live Databricks run get a finalizer: local children go with their owner references.
@kopf.on.delete(GROUP, VERSION, "mlworkloads", when=_has_active_run)
async def workload_deleted(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    key = f"{body.metadata.namespace}/{body.metadata.name}"
    if await memo.controller.databricks.cancel(key, dict(body.get("status") or {})):
        return
    if retry >= CANCEL_RETRIES:
        # Bounded: deletion is never blocked for good; say that the run may still be going.
        memo.controller.events(dict(body), "Warning", "CancelUnconfirmed", "Databricks run not confirmed cancelled")
        return
    raise kopf.TemporaryError("waiting for the Databricks run to cancel", delay=CANCEL_POLL_SECONDS)


def _on_edge(status: kopf.Status, **_: Any) -> bool:
    return ((status.get("placement") or {}).get("target") or {}).get("kind") == "Edge"


# Children on an edge cluster have no owner reference there (the owner lives here): a finalizer removes them.
@kopf.on.delete(GROUP, VERSION, "mlworkloads", when=_on_edge)
async def workload_deleted_from_edge(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    key = f"{body.metadata.namespace}/{body.metadata.name}"
    if await memo.controller.edges.delete_workload(key, body.metadata.uid, dict(body.get("status") or {})):
        return
    if retry >= EDGE_DELETE_RETRIES:
        # Bounded: the edge may be gone for good. Its copy is removed if it ever comes back (unknown workload).
        memo.controller.events(
            dict(body), "Warning", "RemoteCleanupAbandoned", "edge cluster unreachable; its copy is removed on return"
        )
        return
    raise kopf.TemporaryError("waiting for the edge cluster to delete the workload", delay=CANCEL_POLL_SECONDS)


@kopf.on.event(GROUP, VERSION, "placementpolicies")
async def policy(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if memo.cache.on_policy(dict(body), _deleted(type)):
        await memo.controller.readmit_all()


@kopf.on.event("", "v1", "nodes")
def node(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_node(body, _deleted(type))
    memo.controller.fleet_changed()


@kopf.on.event("", "v1", "pods", when=lambda body, **_: tracked_pod(body))
def gpu_pod(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_pod(body, _deleted(type))
    memo.controller.fleet_changed()


@kopf.on.event(GROUP, VERSION, "edgeclusters")
def edge_cluster(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_edge_cluster(dict(body), _deleted(type))
    memo.controller.fleet_changed()


@kopf.on.event(GROUP, VERSION, "databricksworkspaces")
def workspace(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.cache.on_workspace(dict(body), _deleted(type))
    memo.controller.fleet_changed()


@kopf.on.event("batch", "v1", "jobs", labels=CHILD_LABELS)
@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
async def child(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.on_home_child(dict(body), _deleted(type))
    if not _deleted(type):
        await memo.controller.on_child(dict(body))
