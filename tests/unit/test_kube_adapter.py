"""The home-cluster adapter over real HTTP: what it sends, and how it words what the server refuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mlplacement.adapters.kube import KubeCluster, apply_failure


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]]

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"path": self.path, "content_type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()


def test_workload_status_is_a_server_side_apply_of_the_owned_status(server: Any) -> None:
    host, seen = server
    configuration = client.Configuration()
    configuration.host = host
    cluster = KubeCluster(client.ApiClient(configuration))
    status = {"phase": "Placed", "conditions": [{"type": "Placed", "status": "True"}]}
    cluster.apply_workload_status("team-a", "trainer", status)
    (request,) = seen
    assert request["path"] == (
        "/apis/mlplacement.io/v1alpha1/namespaces/team-a/mlworkloads/trainer/status?fieldManager=mlplacement&force=true"
    )
    assert request["content_type"] == "application/apply-patch+yaml"
    assert request["body"] == {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": "trainer", "namespace": "team-a"},
        "status": status,
    }


def refusal(status: int, message: str, reason: str = "", details: dict[str, Any] | None = None) -> ApiException:
    exc = ApiException(status=status, reason=reason or "Refused")
    exc.body = json.dumps({"kind": "Status", "message": message, "reason": reason, "details": details or {}})
    return exc


REFUSALS = [
    pytest.param(
        refusal(
            403,
            'jobs.batch "mlw-x" is forbidden: unable to create new content in namespace gone because it is being '
            "terminated",
            "Forbidden",
        ),
        "NamespaceTerminating",
        id="namespace being deleted",
    ),
    pytest.param(
        refusal(404, 'namespaces "gone" not found', "NotFound", {"name": "gone", "kind": "namespaces"}),
        "NamespaceNotFound",
        id="namespace missing",
    ),
    pytest.param(
        refusal(403, 'jobs.batch "mlw-x" is forbidden: exceeded quota: gpu, requested: 4', "Forbidden"),
        "QuotaExceeded",
        id="over quota",
    ),
    pytest.param(refusal(403, 'User "x" cannot create resource "jobs"', "Forbidden"), "Forbidden", id="RBAC"),
    pytest.param(refusal(422, 'Job.batch "mlw-x" is invalid: spec.template', "Invalid"), "Invalid", id="invalid"),
    pytest.param(refusal(503, "etcdserver: leader changed", "ServiceUnavailable"), "ServerError", id="5xx"),
]


@pytest.mark.parametrize(("exc", "reason"), REFUSALS)
def test_a_refusal_gets_a_stable_reason_and_the_servers_words(exc: ApiException, reason: str) -> None:
    failure = apply_failure(exc)
    assert failure.reason == reason
    assert json.loads(exc.body)["message"] in failure.message
