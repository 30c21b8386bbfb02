"""Edge clusters through the official kubernetes client: one cached client per cluster, probes, remote children.

Credentials arrive already allow-list parsed (core.kubeconfig.RemoteCredentials). The kubernetes client
reads CA and client certificates only from files, so the material goes into a private temporary directory
(0700, files 0600) that lives exactly as long as the client; a change of credentials builds a new client and
removes the old files. Every call blocks; the controller runs them in threads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mlplacement.adapters.kube import KubeCluster
from mlplacement.core.edge import ProbeResult, capacity_of
from mlplacement.core.kubeconfig import RemoteCredentials
from mlplacement.core.ledger import bound_gpus_by_workload

# Kinds the edge runtime creates, with the API that lists and deletes each.
CHILD_KINDS = ("Job", "Deployment", "Service")


def describe(exc: BaseException) -> str:
    """What went wrong, in words safe for status and Events: an HTTP status or an exception class, no body."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason or ''}".strip()
    cause = getattr(exc, "reason", None)
    if isinstance(cause, BaseException):
        return f"{type(exc).__name__} ({type(cause).__name__})"
    return type(exc).__name__


def fingerprint(credentials: RemoteCredentials) -> str:
    digest = hashlib.sha256()
    for part in (
        credentials.server,
        credentials.ca_data,
        credentials.token or "",
        credentials.client_cert_data or b"",
        credentials.client_key_data or b"",
        credentials.tls_server_name or "",
    ):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class _Client:
    fingerprint: str
    api_client: client.ApiClient
    directory: str

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_private(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return path


def build_client(credentials: RemoteCredentials, retries: int = 0) -> _Client:
    """A kubernetes ApiClient for ``credentials`` alone: no kubeconfig file, no exec, no default config."""
    directory = tempfile.mkdtemp(prefix="mlplacement-edge-")  # mode 0700
    configuration = client.Configuration()
    configuration.host = credentials.server
    configuration.verify_ssl = True
    configuration.ssl_ca_cert = _write_private(directory, "ca.crt", credentials.ca_data)
    configuration.retries = retries
    if credentials.tls_server_name:
        configuration.tls_server_name = credentials.tls_server_name
    if credentials.token:
        configuration.api_key = {"authorization": f"Bearer {credentials.token}"}
    if credentials.client_cert_data and credentials.client_key_data:
        configuration.cert_file = _write_private(directory, "client.crt", credentials.client_cert_data)
        configuration.key_file = _write_private(directory, "client.key", credentials.client_key_data)
    return _Client(fingerprint(credentials), client.ApiClient(configuration), directory)


class RemoteClusters:
    """The edge-cluster port of the controller (controller.ports.EdgeClusters), over real API servers."""

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()

    def _client(self, name: str, credentials: RemoteCredentials) -> _Client:
        wanted = fingerprint(credentials)
        with self._lock:
            cached = self._clients.get(name)
            if cached is not None and cached.fingerprint == wanted:
                return cached
            if cached is not None:
                cached.close()
            self._clients[name] = built = build_client(credentials)
            return built

    def forget(self, name: str) -> None:
        with self._lock:
            cached = self._clients.pop(name, None)
        if cached is not None:
            cached.close()

    def close(self) -> None:
        """Every client closed and its credential files removed (on stop: nothing is left in the temp directory)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for cached in clients:
            cached.close()

    def probe(self, name: str, credentials: RemoteCredentials, timeout_seconds: float) -> ProbeResult:
        try:
            remote = self._client(name, credentials)
            started = time.perf_counter()
            response = remote.api_client.call_api(
                "/readyz",
                "GET",
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout_seconds,
            )
            rtt_ms = (time.perf_counter() - started) * 1000
            api_ready = response.status == 200
            serialize = remote.api_client.sanitize_for_serialization  # API (camelCase) dicts, as core reads
            nodes = serialize(remote.core.list_node(_request_timeout=timeout_seconds))["items"]
            pods = serialize(
                remote.core.list_pod_for_all_namespaces(
                    field_selector="status.phase!=Succeeded,status.phase!=Failed", _request_timeout=timeout_seconds
                )
            )["items"]
        except ApiException as exc:
            if exc.status == 503:  # /readyz answers 503 while the API server is not ready
                return ProbeResult(reachable=True, api_ready=False, error=describe(exc))
            return ProbeResult(reachable=False, error=describe(exc))
        except Exception as exc:  # connection refused, TLS, timeouts: the probe failed, say how
            return ProbeResult(reachable=False, error=describe(exc))
        capacity = capacity_of(nodes, pods)
        return ProbeResult(
            True,
            api_ready,
            rtt_ms,
            capacity.ready_nodes,
            sum(capacity.gpus_by_node),
            sum(capacity.free_gpus_by_node),
            gpus_by_node=capacity.gpus_by_node,
            free_gpus_by_node=capacity.free_gpus_by_node,
            bound_by_workload=bound_gpus_by_workload(pods),
        )

    def apply(self, name: str, credentials: RemoteCredentials, objects: Sequence[Mapping[str, Any]]) -> None:
        remote = self._client(name, credentials)
        namespaces = {obj["metadata"]["namespace"] for obj in objects}
        for namespace in sorted(namespaces):
            try:
                remote.core.create_namespace({"metadata": {"name": namespace}})
            except ApiException as exc:
                if exc.status not in (409, 403):  # exists, or we may not create it (then it must exist)
                    raise
        applier = KubeCluster(remote.api_client)
        for obj in objects:
            applier.apply_child(obj)

    def _list(self, remote: _Client, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        if kind == "Job":
            items = client.BatchV1Api(remote.api_client).list_namespaced_job(namespace, label_selector=selector)
        elif kind == "Deployment":
            items = client.AppsV1Api(remote.api_client).list_namespaced_deployment(namespace, label_selector=selector)
        else:
            items = remote.core.list_namespaced_service(namespace, label_selector=selector)
        return [{"kind": kind, **remote.api_client.sanitize_for_serialization(item)} for item in items.items]

    def inventory(
        self, name: str, credentials: RemoteCredentials, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        """Jobs, Deployments and Services on the edge matching ``selector`` (a home cluster, or a workload uid)."""
        remote = self._client(name, credentials)
        return [obj for kind in CHILD_KINDS for obj in self._list(remote, kind, namespace, selector)]

    def delete(self, name: str, credentials: RemoteCredentials, namespace: str, kind: str, object_name: str) -> None:
        """Delete one child (and its pods); already gone is fine."""
        remote = self._client(name, credentials)
        body = client.V1DeleteOptions(propagation_policy="Background")
        try:
            if kind == "Job":
                client.BatchV1Api(remote.api_client).delete_namespaced_job(object_name, namespace, body=body)
            elif kind == "Deployment":
                client.AppsV1Api(remote.api_client).delete_namespaced_deployment(object_name, namespace, body=body)
            else:
                remote.core.delete_namespaced_service(object_name, namespace, body=body)
        except ApiException as exc:
            if exc.status != 404:
                raise
