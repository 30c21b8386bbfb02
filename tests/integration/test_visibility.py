"""`kubectl mlplacement` on a real control plane, through the real kubectl, as an ML team member who has only the
chart's mlplacement-viewer role (#31): the queue with positions and why each waits, and explain with what would
make a waiting workload fit. A 403 anywhere fails the test.

The operator runs as in test_chart (the chart's environment and ServiceAccount); the viewer is a ServiceAccount
bound to the chart's viewer ClusterRole and Role, as a platform team binds its ML teams' group.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import make_workload
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_chart import (
    RELEASE_NAMESPACE,
    ChartOperator,
    phase,
    plane,  # noqa: F401  (the module fixture: the chart applied, pools, keys, signals)
    signed_examples,
)
from tests.integration.test_operator import signed

TEAM = "team-vis"
VIEWER = "ml-team-member"


def viewer_kubeconfig(plane: ControlPlane) -> Path:  # noqa: F811
    """A kubeconfig for a ServiceAccount that has the chart's viewer role and nothing else."""
    plane.kubectl("create", "serviceaccount", VIEWER, "-n", TEAM)
    subject = f"--serviceaccount={TEAM}:{VIEWER}"
    plane.kubectl("create", "clusterrolebinding", VIEWER, "--clusterrole=mlplacement-viewer", subject)
    plane.kubectl("create", "rolebinding", VIEWER, "--role=mlplacement-viewer", subject, "-n", RELEASE_NAMESPACE)
    token = plane.kubectl("create", "token", VIEWER, "-n", TEAM, "--duration=1h").stdout.strip()
    config = json.loads(plane.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["namespace"] = TEAM  # kubectl's habit: the context's namespace is the default
    path = plane.directory / "kubeconfig-viewer"
    path.write_text(json.dumps(config))
    return path


def kubectl_plugin(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl mlplacement ...`: kubectl finds the plugin executable on PATH (installed with the package)."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("no kubectl on PATH: `make tools` installs the real binary")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [binary, "mlplacement", *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def gpu_workload(name: str, gpus: int, priority: int) -> dict[str, Any]:
    return signed(
        make_workload(
            name,
            TEAM,
            type="Batch",
            image="registry.example.com/job:1",
            resources={"gpus": gpus, "gpuProduct": "NVIDIA-A100-SXM4-80GB"},
            intent={"priority": priority, "dataRegion": "eu-west-1"},
            targets={"allowed": ["GPUPool"]},
        )
    )


def test_the_queue_and_explain_through_kubectl_under_the_viewer_role(plane: ControlPlane) -> None:  # noqa: F811
    plane.kubectl("create", "namespace", TEAM)
    kubeconfig = viewer_kubeconfig(plane)
    operator = ChartOperator(plane, "mlplacement")
    operator.start()
    try:
        plane.kubectl("apply", "--server-side", "-f", "-", stdin=signed_examples(plane, ("policy-default.yaml",)))
        plane.apply(gpu_workload("holder", 6, 500))
        wait_until(lambda: phase(plane, TEAM, "holder") == "Placed", 90, "the 6-GPU workload placed")
        plane.apply(gpu_workload("second", 4, 100))
        plane.apply(gpu_workload("third", 4, 50))
        wait_until(
            lambda: phase(plane, TEAM, "second") == "Waiting" and phase(plane, TEAM, "third") == "Waiting",
            90,
            "two workloads waiting for GPUs",
        )
        # The operator's own Waiting message says what would make it fit (worked out when it was written).
        message = plane.get("mlworkload", "second", "-n", TEAM)["status"]["placement"]["message"]
        assert "would fit on GPUPool a100-euw1 if 2 more GPUs free there" in message

        table = kubectl_plugin(kubeconfig, "queue")
        assert table.returncode == 0, table.stderr
        assert "forbidden" not in (table.stdout + table.stderr).lower()
        lines = [line for line in table.stdout.splitlines() if re.match(rf"^\d+\s+{TEAM}/", line)]
        assert [line.split()[1] for line in lines] == [f"{TEAM}/second", f"{TEAM}/third"], table.stdout
        assert "if 2 more GPUs free there" in " ".join(table.stdout.split())  # the reason wraps to the terminal

        listed = kubectl_plugin(kubeconfig, "queue", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        items = json.loads(listed.stdout)["items"]
        assert [(i["position"], i["workload"], i["placeableNow"]) for i in items] == [
            (1, f"{TEAM}/second", False),
            (2, f"{TEAM}/third", False),
        ]
        assert items[0]["reason"] == "WaitingForCapacity"
        assert items[0]["usage"].startswith(f"{TEAM} uses 6 GPUs")
        assert items[0]["fitsIf"][0]["change"] == "MoreFreeGPUs"

        explained = kubectl_plugin(kubeconfig, "explain", "mlw/second")
        assert explained.returncode == 0, explained.stderr
        assert "queue: position 1 of 2" in explained.stdout
        assert "fits on GPUPool a100-euw1 if 2 more GPUs free there" in explained.stdout
        assert "forbidden" not in (explained.stdout + explained.stderr).lower()

        # What the role grants is reading: a write as the viewer is refused.
        can = subprocess.run(
            [str(shutil.which("kubectl")), f"--kubeconfig={kubeconfig}", "auth", "can-i", "patch", "mlworkloads"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert can.stdout.strip() == "no"

        top = kubectl_plugin(kubeconfig, "top", "-o", "json")
        assert top.returncode == 0, top.stderr
        pools = {t["target"]: t for t in json.loads(top.stdout)["targets"]}
        assert pools["GPUPool/a100-euw1"]["used"] == 6
    finally:
        operator.kill()
