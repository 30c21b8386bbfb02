"""A node must hold a pod's CPU and memory as well as its GPUs, on a real control plane with kube-scheduler.

Pool ``cheapcpu`` (cheap) has one node with 8 free GPUs, but a CPU-only pod bound there requests 62 of its 64
cores; pool ``roomy`` (dearer) has one node with room. The pod exists before the operator starts, so the
operator's first round already counts it (it decides only on synced caches). Needs kube-scheduler and
kube-controller-manager (../shared/envtest has them); no kubelet: bound is as far as a pod gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.builders import make_workload
from tests.controlplane import ControlPlane, wait_until
from tests.integration import test_scheduling as scheduling
from tests.integration.test_operator import Operator, signed

NAMESPACE = "team-room"
CHEAP, ROOMY = "cheapcpu", "roomy"


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    nodes = {f"{pool}-0": (pool, 8) for pool in (CHEAP, ROOMY)}
    scheduling.gpu_cluster(control_plane, NAMESPACE, {CHEAP: 0.5, ROOMY: 3.0}, nodes)
    hog = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cpu-hog", "namespace": NAMESPACE},
        "spec": {
            "nodeName": f"{CHEAP}-0",  # bound, as the scheduler would have bound it
            "containers": [{"name": "hog", "image": "busybox", "resources": {"requests": {"cpu": "62"}}}],
        },
    }
    control_plane.apply(hog)
    operator = Operator(control_plane, extra_env={"MLPLACEMENT_UNSCHEDULABLE_GRACE_SECONDS": "600"})
    operator.start()
    yield control_plane
    operator.kill()


def test_a_node_with_free_gpus_but_its_cpu_taken_is_passed_over_for_one_that_holds_the_whole_pod(
    plane: ControlPlane,
) -> None:
    resources = {"gpus": 2, "cpu": 4, "memory": "16Gi"}
    plane.apply(signed(make_workload(name="needs-cpu", namespace=NAMESPACE, type="Training", resources=resources)))
    wait_until(lambda: scheduling.target(plane, "needs-cpu", NAMESPACE), 60, "needs-cpu to be placed")
    assert scheduling.target(plane, "needs-cpu", NAMESPACE) == ROOMY
    message = str((scheduling.status(plane, "needs-cpu", NAMESPACE).get("placement") or {}).get("message") or "")
    assert "have no node with 2 GPUs, 4 CPU and 16Gi memory free" in message
    bound = wait_until(lambda: scheduling.bound_nodes(plane, "needs-cpu", NAMESPACE), 60, "needs-cpu's pod bound")
    assert bound == [f"{ROOMY}-0"]


def test_a_pod_asking_more_cpu_than_any_node_has_is_no_feasible_target(plane: ControlPlane) -> None:
    resources = {"gpus": 1, "cpu": 128}
    plane.apply(signed(make_workload(name="too-big", namespace=NAMESPACE, type="Training", resources=resources)))
    wait_until(
        lambda: (
            scheduling.status(plane, "too-big", NAMESPACE).get("phase") == "Failed"
            or "NoFeasibleTarget" in json.dumps(scheduling.status(plane, "too-big", NAMESPACE))
        ),
        60,
        "too-big to be refused",
    )
    message = str((scheduling.status(plane, "too-big", NAMESPACE).get("placement") or {}).get("message") or "")
    assert "have no node with 128 CPU (the largest has 64)" in message
    assert not scheduling.jobs(plane, "too-big", NAMESPACE)
