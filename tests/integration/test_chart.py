"""The chart on a real control plane: `helm template | kubectl apply --server-side`, then the operator run as the
chart's ServiceAccount (a token from the TokenRequest API, so RBAC is the chart's own) with the chart's own
environment, placing the examples signed by `mlplacement sign`.

No kubelet runs the operator's pod here: the operator is a process on this machine, given exactly what the chart's
Deployment gives its container (env, fieldRefs resolved as the kubelet would). Needs helm (`make tools`) and a
control plane; skips without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplacement.core import keyring as keyring_core
from tests.conftest import REPO
from tests.controlplane import ControlPlane, free_port, inherited_environment, wait_until
from tests.integration.test_operator import KEY, gpu_status

RELEASE_NAMESPACE = "mlplacement-system"
# The examples' namespaces and the pools their workloads ask for (region, GPU product, spot).
EXAMPLE_NAMESPACES = ("team-recsys", "team-payments", "team-search")
POOLS = {
    "a100-euw1": ("eu-west-1", "NVIDIA-A100-SXM4-80GB", False),
    "l4-euc1": ("eu-central-1", "NVIDIA-L4", False),
    "a10g-spot-use1": ("us-east-1", "NVIDIA-A10G", True),
}
EXAMPLES = ("workload-daily-training.yaml", "workload-realtime-inference.yaml", "workload-spot-batch.yaml")


def helm() -> str:
    found = shutil.which("helm")
    if found is None:
        pytest.skip("no helm on PATH: `make tools` installs the real binary")
    return found


def render(release: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm(), "template", release, str(REPO / "helm/mlplacement"), "--namespace", RELEASE_NAMESPACE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def container_env(documents: list[dict[str, Any]], pod_name: str) -> dict[str, str]:
    """The operator container's environment as the kubelet would give it (fieldRefs resolved)."""
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    fields = {
        "metadata.namespace": RELEASE_NAMESPACE,
        "metadata.name": pod_name,
        "spec.serviceAccountName": spec["serviceAccountName"],
    }
    env = {}
    for item in spec["containers"][0].get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def service_account_kubeconfig(plane: ControlPlane, documents: list[dict[str, Any]], name: str) -> Path:
    """A kubeconfig holding a token the API server issued for the chart's ServiceAccount (TokenRequest)."""
    account = next(d for d in documents if d["kind"] == "ServiceAccount")["metadata"]["name"]
    token = plane.kubectl("create", "token", account, "-n", RELEASE_NAMESPACE, "--duration=2h").stdout.strip()
    config = json.loads(plane.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path = plane.directory / f"kubeconfig-{name}"
    path.write_text(json.dumps(config))
    return path


class ChartOperator:
    """`mlplacement run` with the chart's environment and ServiceAccount; health and metrics on free ports."""

    def __init__(self, plane: ControlPlane, release: str, drop: tuple[str, ...] = ()) -> None:
        documents = render(release)
        self.env = {k: v for k, v in container_env(documents, f"{release}-0").items() if k not in drop}
        self.health, self.metrics = free_port(), free_port()
        # The two ports are the pod's own in the chart; on a shared machine they must be free ones.
        self.env.update(MLPLACEMENT_HEALTH_PORT=str(self.health), MLPLACEMENT_METRICS_PORT=str(self.metrics))
        self.kubeconfig = service_account_kubeconfig(plane, documents, release)
        self.log_path = plane.directory / f"operator-chart-{release}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = inherited_environment()
        env.update(self.env, KUBECONFIG=str(self.kubeconfig))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlplacement", "run"], env=env, stdout=log, stderr=log, cwd=REPO
            )

    def get(self, port: int, path: str) -> str:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            return ""

    def log(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"plain": line})
        return lines

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> ControlPlane:
    control_plane.kubectl("create", "namespace", RELEASE_NAMESPACE)
    for namespace in EXAMPLE_NAMESPACES:
        control_plane.kubectl("create", "namespace", namespace)
    manifests = subprocess.run(
        [helm(), "template", "mlplacement", str(REPO / "helm/mlplacement"), "--namespace", RELEASE_NAMESPACE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    control_plane.kubectl("apply", "--server-side", "-f", "-", stdin=manifests)
    # What the platform team adds: the trusted key (the chart names the Secret), nodes, signals that are fresh.
    control_plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "mlplacement-trusted-keys", "namespace": RELEASE_NAMESPACE},
            "stringData": {"platform.pem": keyring_core.public_pem(KEY).decode()},
        }
    )
    for pool, (region, product, spot) in POOLS.items():
        labels = {
            "mlplacement.io/pool": pool,
            "topology.kubernetes.io/region": region,
            "nvidia.com/gpu.product": product,
        }
        if spot:
            labels["karpenter.sh/capacity-type"] = "spot"
        control_plane.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"{pool}-0", "labels": labels}})
        control_plane.kubectl("patch", "node", f"{pool}-0", "--subresource=status", "--type=merge", "-p", gpu_status(8))
    signals = yaml.safe_load((REPO / "examples/signals-configmap.yaml").read_text())
    document = yaml.safe_load(signals["data"]["signals.yaml"])
    document["updatedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signals["data"]["signals.yaml"] = yaml.safe_dump(document)
    control_plane.apply(signals)
    return control_plane


def signed_examples(plane: ControlPlane, names: tuple[str, ...]) -> str:
    """`mlplacement sign` over the examples, as CI signs manifests before they merge."""
    key = plane.directory / "platform.key"
    key.write_bytes(keyring_core.private_pem(KEY))
    result = subprocess.run(
        [sys.executable, "-m", "mlplacement", "sign", *(str(REPO / "examples" / n) for n in names), "--key", str(key)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return result.stdout


def phase(plane: ControlPlane, namespace: str, name: str) -> str:
    return str(((plane.get("mlworkload", name, "-n", namespace) or {}).get("status") or {}).get("phase") or "")


def test_the_chart_installed_as_rendered_runs_the_operator_under_its_own_rbac_and_places_the_examples(
    plane: ControlPlane,
) -> None:
    operator = ChartOperator(plane, "mlplacement")
    operator.start()
    try:
        plane.kubectl("apply", "--server-side", "-f", "-", stdin=signed_examples(plane, ("policy-default.yaml",)))
        plane.kubectl("apply", "--server-side", "-f", "-", stdin=signed_examples(plane, EXAMPLES))
        expected = {
            ("team-recsys", "recsys-nightly"),
            ("team-payments", "fraud-scorer"),
            ("team-search", "embeddings-backfill"),
        }
        wait_until(
            lambda: all(phase(plane, ns, name) == "Placed" for ns, name in expected), 90, "the three examples placed"
        )
        assert "caches synced" in operator.get(operator.health, "/readyz")
        # Nothing the chart's RBAC refused (the server says "forbidden"); digests may contain "403", words do not.
        forbidden = [line for line in operator.log() if "forbidden" in str(line.get("message", "")).lower()]
        assert forbidden == []
        assert 'mlplacement_leader{state="leading"} 1.0' in operator.get(operator.metrics, "/metrics")
        # Structured logs only: every line the chart's default (json) produces is one JSON object.
        assert [line for line in operator.log() if "plain" in line] == []
    finally:
        operator.kill()


def test_a_lease_the_chart_does_not_grant_is_said_loudly_not_silently(plane: ControlPlane) -> None:
    """The chart of release "ml" grants its ServiceAccount the Lease "ml-mlplacement-leader" only; run without the
    chart's MLPLACEMENT_LEASE_NAME the operator asks for the default "mlplacement-leader" and is refused."""
    plane.kubectl("apply", "--server-side", "-f", "-", stdin=_rendered_text("ml"))
    operator = ChartOperator(plane, "ml", drop=("MLPLACEMENT_LEASE_NAME",))
    operator.start()
    try:
        warning = wait_until(
            lambda: next(
                (line for line in operator.log() if "cannot be read or written" in str(line.get("message", ""))), None
            ),
            60,
            "a warning about the Lease",
        )
        assert warning["severity"] == "warn"
        assert "forbidden" in str(warning.get("message")).lower()
        ready = operator.get(operator.health, "/readyz")
        assert "cannot be used" in ready
        assert "forbidden" in ready.lower()
        assert 'mlplacement_leader{state="lease-error"} 1.0' in operator.get(operator.metrics, "/metrics")
    finally:
        operator.kill()


def _rendered_text(release: str) -> str:
    return "\n---\n".join(yaml.safe_dump(doc) for doc in render(release) if doc["kind"] != "CustomResourceDefinition")
