"""The home cluster through the official kubernetes client: status patches, children, Events, Secrets.

Every call blocks; the controller runs them in threads, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from mlplacement.api.constants import (
    FINALIZER,
    GROUP,
    LABEL_PIPELINE,
    LABEL_STAGE,
    LABEL_WORKLOAD_UID,
    REVISION_ANNOTATIONS,
    VERSION,
)
from mlplacement.api.errors import ApplyError, LeaseConflictError

log = logging.getLogger("mlplacement.kube")
FIELD_MANAGER = "mlplacement"
REQUEST_TIMEOUT_SECONDS = 30
LIST_PAGE = 500  # objects per page of a list (the start-up sync lists every watched kind once)
# HTTP status -> stable reason of mlplacement_apply_failures_total and the ApplyFailed condition message.
_FAILURE_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
}
_CHILD_API_VERSIONS = {"Job": "batch/v1", "Deployment": "apps/v1", "Service": "v1"}
_CHILD_PLURALS = {"Job": "jobs", "Deployment": "deployments", "Service": "services"}


def send_unread(
    api_client: client.ApiClient,
    path: str,
    method: str,
    body: Any,
    content_type: str = "application/json",
    query: Any = (),
) -> None:
    """A write whose answer is not read: the object the server sends back is never parsed (at thousands of
    writes a second, parsing what nobody reads is most of the client's CPU). Refusals raise ApiException."""
    response = api_client.call_api(
        path,
        method,
        query_params=list(query),
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=REQUEST_TIMEOUT_SECONDS,
    )
    response.data  # noqa: B018  (read to the end, so the connection goes back to the pool)
    response.release_conn()


def _collection_path(api_version: str, kind: str, namespace: str) -> str:
    """Where a child of ``kind`` is created (a core group kind under /api, the others under /apis)."""
    root = "/api" if "/" not in api_version else "/apis"
    return f"{root}/{api_version}/namespaces/{namespace}/{_CHILD_PLURALS[kind]}"


# Fields of a child that the operator owns and brings back in line on every apply.
_OWNED_METADATA = ("labels", "annotations", "ownerReferences")


class NoClusterCredentialsError(Exception):
    """Neither a pod's service account nor a usable kubeconfig: there is no cluster to talk to."""


def load_client(connections: int = 0) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the local kubeconfig. ``connections``: how many calls
    may be in flight at once (the client's default, 5 per core, is below the operator's write concurrency on a
    small node, and urllib3 then discards a connection after every burst)."""
    from kubernetes import config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        try:
            config.load_kube_config(client_configuration=configuration)
        except (config.ConfigException, OSError, ValueError) as exc:
            where = os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise NoClusterCredentialsError(
                f"no cluster to talk to: not in a pod (no service account token) and no usable kubeconfig at "
                f"{where}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
    if connections:
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, connections)
    return client.ApiClient(configuration)


class KubeCluster:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self._dynamic: DynamicClient | None = None

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:  # discovery costs a few requests: only when a child is first applied
            self._dynamic = DynamicClient(self.api_client)
        return self._dynamic

    def apply_workload_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Server-side apply on the status subresource: conditions merge by type (a list-map in the CRD), so
        conditions another writer set are kept, and no stale copy of the whole list can drop them."""
        self._apply_status("MLWorkload", "mlworkloads", namespace, name, status)

    def apply_pipeline_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._apply_status("MLPipeline", "mlpipelines", namespace, name, status)

    def _apply_status(self, kind: str, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        # The generated client offers only merge patches for custom objects; apply is the same PATCH verb
        # with another content type.
        self._patch(
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{name}/status",
            body,
            "application/apply-patch+yaml",
            [("fieldManager", FIELD_MANAGER), ("force", "true")],
        )

    def create_stage(self, obj: Mapping[str, Any]) -> str:
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "mlworkloads", dict(obj), field_manager=FIELD_MANAGER
            )
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise apply_failure(exc) from None
        except (OSError, TimeoutError, urllib3.exceptions.HTTPError) as exc:
            raise ApplyError("Unreachable", f"{type(exc).__name__}: the API server did not answer") from None
        existing = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "mlworkloads", name)
        theirs = (existing.get("metadata") or {}).get("labels") or {}
        ours = meta.get("labels") or {}
        if any(theirs.get(label) != ours.get(label) for label in (LABEL_PIPELINE, LABEL_STAGE)):
            raise ApplyError("NotOwned", f"MLWorkload {namespace}/{name} exists and is not this pipeline's stage")
        return "exists"

    def delete_stage(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "mlworkloads", name, body={"propagationPolicy": "Background"}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
            return dict(
                resource.get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS).to_dict()
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise apply_failure(exc) from None
        except ResourceNotFoundError:
            raise ApplyError("UnknownKind", f"the API server serves no {kind} in {api_version}") from None

    def add_workload_finalizer(self, namespace: str, name: str) -> None:
        # Server-side apply with a manager of its own: finalizers are a set, so only this entry becomes ours.
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MLWorkload",
            "metadata": {"name": name, "namespace": namespace, "finalizers": [FINALIZER]},
        }
        self._patch(
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/mlworkloads/{name}",
            body,
            "application/apply-patch+yaml",
            [("fieldManager", f"{FIELD_MANAGER}-finalizer"), ("force", "true")],
        )

    def remove_workload_finalizer(self, namespace: str, name: str, finalizers: Sequence[str], finalizer: str) -> None:
        if finalizer not in finalizers:
            return
        index = list(finalizers).index(finalizer)
        # JSON patch with a test: if the list moved since it was seen, the server refuses instead of removing
        # another controller's entry; the next event retries with the list as it is then.
        operations = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
        try:
            self._patch(
                f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/mlworkloads/{name}",
                operations,
                "application/json-patch+json",
                [],
            )
        except ApiException as exc:
            if exc.status != 404:  # gone already: nothing to release
                raise

    def _patch(self, path: str, body: Any, content_type: str, query: list[tuple[str, str]]) -> None:
        self._send(path, "PATCH", body, content_type, query)

    def _send(self, path: str, method: str, body: Any, content_type: str = "application/json", query: Any = ()) -> None:
        send_unread(self.api_client, path, method, body, content_type, query)

    def list_keys(self, path: str, label_selector: str = "") -> set[str]:
        """The keys (``namespace/name``, or ``name``) of every object in a collection now: metadata only
        (PartialObjectMetadataList), in pages, so a start costs little even with many objects."""
        keys: set[str] = set()
        token = ""
        while True:
            query = [("limit", str(LIST_PAGE))]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if token:
                query.append(("continue", token))
            response = self.api_client.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
            page = json.loads(response.data)
            for item in page.get("items") or []:
                meta = item.get("metadata") or {}
                namespace = meta.get("namespace")
                keys.add(f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name")))
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return keys

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "placementpolicies", name, {"status": dict(status)}
        )

    def patch_workspace_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "databricksworkspaces", name, {"status": dict(status)}
        )

    def patch_edge_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.custom.patch_cluster_custom_object_status(GROUP, VERSION, "edgeclusters", name, {"status": dict(status)})

    def apply_child(self, obj: Mapping[str, Any]) -> str:
        """Create; on 409 bring our existing child in line (a Job whose revision changed is replaced).

        Every refusal becomes ApplyError with a stable reason and the server's message; a same-named object
        that is not this workload's is never touched.
        """
        try:
            return self._apply_child(obj)
        except ApplyError:
            raise
        except ApiException as exc:
            raise apply_failure(exc) from None
        except (OSError, TimeoutError, urllib3.exceptions.HTTPError) as exc:
            raise ApplyError("Unreachable", f"{type(exc).__name__}: the API server did not answer") from None

    def _apply_child(self, obj: Mapping[str, Any]) -> str:
        meta = obj["metadata"]
        try:
            self._send(_collection_path(obj["apiVersion"], obj["kind"], meta["namespace"]), "POST", dict(obj))
            return "created"
        except ApiException as exc:
            if exc.status != 409:
                raise
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        where = {"namespace": meta["namespace"], "_request_timeout": REQUEST_TIMEOUT_SECONDS}
        existing = resource.get(name=meta["name"], **where).to_dict()
        theirs = ((existing.get("metadata") or {}).get("labels") or {}).get(LABEL_WORKLOAD_UID)
        ours = (meta.get("labels") or {}).get(LABEL_WORKLOAD_UID)
        if theirs != ours:
            raise ApplyError(
                "NotOwned",
                f"{obj['kind']} {meta['namespace']}/{meta['name']} exists and belongs to another workload or to nobody",
            )
        wanted = meta.get("annotations") or {}
        have = (existing.get("metadata") or {}).get("annotations") or {}
        if all(wanted.get(k) == have.get(k) for k in REVISION_ANNOTATIONS):
            return "unchanged"
        if obj["kind"] == "Job":
            # A Job's pod template is immutable: a new generation or target replaces it under the same name.
            resource.delete(name=meta["name"], body={"propagationPolicy": "Background"}, **where)
            resource.create(body=dict(obj), **where)
            return "replaced"
        patch: dict[str, Any] = {"metadata": {k: meta[k] for k in _OWNED_METADATA if k in meta}, "spec": obj["spec"]}
        resource.patch(body=patch, name=meta["name"], content_type="application/merge-patch+json", **where)
        return "updated"

    def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        try:
            self.core.patch_namespaced_pod(
                name, namespace, {"metadata": {"annotations": dict(annotations)}}, field_manager=FIELD_MANAGER
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        api_version = _CHILD_API_VERSIONS[kind]
        resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
        try:
            resource.delete(name=name, namespace=namespace, body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(secret.data or {})

    def write_secret_data(self, namespace: str, name: str, data: dict[str, str], exists: bool) -> None:
        if exists:
            self.core.patch_namespaced_secret(name, namespace, {"data": data}, field_manager=FIELD_MANAGER)
            return
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "data": data}
        self.core.create_namespaced_secret(namespace, body, field_manager=FIELD_MANAGER)

    def patch_webhook_ca_bundle(self, configuration: str, ca_bundle: str) -> None:
        api = client.AdmissionregistrationV1Api(self.api_client)
        current = api.read_validating_webhook_configuration(configuration)
        # A JSON patch per webhook, each guarded by a test of its name: never a caBundle on someone else's entry.
        patch: list[dict[str, Any]] = []
        for index, webhook in enumerate(current.webhooks or []):
            patch.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook.name})
            patch.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": ca_bundle})
        if patch:
            self._patch(
                f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{configuration}",
                patch,
                "application/json-patch+json",
                [("fieldManager", FIELD_MANAGER)],
            )

    def read_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            configmap = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(configmap.data or {})


