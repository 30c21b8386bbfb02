"""Committed capacity and refused children against a real kube-apiserver (a control plane of this module's own).

There is no scheduler, job controller or namespace controller in the envtest layout: children never get
pods, exactly the lag that over-committed pools in the first real run, and a deleted namespace stays
Terminating, so the apiserver's NamespaceLifecycle admission refuses every child created in it.
Needs KUBEBUILDER_ASSETS (or setup-envtest's store); skips without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from tests.builders import make_policy, make_workload
from tests.conftest import REPO
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_operator import KEY, Operator, gpu_status, node, signed

NAMESPACE = "team-cap"
DOOMED = "team-doomed"
POOL_GPUS = 8


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.install_home(
        REPO / "crds", (NAMESPACE, DOOMED), keyring_core.public_pem(KEY), signed(make_policy("default"))
    )
    control_plane.apply(node("l4-1", "l4-euw1"))
    control_plane.kubectl("patch", "node", "l4-1", "--subresource=status", "--type=merge", "-p", gpu_status(POOL_GPUS))
    operator = Operator(control_plane)
    operator.start()
    yield control_plane
    operator.kill()


def placed(plane: ControlPlane, namespace: str, name: str) -> tuple[str, str] | None:
    obj = plane.get("mlworkload", name, "-n", namespace) or {}
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Placed":
            return condition["status"], condition["reason"]
    return None


def gpus_asked(plane: ControlPlane) -> int:
    total = 0
    for kind in ("jobs", "deployments"):
        for child in (plane.get(kind, "-A", "-l", "app.kubernetes.io/managed-by=mlplacement") or {}).get("items", []):
            spec = child["spec"]
            pods = spec.get("parallelism", 1) if kind == "jobs" else spec.get("replicas", 1)
            limits = spec["template"]["spec"]["containers"][0]["resources"].get("limits") or {}
            total += int(limits.get("nvidia.com/gpu", 0)) * pods
    return total


def workload(name: str, gpus: int, namespace: str = NAMESPACE, **spec: Any) -> dict[str, Any]:
    return make_workload(name=name, namespace=namespace, resources={"gpus": gpus}, **spec)


def test_children_applied_in_successive_rounds_never_exceed_a_pools_capacity(plane: ControlPlane) -> None:
    plane.apply(signed(workload("server", 2, type="Inference", replicas=1, intent={"latencyTargetMs": 200})))
    wait_until(lambda: placed(plane, NAMESPACE, "server") == ("True", "Dispatched"), 60, "the server placed")
    for index in range(3):  # one round each: the pods of the earlier children never appear
        name = f"trainer-{index}"
        plane.apply(signed(workload(name, 4, type="Training")))
        wait_until(lambda name=name: placed(plane, NAMESPACE, name), 60, f"a decision for {name}")
    assert gpus_asked(plane) <= POOL_GPUS
    outcomes = [placed(plane, NAMESPACE, f"trainer-{index}") for index in range(3)]
    assert outcomes == [("True", "Dispatched"), ("False", "WaitingForCapacity"), ("False", "WaitingForCapacity")]


def test_a_namespace_being_deleted_gets_apply_failed_and_does_not_starve_the_others(plane: ControlPlane) -> None:
    # Admitted only once the policy exists, after the namespace is already Terminating.
    late = {**make_policy("late"), "metadata": {"name": "late"}}
    for index in range(3):
        plane.apply(
            signed(workload(f"doomed-{index}", 1, DOOMED, policyRef={"name": "late"}, intent={"priority": 900}))
        )
    plane.apply(signed(workload("survivor", 1, policyRef={"name": "late"}, intent={"priority": 1})))
    plane.kubectl("delete", "namespace", DOOMED, "--wait=false")
    wait_until(
        lambda: ((plane.get("namespace", DOOMED) or {}).get("status") or {}).get("phase") == "Terminating",
        30,
        f"namespace {DOOMED} Terminating",
    )
    plane.apply(signed(late))
    wait_until(lambda: placed(plane, NAMESPACE, "survivor") == ("True", "Dispatched"), 60, "the survivor placed")
    for index in range(3):
        wait_until(
            lambda index=index: placed(plane, DOOMED, f"doomed-{index}") == ("False", "ApplyFailed"),
            60,
            f"doomed-{index} ApplyFailed",
        )
    doomed = plane.get("mlworkload", "doomed-0", "-n", DOOMED)
    message = next(c for c in doomed["status"]["conditions"] if c["type"] == "Placed")["message"]
    assert "being terminated" in message
