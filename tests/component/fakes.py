"""Fakes at the adapter boundary only: the home cluster's writes and the Event sink."""

from __future__ import annotations

import base64
import copy
import functools
import json
from collections.abc import Mapping
from typing import Any


@functools.cache
def _status_validator(kind: str) -> Any:
    import jsonschema

    from mlplacement.api.constants import Kind
    from mlplacement.api.crds import KIND_INFO, render_crd
    from tests.schema import strict_fields

    crd = render_crd(KIND_INFO[Kind(kind)])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    return jsonschema.Draft4Validator(strict_fields(schema))


def status_schema_errors(kind: str, status: Mapping[str, Any]) -> list[str]:
    """What the CRD's status schema says of ``status`` (as the apiserver validates a status write)."""
    return [
        ".".join(str(p) for p in error.absolute_path) + ": " + error.message
        for error in _status_validator(kind).iter_errors(json.loads(json.dumps(status)))
    ]


class FakeCluster:
    def __init__(self) -> None:
        self.status_patches: list[tuple[str, dict[str, Any]]] = []
        self.policy_patches: list[tuple[str, dict[str, Any]]] = []
        self.workspace_patches: list[tuple[str, dict[str, Any]]] = []
        self.edge_patches: list[tuple[str, dict[str, Any]]] = []
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.pod_annotations: list[tuple[str, dict[str, str]]] = []
        self.configmaps: dict[tuple[str, str], dict[str, str]] = {}
        self.fail_status_writes = False
        self.children: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applies = 0
        self.deletes: list[tuple[str, str, str]] = []
        self.finalizer_calls: list[tuple[str, str]] = []
        self.validate_statuses = True  # as the apiserver does; a benchmark of the controller alone turns it off
        # What the apiserver holds per workload after server-side apply, and what our field manager owns.
        self.statuses: dict[str, dict[str, Any]] = {}
        self.owned: dict[str, set[str]] = {}
        self.owned_types: dict[str, set[str]] = {}
        # MLWorkloads the pipeline controller created (key -> object), MLPipeline statuses, gate objects.
        self.workloads: dict[str, dict[str, Any]] = {}
        self.stage_creates: list[str] = []
        self.stage_deletes: list[str] = []
        self.pipeline_statuses: dict[str, dict[str, Any]] = {}
        self.pipeline_status_writes = 0
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.object_reads: list[tuple[str, str, str]] = []

    def apply_workload_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Server-side apply as the apiserver does it for one field manager: the status stored is the other
        writers' fields and conditions (by type, a list-map) plus everything this apply names."""
        if self.fail_status_writes:
            raise ConnectionError("apiserver unreachable (the operator is going down)")
        problems = status_schema_errors("MLWorkload", status) if self.validate_statuses else []
        if problems:  # the apiserver answers 422 to a status its CRD schema does not admit
            raise AssertionError(f"422 MLWorkload {namespace}/{name} status is invalid: {problems}")
        key = f"{namespace}/{name}"
        self.status_patches.append((key, copy.deepcopy(dict(status))))
        stored = self.statuses.setdefault(key, {})
        ours = self.owned.setdefault(key, set())
        for field in ours - set(status):
            stored.pop(field, None)
        mine = {c["type"] for c in status.get("conditions") or []}
        theirs = [c for c in stored.get("conditions") or [] if c["type"] not in mine | self.owned_types.get(key, set())]
        stored.update(copy.deepcopy(dict(status)))
        stored["conditions"] = theirs + copy.deepcopy(list(status.get("conditions") or []))
        self.owned[key] = set(status)
        self.owned_types[key] = mine

    def add_workload_finalizer(self, namespace: str, name: str) -> None:
        self.finalizer_calls.append(("add", f"{namespace}/{name}"))

    def remove_workload_finalizer(self, namespace: str, name: str, finalizers: Any, finalizer: str) -> None:
        if finalizer in finalizers:
            self.finalizer_calls.append((f"remove {finalizer}", f"{namespace}/{name}"))

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        problems = status_schema_errors("PlacementPolicy", status)
        if problems:
            raise AssertionError(f"422 PlacementPolicy {name} status is invalid: {problems}")
        self.policy_patches.append((name, copy.deepcopy(dict(status))))

    def patch_workspace_status(self, name: str, status: Mapping[str, Any]) -> None:
        problems = status_schema_errors("DatabricksWorkspace", status)
        if problems:
            raise AssertionError(f"422 DatabricksWorkspace {name} status is invalid: {problems}")
        self.workspace_patches.append((name, copy.deepcopy(dict(status))))

    def patch_edge_status(self, name: str, status: Mapping[str, Any]) -> None:
        problems = status_schema_errors("EdgeCluster", status)
        if problems:
            raise AssertionError(f"422 EdgeCluster {name} status is invalid: {problems}")
        self.edge_patches.append((name, copy.deepcopy(dict(status))))

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get((namespace, name))

    def read_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.configmaps.get((namespace, name))

    def put_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Store a Secret as the API returns it: values base64-encoded."""
        self.secrets[(namespace, name)] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    def apply_child(self, obj: Mapping[str, Any]) -> str:
        self.applies += 1
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        existed = key in self.children
        self.children[key] = copy.deepcopy(dict(obj))
        return "updated" if existed else "created"

    # --- what the pipeline controller writes: stage workloads, pipeline status; gate objects it reads ---

    def create_stage(self, obj: Mapping[str, Any]) -> str:
        from mlplacement.api.errors import ApplyError

        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        self.stage_creates.append(key)
        existing = self.workloads.get(key)
        if existing is not None:
            labels = existing["metadata"].get("labels") or {}
            if labels.get("mlplacement.io/pipeline") != obj["metadata"]["labels"]["mlplacement.io/pipeline"]:
                raise ApplyError("NotOwned", f"MLWorkload {key} exists and is not this pipeline's stage")
            return "exists"
        created = copy.deepcopy(dict(obj))
        created["metadata"].update(uid=f"uid-{key}", generation=1, creationTimestamp="2026-11-23T00:00:00Z")
        self.workloads[key] = created
        return "created"

    def delete_stage(self, namespace: str, name: str) -> None:
        if self.workloads.pop(f"{namespace}/{name}", None) is not None:
            self.stage_deletes.append(f"{namespace}/{name}")

    def apply_pipeline_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        problems = status_schema_errors("MLPipeline", status)
        if problems:
            raise AssertionError(f"422 MLPipeline {namespace}/{name} status is invalid: {problems}")
        self.pipeline_statuses[f"{namespace}/{name}"] = copy.deepcopy(dict(status))
        self.pipeline_status_writes += 1

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.object_reads.append((kind, namespace, name))
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        self.pod_annotations.append((f"{namespace}/{name}", dict(annotations)))

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        if self.children.pop((kind, namespace, name), None) is not None:
            self.deletes.append((kind, namespace, name))


class Events(list[tuple[str, str, str]]):
    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.append((type_, reason, message))


class Clock:
    """A monotonic clock the test moves by hand: grace periods and poll intervals pass without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeEdges:
    """Edge clusters at the adapter boundary (controller.ports.EdgeClusters): objects per cluster in memory.

    ``down`` clusters raise on every call, as an unreachable API server does; ``gpus`` is what a probe reports.
    """

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}
        self.down: set[str] = set()
        self.gpus: dict[str, int] = {}
        self.credentials_seen: dict[str, Any] = {}
        self.probes: list[str] = []
        self.bound: dict[str, dict[str, int]] = {}  # edge -> workload uid -> GPUs of its bound pods there

    def _reach(self, name: str, credentials: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
        if name in self.down:
            raise ConnectionRefusedError(f"edge {name} unreachable")
        self.credentials_seen[name] = credentials
        return self.objects.setdefault(name, {})

    def probe(self, name: str, credentials: Any, timeout_seconds: float) -> Any:
        from mlplacement.core.edge import ProbeResult

        self.probes.append(name)
        if name in self.down:
            return ProbeResult(reachable=False, error="MaxRetryError (NewConnectionError)")
        self._reach(name, credentials)
        gpus = self.gpus.get(name, 4)
        return ProbeResult(True, True, 12.0, 1, gpus, gpus, bound_by_workload=self.bound.get(name, {}))

    def apply(self, name: str, credentials: Any, objects: Any) -> None:
        store = self._reach(name, credentials)
        for obj in objects:
            store[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = copy.deepcopy(dict(obj))

    def _select(self, name: str, credentials: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
        key, value = selector.split("=", 1)
        store = self._reach(name, credentials)
        return [
            copy.deepcopy(obj)
            for (_, ns, _), obj in sorted(store.items())
            if ns == namespace and (obj["metadata"].get("labels") or {}).get(key) == value
        ]

    def inventory(self, name: str, credentials: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._select(name, credentials, namespace, selector)

    def delete(self, name: str, credentials: Any, namespace: str, kind: str, object_name: str) -> None:
        self._reach(name, credentials).pop((kind, namespace, object_name), None)

    def forget(self, name: str) -> None:
        self.credentials_seen.pop(name, None)

    def kinds(self, name: str) -> list[tuple[str, str]]:
        return sorted((kind, obj_name) for kind, _, obj_name in self.objects.get(name, {}))
