"""The operator against a real kube-apiserver: signed work gets its Job, unsigned work gets a reason.

Needs KUBEBUILDER_ASSETS (etcd, kube-apiserver, kubectl in the envtest layout); skips without it. There is
no kube-controller-manager in that layout, so garbage collection of owned children is asserted through
the owner reference rather than by waiting for the collector.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign
from tests.builders import make_policy, make_workload, with_annotations
from tests.conftest import REPO
from tests.controlplane import ControlPlane, free_port, inherited_environment, wait_until

KEY = keyring_core.generate_key()
NAMESPACE = "team-a"


def signed(obj: dict[str, Any]) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, KEY, "platform"))


def node(name: str, pool: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "mlplacement.io/pool": pool,
                "topology.kubernetes.io/region": "eu-west-1",
                "nvidia.com/gpu.product": "NVIDIA-A100",
            },
        },
    }


def gpu_status(gpus: int) -> str:
    import json

    return json.dumps(
        {
            "status": {
                "capacity": {"nvidia.com/gpu": str(gpus), "cpu": "64", "memory": "512Gi", "pods": "110"},
                "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64", "memory": "512Gi", "pods": "110"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "test node",
                        "lastHeartbeatTime": "2026-11-22T12:00:00Z",
                        "lastTransitionTime": "2026-11-22T12:00:00Z",
                    }
                ],
            }
        }
    )


class Operator:
    """One operator replica, a process of its own. ``user`` picks its identity at the API server (audit log)."""

    def __init__(self, plane: ControlPlane, extra_env: dict[str, str] | None = None, user: str | None = None) -> None:
        self.plane = plane
        self.extra_env = extra_env or {}
        self.user = user
        self.process: subprocess.Popen[bytes] | None = None
        self.health_port = 0
        # Every start of this replica appends here: what a test reads of the operator's own words.
        self.log_path = plane.directory / f"operator-{user or 'admin'}.log"

    def start(self) -> None:
        kubeconfig = self.plane.kubeconfig_for(self.user) if self.user else self.plane.kubeconfig
        self.health_port = free_port()
        env = {
            **inherited_environment(),
            "KUBECONFIG": str(kubeconfig),
            "MLPLACEMENT_METRICS_PORT": "0",
            "MLPLACEMENT_HEALTH_PORT": str(self.health_port),
            "MLPLACEMENT_RELOAD_SECONDS": "1",
            "MLPLACEMENT_PLACEMENT_INTERVAL_SECONDS": "0.5",
            "MLPLACEMENT_LOG_FORMAT": "plain",
            # Short leases: a replica killed by a test is replaced within seconds, not the default 15.
            "MLPLACEMENT_LEASE_DURATION_SECONDS": "4",
            "MLPLACEMENT_RENEW_DEADLINE_SECONDS": "3",
            "MLPLACEMENT_RETRY_PERIOD_SECONDS": "0.5",
            "MLPLACEMENT_SHUTDOWN_GRACE_SECONDS": "5",
            "MLPLACEMENT_POD_NAME": self.user or "operator",
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlplacement", "run"], env=env, stdout=log, stderr=log, cwd=REPO
        )

    def readyz(self) -> str:
        """What /readyz says (its role: leading with caches synced or not, standby, lease error); "" if no answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            return ""

    def audit_records(self) -> list[dict[str, Any]]:
        """Every audit record this replica wrote, over all its starts (JSON lines among the log)."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith('{"apiVersion":"mlplacement.io/audit/'):
                records.append(json.loads(line))
        return records

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> None:
        """What the kubelet does for a container that exited: start it again."""
        if not self.alive():
            self.start()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=20)

    def terminate(self) -> int:
        """SIGTERM, as the kubelet sends on a rollout or drain; the exit code."""
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    plane = control_plane
    plane.install_home(REPO / "crds", (NAMESPACE,), keyring_core.public_pem(KEY), signed(make_policy("default")))
    for name, pool, gpus in (("gpu-1", "a100-euw1", 8), ("gpu-2", "a100-euw1", 8)):
        plane.apply(node(name, pool))
        plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", gpu_status(gpus))
    operator = Operator(plane)
    operator.start()
    plane.operator = operator  # type: ignore[attr-defined]
    yield plane
    operator.kill()


def workload(name: str, **spec: Any) -> dict[str, Any]:
    return make_workload(name=name, namespace=NAMESPACE, resources={"gpus": 2}, **spec)


def condition(plane: ControlPlane, name: str, type_: str) -> tuple[str, str] | None:
    obj = plane.get("mlworkload", name, "-n", NAMESPACE)
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"], c["reason"]
    return None


def job(plane: ControlPlane, name: str) -> Any:
    return plane.get("job", f"mlw-{name}", "-n", NAMESPACE)


def test_signed_workload_gets_its_job_on_the_pool(cluster: ControlPlane) -> None:
    cluster.apply(signed(workload("trainer")))
    wait_until(lambda: condition(cluster, "trainer", "Placed") == ("True", "Dispatched"), 60, "Placed=True")
    created = wait_until(lambda: job(cluster, "trainer"), 30, "the Job")
    assert created["spec"]["template"]["spec"]["nodeSelector"] == {"mlplacement.io/pool": "a100-euw1"}
    assert created["metadata"]["ownerReferences"][0]["kind"] == "MLWorkload"
    obj = cluster.get("mlworkload", "trainer", "-n", NAMESPACE)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(cluster, "trainer", "Verified") == ("True", "Verified")


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        pytest.param("unsigned", lambda: workload("unsigned"), "SignatureMissing", id="unsigned"),
        pytest.param(
            "tampered",
            lambda: {**signed(workload("tampered")), "spec": {**workload("tampered")["spec"], "args": ["--evil"]}},
            "SignatureInvalid",
            id="tampered",
        ),
        pytest.param(
            "orphan",
            lambda: signed(workload("orphan", policyRef={"name": "unsigned-policy"})),
            "PolicyUnsigned",
            id="policy unsigned",
        ),
    ],
)
def test_refused_workloads_get_a_reason_and_no_job(cluster: ControlPlane, name: str, make: Any, reason: str) -> None:
    cluster.apply({**make_policy("unsigned-policy"), "metadata": {"name": "unsigned-policy"}})
    cluster.apply(make())
    wait_until(lambda: condition(cluster, name, "Verified") == ("False", reason), 60, f"Verified=False {reason}")
    assert job(cluster, name) is None


def test_spec_update_updates_the_same_job_and_nothing_of_the_users(cluster: ControlPlane) -> None:
    cluster.apply(signed(workload("updated")))
    wait_until(lambda: job(cluster, "updated"), 60, "the first Job")
    before = cluster.get("mlworkload", "updated", "-n", NAMESPACE)
    changed = signed(workload("updated", args=["--epochs", "9"]))
    cluster.apply(changed)
    wait_until(
        lambda: (
            ((job(cluster, "updated") or {}).get("metadata", {}).get("annotations") or {}).get(
                "mlplacement.io/workload-generation"
            )
            == "2"
        ),
        60,
        "the Job of generation 2",
    )
    after = cluster.get("mlworkload", "updated", "-n", NAMESPACE)
    assert after["spec"] == changed["spec"]
    assert after["metadata"].get("labels") == before["metadata"].get("labels")
    user_annotations = {k: v for k, v in after["metadata"]["annotations"].items() if not k.startswith("kopf.")}
    assert user_annotations == changed["metadata"]["annotations"]
    assert not any(k.startswith("kopf.") for k in after["metadata"]["annotations"])


def test_killing_the_operator_mid_reconcile_leaves_one_job(cluster: ControlPlane) -> None:
    operator = cluster.operator  # type: ignore[attr-defined]
    cluster.apply(signed(workload("crashy")))
    operator.kill()
    operator.start()
    wait_until(lambda: job(cluster, "crashy"), 60, "the Job after a restart")
    jobs = cluster.get("jobs", "-n", NAMESPACE, "-l", "mlplacement.io/workload=crashy")
    assert len(jobs["items"]) == 1


def test_unchanged_user_object_after_reconcile(cluster: ControlPlane) -> None:
    original = signed(workload("untouched"))
    cluster.apply(copy.deepcopy(original))
    wait_until(lambda: condition(cluster, "untouched", "Placed"), 60, "a decision")
    seen = cluster.get("mlworkload", "untouched", "-n", NAMESPACE)
    assert seen["spec"] == original["spec"]
    assert seen["metadata"]["labels"] == original["metadata"]["labels"]
    assert seen["metadata"]["annotations"] == original["metadata"]["annotations"]


def test_a_childs_status_flowing_back_keeps_every_condition(cluster: ControlPlane) -> None:
    import json

    cluster.apply(signed(workload("flowback")))
    wait_until(lambda: condition(cluster, "flowback", "Placed") == ("True", "Dispatched"), 60, "Placed=True")
    # Another controller owns a condition of its own on the same object (server-side apply, its own manager).
    quota = {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": "flowback", "namespace": NAMESPACE},
        "status": {
            "conditions": [
                {
                    "type": "QuotaReserved",
                    "status": "True",
                    "reason": "Admitted",
                    "message": "admitted by the quota controller",
                    "lastTransitionTime": "2026-11-22T12:00:00Z",
                }
            ]
        },
    }
    cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=quota-controller",
        "--subresource=status",
        "-f",
        "-",
        stdin=json.dumps(quota),
    )
    # No job controller runs here: report a running pod in the Job's status as it would.
    running = {"status": {"active": 1, "ready": 1, "startTime": "2026-11-22T12:00:00Z"}}
    cluster.kubectl(
        "patch",
        "job",
        "mlw-flowback",
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(running),
    )
    wait_until(lambda: condition(cluster, "flowback", "Ready") == ("True", "Running"), 60, "Ready=True Running")
    for type_, expected in (("Verified", "True"), ("Placed", "True"), ("QuotaReserved", "True")):
        assert (condition(cluster, "flowback", type_) or ("missing",))[0] == expected, type_


def test_a_finished_job_teaches_the_workload_its_run_length(cluster: ControlPlane) -> None:
    """#32 on a real apiserver: no expectedGPUHours stated; its Job ran 3 h on 2 A100s, so status.learned keeps
    6 A100 GPU-hours (the spec stays as signed), and the next generation is priced per job with it."""
    cluster.apply(signed(workload("learner", type="Training")))
    wait_until(lambda: job(cluster, "learner"), 60, "the Job")
    ended = datetime.now(UTC)
    cluster.complete_job(NAMESPACE, "mlw-learner", ended - timedelta(hours=3), ended)
    learned = wait_until(
        lambda: ((cluster.get("mlworkload", "learner", "-n", NAMESPACE) or {}).get("status") or {}).get("learned"),
        60,
        "status.learned from the finished Job",
    )
    assert learned == {"referenceGPUHours": [6.0]}
    again = signed(workload("learner", type="Training", args=["--epochs", "9"]))
    cluster.apply(again)

    def message() -> str:
        status = (cluster.get("mlworkload", "learner", "-n", NAMESPACE) or {}).get("status") or {}
        if status.get("observedGeneration") != 2:
            return ""
        return str((status.get("placement") or {}).get("message", ""))

    assert "(3.0h a run, learned from 1 earlier run)" in wait_until(message, 60, "generation 2 placed")
    assert cluster.get("mlworkload", "learner", "-n", NAMESPACE)["spec"] == again["spec"]
