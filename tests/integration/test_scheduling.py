"""What only a kube-scheduler and a kube-controller-manager show: pods bound to nodes, pods no node can hold,
garbage collection of children, and a namespace deleted under running workloads.

Nodes are objects this module creates; no kubelet runs, so a bound pod stays Pending (bound is as far as a pod
gets). Needs a control plane with kube-controller-manager and kube-scheduler (../shared/envtest has them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy, make_workload
from tests.conftest import REPO
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_operator import KEY, Operator, gpu_status, node, signed

NAMESPACE, DOOMED = "team-sched", "team-doomed"
# The cheap pool's one node carries a taint our pods do not tolerate: the engine (which reads no taints but the
# interruption ones) prefers it, the scheduler cannot bind there.
TAINTED, OPEN = "cheap-tainted", "dear-open"
NODES = {"tainted-0": TAINTED, "open-0": OPEN, "open-1": OPEN}


def signals(prices: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The signals ConfigMap with these GPU-hour prices per pool (by default this module's two pools)."""
    prices = prices if prices is not None else {TAINTED: 1.0, OPEN: 3.0}
    document = {
        "updatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ttlSeconds": 86400,
        "pools": {pool: {"gpuHourUSD": price} for pool, price in prices.items()},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "mlplacement-signals", "namespace": "mlplacement-system"},
        "data": {"signals.yaml": json.dumps(document)},
    }


def gpu_cluster(
    plane: ControlPlane,
    namespace: str,
    prices: Mapping[str, float],
    nodes: Mapping[str, tuple[str, int]],
    taints: Mapping[str, list[dict[str, str]]] | None = None,
) -> None:
    """The scheduler and controller-manager, the home install (CRDs, ``namespace``, key, signed default policy),
    signals with ``prices`` per pool, and GPU nodes (name -> pool, GPUs), each with ``taints`` or none."""
    plane.start_controllers()
    plane.install_home(REPO / "crds", (namespace,), keyring_core.public_pem(KEY), signed(make_policy("default")))
    plane.apply(signals(prices))
    for name, (pool, gpus) in nodes.items():
        plane.apply(node(name, pool))
        plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", gpu_status(gpus))
        # The apiserver taints a new node not-ready; with no node lifecycle controller (no kubelet to watch) that
        # taint is never lifted, so set the taints as they would be on a ready node.
        ready = (taints or {}).get(name, [])
        plane.kubectl("patch", "node", name, "--type=merge", "-p", json.dumps({"spec": {"taints": ready}}))


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.start_controllers()
    control_plane.install_home(
        REPO / "crds", (NAMESPACE, DOOMED), keyring_core.public_pem(KEY), signed(make_policy("default"))
    )
    control_plane.apply(signals())
    for name, pool in NODES.items():
        control_plane.apply(node(name, pool))
        control_plane.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", gpu_status(8))
        # The apiserver taints a new node not-ready; with no node lifecycle controller (no kubelet to watch) that
        # taint is never lifted, so set the taints as they would be on a ready node: none, or ours.
        taints = [{"key": "dedicated", "value": "others", "effect": "NoSchedule"}] if pool == TAINTED else []
        control_plane.kubectl("patch", "node", name, "--type=merge", "-p", json.dumps({"spec": {"taints": taints}}))
    operator = Operator(control_plane, extra_env={"MLPLACEMENT_UNSCHEDULABLE_GRACE_SECONDS": "3"})
    operator.start()
    control_plane.operator = operator  # type: ignore[attr-defined]
    yield control_plane
    operator.kill()


