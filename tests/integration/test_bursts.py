"""A burst of workloads against a real kube-apiserver (a control plane of this module's own): rounds are planned
while earlier rounds' Jobs and statuses are still being written (controller.workloads.start_round), and the
pool is never promised twice. No scheduler or Job controller runs, so children never get pods: what holds the
capacity between rounds is the operator's own commitment, made before its first write.

Job creates in the burst's namespace pass a validating webhook that answers after SLOW_SECONDS, as a policy
engine under load does: every round's writes are still in flight when the next round is planned.
Needs KUBEBUILDER_ASSETS (or setup-envtest's store); skips without it.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlplacement.core import keyring as keyring_core
from mlplacement.core.certs import issue
from tests.builders import make_policy, make_workload
from tests.conftest import REPO
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_capacity import gpus_asked, placed
from tests.integration.test_operator import KEY, Operator, gpu_status, node, signed

NAMESPACE = "team-burst"
POOL_GPUS = 8
BURST = 24
SLOW_SECONDS = 0.3


class SlowAdmission(BaseHTTPRequestHandler):
    """Allows every AdmissionReview, SLOW_SECONDS after it arrives; counts the Jobs it was asked about."""

    seen: list[str] = []

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        self.seen.append(str(request.get("name") or ""))
        time.sleep(SLOW_SECONDS)
        body = json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": request["uid"], "allowed": True},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def slow_webhook(plane: ControlPlane, directory: Path) -> ThreadingHTTPServer:
    """Serve SlowAdmission over TLS on a free port and register it for Job creates in NAMESPACE."""
    tls = issue(["localhost"], datetime.now(UTC))
    (directory / "tls.crt").write_text(tls.cert)
    (directory / "tls.key").write_text(tls.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowAdmission)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    webhook = {
        "name": "slow-jobs.mlplacement.test",
        "clientConfig": {
            "url": f"https://localhost:{server.server_address[1]}/",
            "caBundle": base64.b64encode(tls.ca_bundle.encode()).decode(),
        },
        "rules": [{"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["jobs"]}],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
    }
    plane.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "slow-jobs"},
            "webhooks": [webhook],
        }
    )

    def asked() -> bool:  # the apiserver picks the configuration up a moment later: a server-side dry run shows it
        plane.kubectl("create", "job", "probe", "--image=busybox", "-n", NAMESPACE, "--dry-run=server", check=False)
        return "probe" in SlowAdmission.seen

    wait_until(asked, 30, "the apiserver to call the slow webhook")
    return server


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.install_home(
        REPO / "crds", (NAMESPACE,), keyring_core.public_pem(KEY), signed(make_policy("default"))
    )
    control_plane.apply(node("l4-1", "l4-euw1"))
    control_plane.kubectl("patch", "node", "l4-1", "--subresource=status", "--type=merge", "-p", gpu_status(POOL_GPUS))
    server = slow_webhook(control_plane, control_plane.directory)
    operator = Operator(control_plane)
    operator.start()
    yield control_plane
    operator.kill()
    server.shutdown()


def test_a_burst_of_workloads_gets_exactly_the_pools_gpus_and_the_rest_wait(plane: ControlPlane) -> None:
    names = [f"burst-{index:02d}" for index in range(BURST)]
    items = [signed(make_workload(name=name, namespace=NAMESPACE, resources={"gpus": 1})) for name in names]
    # One kubectl call each, a fraction of SLOW_SECONDS apart: each wakes the operator while the round before is
    # still being written.
    for item in items:
        plane.apply(item)
    wait_until(lambda: all(placed(plane, NAMESPACE, name) for name in names), 90, "a decision for every workload")
    outcomes = [placed(plane, NAMESPACE, name) for name in names]
    assert outcomes.count(("True", "Dispatched")) == POOL_GPUS
    assert outcomes.count(("False", "WaitingForCapacity")) == BURST - POOL_GPUS
    assert gpus_asked(plane) == POOL_GPUS
    assert sum(name.startswith("mlw-burst-") for name in SlowAdmission.seen) == POOL_GPUS  # each Job asked once
