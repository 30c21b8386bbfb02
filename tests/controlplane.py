"""A real control plane for integration tests and bench/drain.py: etcd + kube-apiserver in the envtest layout.

The binaries come from KUBEBUILDER_ASSETS, or, when it is unset, from where `setup-envtest use` keeps them
(the newest version found). Nothing here fakes an API server: without the binaries the integration tests
skip and say why. Each control plane listens on loopback ports of its own and keeps its data in a
temporary directory, so several can run at once (edge clusters), and none can touch a real cluster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

TOKEN = "integration-admin-token"
# Users besides admin, each with every right, so that what each operator replica writes can be told apart in
# the audit log (the API server's own account of every write).
REPLICA_USERS = ("replica-a", "replica-b", "replica-c")
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""
# Where setup-envtest keeps its downloads (Linux, then macOS), one directory per version and platform.
ENVTEST_STORES = (
    Path.home() / ".local/share/kubebuilder-envtest/k8s",
    Path.home() / "Library/Application Support/io.kubebuilder.envtest/k8s",
)


def _version_key(directory: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", directory.name.split("-")[0]))


def find_assets(
    environ: Mapping[str, str] = os.environ, stores: tuple[Path, ...] = ENVTEST_STORES
) -> tuple[Path | None, str]:
    """(directory with etcd and kube-apiserver, how it was found) or (None, why there is none)."""
    explicit = environ.get("KUBEBUILDER_ASSETS", "")
    if explicit:
        candidates, origin = [Path(explicit)], "KUBEBUILDER_ASSETS"
    else:
        arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine, os.uname().machine)
        platform = f"{sys.platform}-{arch}"
        candidates = sorted(
            (d for store in stores if store.is_dir() for d in store.iterdir() if d.name.endswith(platform)),
            key=_version_key,
            reverse=True,
        )
        origin = "setup-envtest's store"
        if not candidates:
            return None, (
                "no control plane: set KUBEBUILDER_ASSETS to a directory with etcd, kube-apiserver and kubectl, "
                f"or run `setup-envtest use` (looked in {', '.join(str(s) for s in stores)})"
            )
    directory = candidates[0]
    missing = [b for b in ("etcd", "kube-apiserver") if not (directory / b).is_file()]
    if missing:
        return None, f"{directory} (from {origin}) lacks {', '.join(missing)}"
    if not (directory / "kubectl").is_file() and shutil.which("kubectl") is None:
        return None, f"no kubectl in {directory} or on PATH"
    return directory, f"{directory} (from {origin})"


ASSETS_DIR, ASSETS_ORIGIN = find_assets()
ASSETS = str(ASSETS_DIR or "")


def describe_binaries() -> str:
    """Which binaries the control planes use, with the versions they report."""
    if ASSETS_DIR is None:
        return ASSETS_ORIGIN
    versions = []
    for binary, flag in (("kube-apiserver", "--version"), ("etcd", "--version")):
        try:
            out = subprocess.run([str(ASSETS_DIR / binary), flag], capture_output=True, text=True, timeout=20)
            versions.append((out.stdout or out.stderr).splitlines()[0].strip())
        except (OSError, IndexError, subprocess.TimeoutExpired):
            versions.append(f"{binary} (version unknown)")
    return f"{ASSETS_ORIGIN}: {'; '.join(versions)}"


def inherited_environment() -> dict[str, str]:
    """This process's environment minus MLPLACEMENT_* variables: an operator started by a test gets only the
    settings the test gives it (and refuses unknown MLPLACEMENT_* ones, such as the test switches)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLPLACEMENT_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)  # polling a condition, not waiting blindly
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class ControlPlane:
    directory: Path
    port: int
    processes: list[subprocess.Popen[bytes]]
    kubeconfig: Path
    apiserver_command: tuple[str, ...] = ()

    @property
    def ca_data(self) -> bytes:
        """The apiserver's self-signed serving certificate: what an edge kubeconfig trusts."""
        return (self.directory / "certs" / "apiserver.crt").read_bytes()

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig that authenticates as ``user`` (one of REPLICA_USERS)."""
        config = json.loads(self.kubeconfig.read_text())
        config["users"] = [{"name": "admin", "user": {"token": f"{user}-token"}}]
        path = self.directory / f"kubeconfig-{user}"
        path.write_text(json.dumps(config))
        return path

    def writes_by_user(self, since: int = 0) -> dict[str, list[str]]:
        """Completed writes per user from the audit log, from byte ``since`` on: "verb resource/name" each."""
        writes: dict[str, list[str]] = {}
        with (self.directory / "audit.log").open("rb") as log:
            log.seek(since)
            for line in log:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if event.get("stage") != "ResponseComplete":
                    continue
                ref = event.get("objectRef") or {}
                user = (event.get("user") or {}).get("username", "")
                what = f"{event.get('verb')} {ref.get('resource')}/{ref.get('name', '')}"
                writes.setdefault(user, []).append(what)
        return writes

    def audit_offset(self) -> int:
        path = self.directory / "audit.log"
        return path.stat().st_size if path.exists() else 0

    def edge_kubeconfig(self) -> str:
        """An allow-list kubeconfig for this control plane: https, inline CA data, inline token."""
        from tests.builders import edge_kubeconfig

        return edge_kubeconfig(f"https://127.0.0.1:{self.port}", self.ca_data, token=TOKEN)

    def install_home(self, crds: Path, namespaces: tuple[str, ...], trusted_pem: bytes, policy: dict[str, Any]) -> None:
        """What a platform team installs before any workload: CRDs, namespaces, trusted key, default policy."""
        import base64

        self.kubectl("apply", "-f", str(crds))
        for namespace in ("mlplacement-system", *namespaces):
            self.kubectl("create", "namespace", namespace, check=False)
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "mlplacement-trusted-keys", "namespace": "mlplacement-system"},
                "data": {"platform.pem": base64.b64encode(trusted_pem).decode()},
            }
        )
        self.apply(policy)

    def start_controllers(self) -> None:
        """kube-controller-manager (garbage collection, namespace deletion, Jobs get pods) and kube-scheduler (pods
        bound to nodes that fit, or Unschedulable), when the binaries are there; skips the test otherwise."""
        import pytest

        missing = [b for b in ("kube-controller-manager", "kube-scheduler") if not (Path(ASSETS) / b).is_file()]
        if missing:
            pytest.skip(f"{ASSETS_ORIGIN} lacks {', '.join(missing)}")
        from tests.standins.databricks import self_signed_certificate

        # The signers want a file of one certificate; the apiserver's own holds a chain of two.
        (self.directory / "signing-ca").mkdir(exist_ok=True)
        ca_cert, ca_key = self_signed_certificate(self.directory / "signing-ca")
        common = (
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        )
        commands = {
            "kube-controller-manager": (
                *common,
                # Without a kubelet every node would be tainted unreachable and its pods evicted.
                "--controllers=*,-nodelifecycle",
                f"--service-account-private-key-file={self.directory / 'sa.key'}",
                f"--root-ca-file={ca_cert}",
                f"--cluster-signing-cert-file={ca_cert}",
                f"--cluster-signing-key-file={ca_key}",
                "--use-service-account-credentials=false",
                "--service-cluster-ip-range=10.0.0.0/24",
            ),
            "kube-scheduler": common,
        }
        for binary, flags in commands.items():
            logs = (self.directory / f"{binary}.log").open("ab")
            # Before the apiserver in the list: stop_apiserver() takes the last process.
            self.processes.insert(1, subprocess.Popen([str(Path(ASSETS) / binary), *flags], stdout=logs, stderr=logs))

    def stop_apiserver(self) -> None:
        """Take the API server down (etcd keeps the data), as an edge site dropping off the network."""
        apiserver = self.processes.pop()
        apiserver.terminate()
        apiserver.wait(timeout=30)

    def start_apiserver(self) -> None:
        logs = (self.directory / "apiserver.log").open("ab")
        self.processes.append(subprocess.Popen(list(self.apiserver_command), stdout=logs, stderr=logs))
        wait_until(lambda: _ready(self.port), 60, "kube-apiserver /readyz after restart")

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        binary = str(Path(ASSETS) / "kubectl") if (Path(ASSETS) / "kubectl").is_file() else "kubectl"
        return subprocess.run(
            [binary, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            text=True,
            capture_output=True,
            check=check,
            timeout=60,
        )

    def get(self, *args: str) -> Any:
        result = self.kubectl("get", *args, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(obj))

    def complete_job(self, namespace: str, name: str, started: datetime, ended: datetime) -> None:
        """What the Job controller writes when a Job's pod succeeds (no kubelet runs pods here): its start and
        completion times and the Complete condition, through the status subresource."""
        at = ended.strftime("%Y-%m-%dT%H:%M:%SZ")

        def condition(type_: str) -> dict[str, str]:
            return {
                "type": type_,
                "status": "True",
                "reason": "CompletionsReached",
                "message": "Reached expected number of succeeded pods",
                "lastProbeTime": at,
                "lastTransitionTime": at,
            }

        base = {"startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "completionTime": at, "succeeded": 1}
        base |= {"active": 0, "ready": 0}
        # Newer API servers want SuccessCriteriaMet before Complete (as the Job controller writes it), older ones
        # only Complete: try the newer form first and keep the server's words if both are refused.
        refusals = []
        for conditions in (["SuccessCriteriaMet", "Complete"], ["Complete"]):
            status = {"status": {**base, "conditions": [condition(t) for t in conditions]}}
            patch = ("--subresource=status", "--type=merge", "-p", json.dumps(status))
            result = self.kubectl("patch", "job", name, "-n", namespace, *patch, check=False)
            if result.returncode == 0:
                return
            refusals.append(result.stderr.strip())
        raise AssertionError(f"the API server refused the Job's completion: {refusals}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _ready(port: int) -> bool:
    request = urllib.request.Request(f"https://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_control_plane(directory: Path) -> ControlPlane:
    directory.mkdir(parents=True, exist_ok=True)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    key = ec.generate_private_key(ec.SECP256R1())
    (directory / "sa.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "sa.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    users = [f'{TOKEN},admin,admin,"system:masters"'] + [f'{u}-token,{u},{u},"system:masters"' for u in REPLICA_USERS]
    (directory / "tokens.csv").write_text("\n".join(users) + "\n")
    (directory / "audit-policy.yaml").write_text(AUDIT_POLICY)
    logs = (directory / "etcd.log").open("wb")
    etcd = subprocess.Popen(
        [
            str(Path(ASSETS) / "etcd"),
            f"--data-dir={directory / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
        ],
        stdout=logs,
        stderr=logs,
    )
    api_logs = (directory / "apiserver.log").open("wb")
    command = (
        str(Path(ASSETS) / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={directory / 'certs'}",
        f"--secure-port={api_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        f"--token-auth-file={directory / 'tokens.csv'}",
        f"--service-account-key-file={directory / 'sa.pub'}",
        f"--service-account-signing-key-file={directory / 'sa.key'}",
        f"--service-account-issuer=https://127.0.0.1:{api_port}",
        "--disable-admission-plugins=ServiceAccount",
        f"--audit-policy-file={directory / 'audit-policy.yaml'}",
        f"--audit-log-path={directory / 'audit.log'}",
        "--audit-log-mode=blocking",  # every write is in the log when its response is
    )
    apiserver = subprocess.Popen(list(command), stdout=api_logs, stderr=api_logs)
    kubeconfig = directory / "kubeconfig"
    plane = ControlPlane(directory, api_port, [etcd, apiserver], kubeconfig, command)
    try:
        wait_until(lambda: _ready(api_port), 60, "kube-apiserver /readyz")
    except AssertionError:
        plane.stop()
        raise
    # Verified TLS, as a real kubeconfig has it: the CA is the apiserver's own self-signed one (made at its start).
    import base64

    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [
                    {
                        "name": "test",
                        "cluster": {
                            "server": f"https://127.0.0.1:{api_port}",
                            "certificate-authority-data": base64.b64encode(plane.ca_data).decode(),
                        },
                    }
                ],
                "users": [{"name": "admin", "user": {"token": TOKEN}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            }
        )
    )
    return plane