def apply_failure(exc: ApiException) -> ApplyError:
    """The server's refusal in its own words (its Status message; never the request, which may carry env)."""
    message = exc.reason or ""
    reason = _FAILURE_REASONS.get(exc.status or 0, "ServerError" if (exc.status or 0) >= 500 else "Refused")
    try:
        status = json.loads(exc.body or "{}")
        message = str(status.get("message") or message)
        if status.get("reason") == "Forbidden" and "being terminated" in message:
            reason = "NamespaceTerminating"
        elif exc.status == 403 and "exceeded quota" in message:
            reason = "QuotaExceeded"
        elif exc.status == 404 and status.get("details", {}).get("kind") == "namespaces":
            reason = "NamespaceNotFound"
    except (ValueError, AttributeError):
        pass
    return ApplyError(reason, f"{exc.status} {message}"[:1024])


class KubeEvents:
    """Posts core/v1 Events in the background (never blocking the caller) and logs each one."""

    def __init__(self, api_client: client.ApiClient, component: str = "mlplacement") -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.component = component
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="events")

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        # The words in the message too: the plain format shows no extras, and "event" alone says nothing.
        log.info(
            "%s %s %s/%s: %s",
            type_,
            reason,
            meta.get("namespace", ""),
            meta.get("name"),
            message,
            extra={
                "object": f"{meta.get('namespace', '')}/{meta.get('name')}",
                "type": type_,
                "reason": reason,
                "event_message": message,
            },
        )
        self._pool.submit(self._post, dict(obj), type_, reason, message)

    def _post(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{meta.get('name')}.{uuid.uuid4().hex[:12]}", namespace=namespace),
            involved_object=client.V1ObjectReference(
                api_version=obj.get("apiVersion"),
                kind=obj.get("kind"),
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=client.V1EventSource(component=self.component),
            reporting_component=self.component,
            reporting_instance=self.component,
        )
        try:
            path = f"/api/v1/namespaces/{namespace}/events"
            send_unread(self.api_client, path, "POST", self.api_client.sanitize_for_serialization(body))
        except ApiException as exc:  # an Event is best effort: never fail a reconcile over it
            log.warning("could not post event %s: %s", reason, exc.reason)


# A lease call must come back well within the renew deadline, or the leader cannot know it still leads.
LEASE_TIMEOUT_SECONDS = 5
_LEASE_CALL: dict[str, Any] = {"_preload_content": False, "_request_timeout": LEASE_TIMEOUT_SECONDS}


class KubeLeases:
    """coordination.k8s.io/v1 Leases as plain dicts, the server's own strings (MicroTime kept verbatim)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api = client.CoordinationV1Api(api_client)

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            response = self.api.read_namespaced_lease(
                name, namespace, _preload_content=False, _request_timeout=LEASE_TIMEOUT_SECONDS
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise apply_failure(exc) from None  # the server's words (403: who may not do what), not its headers
        return dict(json.loads(response.data))

    def create(self, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec}
        return self._write(lambda: self.api.create_namespaced_lease(namespace, body, **_LEASE_CALL))

    def replace(self, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str) -> dict[str, Any]:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "resourceVersion": resource_version},
            "spec": spec,
        }
        return self._write(lambda: self.api.replace_namespaced_lease(name, namespace, body, **_LEASE_CALL))

    @staticmethod
    def _write(call: Any) -> dict[str, Any]:
        try:
            response = call()
        except ApiException as exc:
            if exc.status == 409:  # create lost the race, or replace's resourceVersion is stale
                raise LeaseConflictError(str(exc.reason)) from None
            raise apply_failure(exc) from None
        return dict(json.loads(response.data))