def status(plane: ControlPlane, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    return ((plane.get("mlworkload", name, "-n", namespace) or {}).get("status")) or {}


def target(plane: ControlPlane, name: str, namespace: str = NAMESPACE) -> str:
    return str(((status(plane, name, namespace).get("placement") or {}).get("target") or {}).get("name") or "")


def pods(plane: ControlPlane, workload: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    listed = plane.get("pods", "-n", namespace, "-l", f"mlplacement.io/workload={workload}") or {"items": []}
    return list(listed["items"])


def jobs(plane: ControlPlane, workload: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    listed = plane.get("jobs", "-n", namespace, "-l", f"mlplacement.io/workload={workload}") or {"items": []}
    return list(listed["items"])


def bound_nodes(plane: ControlPlane, workload: str, namespace: str = NAMESPACE) -> list[str]:
    return [p["spec"]["nodeName"] for p in pods(plane, workload, namespace) if p["spec"].get("nodeName")]


def kubelet_finishes_terminating_pods(plane: ControlPlane, namespace: str) -> bool:
    """What a kubelet does for a pod being deleted once its containers have stopped: report it terminal (so the Job
    controller lets go of its tracking finalizer), then the final delete (grace 0). No kubelet runs here, so a bound
    pod being deleted stays Terminating until this. True when the namespace has no pod left."""
    listed = plane.get("pods", "-n", namespace) or {"items": []}
    for pod in listed["items"]:
        if pod["metadata"].get("deletionTimestamp"):
            name = pod["metadata"]["name"]
            if pod["status"].get("phase") not in ("Failed", "Succeeded"):
                stopped = {"status": {"phase": "Failed", "reason": "Terminated", "message": "stopped for deletion"}}
                plane.kubectl(
                    "patch",
                    "pod",
                    name,
                    "-n",
                    namespace,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    json.dumps(stopped),
                    check=False,
                )
            plane.kubectl(
                "delete", "pod", name, "-n", namespace, "--grace-period=0", "--force", "--wait=false", check=False
            )
    return not listed["items"]


def test_a_pod_no_node_can_hold_is_placed_again_elsewhere_and_bound_there(plane: ControlPlane) -> None:
    plane.apply(signed(make_workload(name="fit-4", namespace=NAMESPACE, resources={"gpus": 4})))
    wait_until(lambda: target(plane, "fit-4") == TAINTED, 60, "fit-4 placed on the cheap pool first")
    # The real scheduler says no (the taint), the grace (3 s here) passes, the workload moves.
    wait_until(lambda: target(plane, "fit-4") == OPEN, 60, "fit-4 placed again on the pool that can hold it")
    nodes = wait_until(lambda: bound_nodes(plane, "fit-4"), 60, "the scheduler to bind fit-4's pod")
    assert set(nodes) <= {n for n, pool in NODES.items() if pool == OPEN}
    wait_until(lambda: len(jobs(plane, "fit-4")) == 1, 60, "the Job on the tainted pool to be gone")
    assert status(plane, "fit-4")["phase"] in ("Placed", "Running")


def test_deleting_a_workload_garbage_collects_its_job_and_pods(plane: ControlPlane) -> None:
    plane.apply(signed(make_workload(name="short-lived", namespace=NAMESPACE, resources={"gpus": 1})))
    wait_until(lambda: bound_nodes(plane, "short-lived"), 60, "short-lived's pod bound")
    plane.kubectl("delete", "mlworkload", "short-lived", "-n", NAMESPACE, "--wait=false")
    wait_until(lambda: not jobs(plane, "short-lived"), 60, "the Job collected by its owner reference")
    wait_until(
        lambda: all(p["metadata"].get("deletionTimestamp") for p in pods(plane, "short-lived")),
        60,
        "its pod being deleted with it",
    )
    kubelet_finishes_terminating_pods(plane, NAMESPACE)
    wait_until(lambda: not pods(plane, "short-lived"), 60, "its pod gone")


def test_deleting_a_namespace_under_running_work_leaves_no_claim_and_no_error_loop(plane: ControlPlane) -> None:
    operator: Operator = plane.operator  # type: ignore[attr-defined]
    plane.apply(signed(make_workload(name="doomed", namespace=DOOMED, resources={"gpus": 8})))
    wait_until(lambda: bound_nodes(plane, "doomed", DOOMED), 60, "doomed's pod bound")
    plane.kubectl("delete", "namespace", DOOMED, "--wait=false")
    wait_until(
        lambda: kubelet_finishes_terminating_pods(plane, DOOMED) and plane.get("namespace", DOOMED) is None,
        120,
        "the namespace gone (Terminating, then gone)",
    )
    said = operator.log_path.read_text(errors="replace").count(DOOMED)
    # Its 8 GPUs are free again: two 8-GPU workloads fit the open pool's two nodes (one would wait if the
    # doomed workload's claim had outlived it). fit-4 holds 4 of them, so it goes first.
    plane.kubectl("delete", "mlworkload", "fit-4", "-n", NAMESPACE, "--ignore-not-found", "--wait=false")
    wait_until(
        lambda: kubelet_finishes_terminating_pods(plane, NAMESPACE) and not pods(plane, "fit-4"), 60, "fit-4's pod gone"
    )
    for name in ("after-a", "after-b"):
        plane.apply(signed(make_workload(name=name, namespace=NAMESPACE, resources={"gpus": 8})))
    wait_until(
        lambda: bound_nodes(plane, "after-a") and bound_nodes(plane, "after-b"), 60, "both 8-GPU workloads bound"
    )
    assert {target(plane, "after-a"), target(plane, "after-b")} == {OPEN}
    assert operator.log_path.read_text(errors="replace").count(DOOMED) == said, "still talking about the namespace"
