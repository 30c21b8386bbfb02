"""Edge clusters against real control planes: one home and two edges, each its own etcd + kube-apiserver.

Register edges through Secrets, probe them to Ready, place realtime inference on an edge, see its Deployment
in that edge's API server, stop that API server and watch the workload fail over within two probe periods,
restart it and see the stale copy removed, delete the workload and see the remote object gone.
Needs KUBEBUILDER_ASSETS; skips without it (tests/integration/conftest.py says why).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign
from tests.builders import make_policy, make_workload, with_annotations
from tests.conftest import REPO
from tests.controlplane import ControlPlane, start_control_plane, wait_until
from tests.integration.test_operator import Operator

KEY = keyring_core.generate_key()
NAMESPACE = "team-edge"
EDGE_NAMESPACE = "ml-edge"
PROBE_SECONDS = 5  # the smallest interval the EdgeCluster schema allows


def signed(obj: dict[str, Any]) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, KEY, "platform"))


def add_gpu_node(plane: ControlPlane, name: str, gpus: int) -> None:
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": "NVIDIA-L4"}},
        }
    )
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "test node",
        "lastHeartbeatTime": "2026-11-22T12:00:00Z",
        "lastTransitionTime": "2026-11-22T12:00:00Z",
    }
    resources = {"nvidia.com/gpu": str(gpus), "cpu": "16", "memory": "64Gi", "pods": "110"}
    status = {"status": {"capacity": resources, "allocatable": resources, "conditions": [ready]}}
    plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    planes: dict[str, ControlPlane] = {}
    operator = None
    try:
        for name in ("home", "edge-a", "edge-b"):
            planes[name] = start_control_plane(tmp_path_factory.mktemp(name))
        home = planes["home"]
        home.install_home(REPO / "crds", (NAMESPACE,), keyring_core.public_pem(KEY), signed(make_policy("default")))
        for name, gpus in (("edge-a", 4), ("edge-b", 2)):
            add_gpu_node(planes[name], f"{name}-node", gpus)
            home.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": f"{name}-kubeconfig", "namespace": "mlplacement-system"},
                    "data": {"kubeconfig": base64.b64encode(planes[name].edge_kubeconfig().encode()).decode()},
                }
            )
            home.apply(
                {
                    "apiVersion": "mlplacement.io/v1alpha1",
                    "kind": "EdgeCluster",
                    "metadata": {"name": name},
                    "spec": {
                        "region": "eu-west-1",
                        "credentialsSecretRef": {"name": f"{name}-kubeconfig"},
                        "namespace": EDGE_NAMESPACE,
                        "capabilities": {"gpuProducts": ["NVIDIA-L4"], "maxModelSizeGB": 2},
                        "cost": {"gpuHourUSD": 0.4},
                        "probe": {"intervalSeconds": PROBE_SECONDS, "timeoutSeconds": 2, "failureGraceSeconds": 0},
                    },
                }
            )
        operator = Operator(home, {"MLPLACEMENT_CLUSTER_NAME": "home", "MLPLACEMENT_EDGE_CLEANUP_GRACE_SECONDS": "30"})
        operator.start()
        yield planes
    finally:
        if operator is not None:
            operator.kill()
        for plane in planes.values():
            plane.stop()


def edge_ready(home: ControlPlane, name: str) -> bool:
    obj = home.get("edgecluster", name) or {}
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or []
    )


def placed_on(home: ControlPlane, name: str) -> str | None:
    obj = home.get("mlworkload", name, "-n", NAMESPACE) or {}
    target = ((obj.get("status") or {}).get("placement") or {}).get("target") or {}
    return target.get("name") if target.get("kind") == "Edge" else None


def deployment(plane: ControlPlane, name: str) -> Any:
    return plane.get("deployment", f"mlw-{name}", "-n", EDGE_NAMESPACE)


def test_edge_lifecycle_across_real_control_planes(fleet: dict[str, ControlPlane]) -> None:
    home = fleet["home"]
    for name in ("edge-a", "edge-b"):
        wait_until(lambda name=name: edge_ready(home, name), 60, f"EdgeCluster {name} Ready")
    status = home.get("edgecluster", "edge-a")["status"]
    assert (status["readyNodes"], status["gpusAllocatable"]) == (1, 4)

    workload = make_workload(
        name="scorer",
        namespace=NAMESPACE,
        type="Inference",
        resources={"gpus": 1},
        intent={"dataRegion": "eu-west-1", "dataSizeGB": 1, "latencyTargetMs": 20, "priority": 50},
        model={"uri": "s3://models/scorer", "sizeGB": 1},
    )
    home.apply(signed(workload))
    first = wait_until(lambda: placed_on(home, "scorer"), 60, "placement on an edge")
    other = "edge-b" if first == "edge-a" else "edge-a"
    created = wait_until(lambda: deployment(fleet[first], "scorer"), 30, f"the Deployment in {first}")
    labels = created["metadata"]["labels"]
    assert labels["mlplacement.io/home-cluster"] == "home"
    assert "ownerReferences" not in created["metadata"]
    assert home.get("deployment", "mlw-scorer", "-n", NAMESPACE) is None  # nothing in the home cluster

    fleet[first].stop_apiserver()
    started = time.monotonic()
    wait_until(lambda: placed_on(home, "scorer") == other, 2 * PROBE_SECONDS + 20, f"failover to {other}")
    took = time.monotonic() - started
    assert took <= 2 * PROBE_SECONDS + 2, f"failover took {took:.1f}s, more than two probe periods"
    wait_until(lambda: deployment(fleet[other], "scorer"), 30, f"the Deployment in {other}")

    fleet[first].start_apiserver()
    wait_until(lambda: deployment(fleet[first], "scorer") is None, 4 * PROBE_SECONDS, "the stale copy removed")
    assert deployment(fleet[other], "scorer") is not None  # exactly one copy runs

    home.kubectl("delete", "mlworkload", "scorer", "-n", NAMESPACE, "--wait=false")
    wait_until(lambda: deployment(fleet[other], "scorer") is None, 60, "the remote Deployment deleted")
    wait_until(lambda: home.get("mlworkload", "scorer", "-n", NAMESPACE) is None, 60, "the MLWorkload gone")
