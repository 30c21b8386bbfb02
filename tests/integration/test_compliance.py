"""Compliance against a real kube-apiserver: tightening a live policy's residency moves the workload that runs
in the now-forbidden region, and `mlplacement whatif --live` against the same control plane reports that move
beforehand (and fails its gate). Needs KUBEBUILDER_ASSETS; skips without it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy, make_workload
from tests.conftest import REPO
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_operator import KEY, Operator, gpu_status, node, signed

NAMESPACE = "team-residency"
EU_ONLY = {"residency": {"allowedRegions": ["eu-west-1"]}}


def regional_node(name: str, pool: str, region: str) -> dict[str, Any]:
    obj = node(name, pool)
    obj["metadata"]["labels"]["topology.kubernetes.io/region"] = region
    return obj


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.install_home(
        REPO / "crds", (NAMESPACE,), keyring_core.public_pem(KEY), signed(make_policy("default"))
    )
    for name, pool, region in (("us-1", "us-pool", "us-east-1"), ("eu-1", "eu-pool", "eu-west-1")):
        control_plane.apply(regional_node(name, pool, region))
        control_plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", gpu_status(8))
    operator = Operator(control_plane)
    operator.start()
    yield control_plane
    operator.kill()


def pool_of_job(plane: ControlPlane) -> str | None:
    job = plane.get("job", "mlw-trainer", "-n", NAMESPACE)
    return None if job is None else str(job["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"])


def compliant(plane: ControlPlane) -> dict[str, Any] | None:
    obj = plane.get("mlworkload", "trainer", "-n", NAMESPACE) or {}
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Compliant"), None)


def test_tightened_residency_is_reported_beforehand_then_enforced(plane: ControlPlane, tmp_path: Path) -> None:
    plane.apply(signed(make_workload(name="trainer", namespace=NAMESPACE, intent={"dataRegion": "us-east-1"})))
    wait_until(lambda: pool_of_job(plane) == "us-pool", 60, "the trainer's Job on the US pool")

    proposed = tmp_path / "policy.yaml"
    proposed.write_text(json.dumps(make_policy("default", **EU_ONLY)), encoding="utf-8")
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlplacement",
            "whatif",
            "--live",
            "--kubeconfig",
            str(plane.kubeconfig),
            "--policy",
            str(proposed),
            "--max-moves",
            "0",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert report.returncode == 3, report.stderr  # the gate: one move against --max-moves 0
    (change,) = json.loads(report.stdout)["changes"]
    assert (change["key"], change["now"], change["after"]) == (
        f"{NAMESPACE}/trainer",
        "GPUPool/us-pool",
        "GPUPool/eu-pool",
    )
    assert "outside allowed regions [eu-west-1]" in change["why"]
    assert pool_of_job(plane) == "us-pool"  # read-only: nothing moved yet

    plane.apply(signed(make_policy("default", **EU_ONLY)))
    wait_until(lambda: pool_of_job(plane) == "eu-pool", 90, "the trainer's Job to move to the EU pool")
    wait_until(lambda: (compliant(plane) or {}).get("status") == "True", 60, "Compliant=True after the move")
    assert "moved from GPUPool us-pool" in str((compliant(plane) or {}).get("message"))
    events = plane.get("events", "-n", NAMESPACE, "--field-selector", "reason=PolicyViolation") or {"items": []}
    assert [e["involvedObject"]["name"] for e in events["items"]] == ["trainer"]
