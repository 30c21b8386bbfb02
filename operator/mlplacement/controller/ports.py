"""What the controller needs from the outside world, as small protocols (real adapters and test fakes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mlplacement.api.audit import AuditRecord
from mlplacement.api.errors import ApplyError

__all__ = [
    "ApplyError",
    "Cluster",
    "DatabricksJobs",
    "EdgeClusters",
    "EventSink",
    "Leases",
    "Metrics",
    "NoMetrics",
]


class Cluster(Protocol):
    """Writes to the home cluster. Blocking: the controller calls these off the event loop."""

    def apply_workload_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Server-side apply of every status field the operator owns (fields it leaves out are no longer its own);
        conditions merge by type, so what other writers set survives."""
        ...

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None: ...

    def list_keys(self, path: str, label_selector: str = "") -> set[str]:
        """The keys (``namespace/name`` or ``name``) of every object in the collection at ``path`` now."""
        ...

    def add_workload_finalizer(self, namespace: str, name: str) -> None:
        """Put the operator's finalizer on an MLWorkload, leaving every other finalizer as it is."""
        ...

    def remove_workload_finalizer(self, namespace: str, name: str, finalizers: Sequence[str], finalizer: str) -> None:
        """Remove ``finalizer`` from an MLWorkload whose list was last seen as ``finalizers`` (a concurrent change
        makes this fail rather than drop someone else's entry)."""
        ...

    def apply_child(self, obj: Mapping[str, Any]) -> str:
        """Create ``obj`` or bring the existing one in line; returns created, unchanged, updated or replaced.

        Raises ApplyError when the cluster refuses (forbidden, namespace gone, a same-named object that is
        not this workload's, invalid, over quota, server error, timeout)."""
        ...

    def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        """Merge ``annotations`` into a pod of one of our children; a pod already gone is not an error."""
        ...

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        """Delete a child (Job, Deployment or Service) by name, its pods with it; gone already is fine."""
        ...

    def patch_workspace_status(self, name: str, status: Mapping[str, Any]) -> None: ...

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's data, base64 as the API returns it; None when it does not exist."""
        ...

    def read_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A ConfigMap's data; None when it does not exist."""
        ...

    def patch_edge_status(self, name: str, status: Mapping[str, Any]) -> None: ...


class PipelineCluster(Protocol):
    """What the pipeline controller writes and reads. Blocking: called off the event loop."""

    def create_stage(self, obj: Mapping[str, Any]) -> str:
        """Create a stage's MLWorkload; "created", or "exists" when this pipeline's stage of that name is there.

        Raises ApplyError when the cluster refuses, or a same-named MLWorkload is not this pipeline's stage."""
        ...

    def delete_stage(self, namespace: str, name: str) -> None:
        """Delete a stage's MLWorkload (its children go with it); gone already is fine."""
        ...

    def apply_pipeline_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Server-side apply of the pipeline's status (the operator owns all of it but kopf's part)."""
        ...

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Any namespaced object (a readiness gate); None when it does not exist. Raises ApplyError on refusal."""
        ...


class Leases(Protocol):
    """coordination.k8s.io Leases as plain objects. Blocking. A write whose resourceVersion is stale, or a create
    that finds one, raises the adapter's conflict error (any exception means: not written)."""

    def read(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create(self, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]: ...

    def replace(self, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str) -> dict[str, Any]: ...


class EdgeClusters(Protocol):
    """Remote Kubernetes clusters (adapters.remote). Blocking; a cached client per cluster name."""

    def probe(self, name: str, credentials: Any, timeout_seconds: float) -> Any: ...

    def apply(self, name: str, credentials: Any, objects: Sequence[Mapping[str, Any]]) -> None: ...

    def inventory(self, name: str, credentials: Any, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def delete(self, name: str, credentials: Any, namespace: str, kind: str, object_name: str) -> None: ...

    def forget(self, name: str) -> None: ...


class DatabricksJobs(Protocol):
    """One-time runs in a Databricks workspace (adapters.databricks). Blocking; raises its own errors."""

    def probe(self, workspace: Any) -> str: ...

    def submit(self, workspace: Any, payload: Mapping[str, Any]) -> int: ...

    def get(self, workspace: Any, run_id: int) -> Any: ...

    def cancel(self, workspace: Any, run_id: int) -> None: ...


class AuditSink(Protocol):
    """Takes one audit record (api.audit); the operator writes them as JSON lines (adapters.audit)."""

    def __call__(self, record: AuditRecord) -> None: ...


class EventSink(Protocol):
    """Posts a Kubernetes Event about ``obj`` (and logs it)."""

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...


class Metrics(Protocol):
    def decision(self, target_kind: str, result: str) -> None: ...

    def round_finished(self, seconds: float, workloads: int, planning_seconds: float = 0.0) -> None: ...

    def refusal(self, reason: str) -> None: ...

    def workloads_by_phase(self, counts: Mapping[str, int]) -> None: ...

    def target_health(self, targets: Mapping[tuple[str, str], bool]) -> None: ...

    def hourly_cost(self, namespace: str, name: str, usd: float | None) -> None: ...

    def signals_age(self, seconds: float | None) -> None: ...

    def apply_failure(self, reason: str) -> None: ...

    def preemption(self, reason: str) -> None: ...

    def quota_usage(self, team: str, resource: str, used: float, nominal: float | None) -> None: ...

    def interruption(self, target_kind: str, target: str) -> None: ...

    def prewarm_gpus(self, forecast: int, held: int) -> None: ...

    def prewarm_run(self, outcome: str) -> None: ...

    def compliance(self, action: str) -> None: ...

    def pipeline_stages(self, counts: Mapping[str, int]) -> None: ...


class NoMetrics:
    """Metrics that go nowhere (tests, CLI)."""

    def decision(self, target_kind: str, result: str) -> None:
        pass

    def round_finished(self, seconds: float, workloads: int, planning_seconds: float = 0.0) -> None:
        pass

    def refusal(self, reason: str) -> None:
        pass

    def workloads_by_phase(self, counts: Mapping[str, int]) -> None:
        pass

    def target_health(self, targets: Mapping[tuple[str, str], bool]) -> None:
        pass

    def hourly_cost(self, namespace: str, name: str, usd: float | None) -> None:
        pass

    def signals_age(self, seconds: float | None) -> None:
        pass

    def apply_failure(self, reason: str) -> None:
        pass

    def preemption(self, reason: str) -> None:
        pass

    def quota_usage(self, team: str, resource: str, used: float, nominal: float | None) -> None:
        pass

    def interruption(self, target_kind: str, target: str) -> None:
        pass

    def prewarm_gpus(self, forecast: int, held: int) -> None:
        pass

    def prewarm_run(self, outcome: str) -> None:
        pass

    def compliance(self, action: str) -> None:
        pass

    def pipeline_stages(self, counts: Mapping[str, int]) -> None:
        pass
