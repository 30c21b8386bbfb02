"""End to end on a kind cluster with the chart installed: `make kind-up deploy e2e` (needs Docker).

Skips unless MLPLACEMENT_E2E_CONTEXT names the kubectl context (the Makefile sets it). Everything here goes
through the real image, the real chart and kubectl: keys, trusted-keys Secret, signed policy and workload.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_cli

CONTEXT = os.environ.get("MLPLACEMENT_E2E_CONTEXT", "")
NAMESPACE = os.environ.get("MLPLACEMENT_E2E_NAMESPACE", "mlplacement-system")

pytestmark = pytest.mark.skipif(
    not CONTEXT or shutil.which("kubectl") is None,
    reason="set MLPLACEMENT_E2E_CONTEXT (make e2e does, after make kind-up deploy) and put kubectl on PATH",
)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--context", CONTEXT, *args], input=stdin, capture_output=True, text=True, check=check
    )


def wait_condition(namespace: str, name: str, condition: str, timeout: str = "180s") -> dict[str, Any]:
    """Block in `kubectl wait` (a watch on the apiserver) until the MLWorkload has the condition, then read it."""
    result = kubectl(
        "-n",
        namespace,
        "wait",
        f"mlworkload/{name}",
        f"--for=condition={condition}",
        f"--timeout={timeout}",
        check=False,
    )
    assert result.returncode == 0, f"{name} never reached {condition}: {result.stderr}"
    return json.loads(kubectl("-n", namespace, "get", "mlworkload", name, "-o", "json").stdout)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("keys")
    key_id = f"e2e-{uuid.uuid4().hex[:8]}"
    assert run_cli("keygen", "--key-id", key_id, "--out", keys).returncode == 0
    secret = kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", "mlplacement-trusted-keys",
        f"--from-file={key_id}.pem={keys / f'{key_id}.pem'}", "--dry-run=client", "-o", "yaml",
    ).stdout  # fmt: skip
    kubectl("apply", "-f", "-", stdin=secret)
    return keys / f"{key_id}.key"


def signed(path: Path, key: Path, tmp_path: Path) -> Path:
    out = tmp_path / path.name
    result = run_cli("sign", path, "--key", key)
    assert result.returncode == 0, result.stderr
    out.write_text(result.stdout, encoding="utf-8")
    return out


def test_signed_batch_workload_runs_as_a_job_on_a_gpu_pool(signing_key: Path, tmp_path: Path) -> None:
    kubectl("create", "namespace", "team-search", check=False)
    for example in ("policy-default.yaml", "workload-spot-batch.yaml"):
        kubectl("apply", "-f", str(signed(REPO / "examples" / example, signing_key, tmp_path)))
    workload = wait_condition("team-search", "embeddings-backfill", "Placed")
    assert condition(workload, "Verified")["status"] == "True"
    job = json.loads(kubectl("-n", "team-search", "get", "job", "mlw-embeddings-backfill", "-o", "json").stdout)
    assert job["spec"]["template"]["spec"]["nodeSelector"]


def test_unsigned_workload_is_refused_and_gets_no_child(tmp_path: Path) -> None:
    kubectl("create", "namespace", "team-search", check=False)
    manifest = (REPO / "examples" / "workload-spot-batch.yaml").read_text(encoding="utf-8")
    kubectl("apply", "-f", "-", stdin=manifest.replace("name: embeddings-backfill", "name: unsigned-backfill"))
    workload = wait_condition("team-search", "unsigned-backfill", "Verified=False")
    assert condition(workload, "Verified")["reason"] == "SignatureMissing"
    assert kubectl("-n", "team-search", "get", "job", "mlw-unsigned-backfill", check=False).returncode != 0
