"""Node-true placement on a real control plane: a pod's GPUs sit on one node, as the kube-scheduler binds them.

Pool ``frag`` has 4 nodes with 2 GPUs each (8 free, cheap), pool ``whole`` one node with 8 (dearer), one region.
A 4-GPU pod can only run on ``whole``: the operator must send it there at once (never to ``frag``, where the
scheduler would leave it Pending until the unschedulable grace moves it), and never count one node's GPUs twice.
Needs kube-scheduler and kube-controller-manager (../shared/envtest has them); no kubelet: bound is as far as a
pod gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mlplacement.core.status import WOULD_FIT
from tests.builders import make_workload
from tests.controlplane import ControlPlane, wait_until
from tests.integration import test_scheduling as scheduling
from tests.integration.test_operator import Operator, signed

NAMESPACE = "team-nodes"
FRAG, WHOLE = "frag", "whole"
NODES = {**{f"frag-{i}": (FRAG, 2) for i in range(4)}, "whole-0": (WHOLE, 8)}


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    scheduling.gpu_cluster(control_plane, NAMESPACE, {FRAG: 2.0, WHOLE: 3.0}, NODES)
    # A long unschedulable grace: a pod sent where no node holds it would sit Pending, and the test would see it.
    operator = Operator(control_plane, extra_env={"MLPLACEMENT_UNSCHEDULABLE_GRACE_SECONDS": "600"})
    operator.start()
    yield control_plane
    operator.kill()


def status(plane: ControlPlane, name: str) -> dict[str, Any]:
    return scheduling.status(plane, name, NAMESPACE)


def target(plane: ControlPlane, name: str) -> str:
    return scheduling.target(plane, name, NAMESPACE)


def jobs(plane: ControlPlane, name: str) -> list[dict[str, Any]]:
    return scheduling.jobs(plane, name, NAMESPACE)


def bound_nodes(plane: ControlPlane, name: str) -> list[str]:
    return scheduling.bound_nodes(plane, name, NAMESPACE)


def training(name: str, gpus: int) -> dict[str, Any]:
    return signed(make_workload(name=name, namespace=NAMESPACE, type="Training", resources={"gpus": gpus}))


def message(plane: ControlPlane, name: str) -> str:
    return str((status(plane, name).get("placement") or {}).get("message") or "")


def test_a_4_gpu_pod_goes_straight_to_the_pool_with_a_node_that_holds_it_and_is_bound_there(
    plane: ControlPlane,
) -> None:
    plane.apply(training("fit-4", 4))
    wait_until(lambda: target(plane, "fit-4"), 60, "fit-4 to be placed")
    assert target(plane, "fit-4") == WHOLE
    assert "1 have no node with 4 GPUs (the largest has 2)" in message(plane, "fit-4")  # frag, never tried
    assert wait_until(lambda: bound_nodes(plane, "fit-4"), 60, "the scheduler to bind fit-4's pod") == ["whole-0"]
    assert len(jobs(plane, "fit-4")) == 1  # placed once: never sent to frag first


def test_one_nodes_gpus_are_never_counted_twice_and_small_pods_take_the_fragments(plane: ControlPlane) -> None:
    # whole-0 has 4 GPUs left after fit-4; two more 4-GPU trainings arrive together: one fits, one waits.
    wait_until(lambda: bound_nodes(plane, "fit-4"), 60, "fit-4 bound (the module's first test)")
    plane.apply(training("fit-4b", 4))
    plane.apply(training("fit-4c", 4))
    plane.apply(training("one-gpu", 1))
    wait_until(lambda: status(plane, "fit-4c").get("phase") == "Waiting", 60, "one of the two to wait")
    wait_until(lambda: target(plane, "fit-4b") == WHOLE, 60, "the other on whole")
    assert wait_until(lambda: bound_nodes(plane, "fit-4b"), 60, "fit-4b bound") == ["whole-0"]
    # whole-0's 8 GPUs are all claimed (4 bound, 4 for fit-4b); frag's nodes are too small.
    said, _, would_fit = message(plane, "fit-4c").partition(WOULD_FIT)
    assert said.endswith("1 have no node with 4 GPUs (the largest has 2), 1 lack free GPUs (need 4)")
    assert would_fit.startswith("on GPUPool whole if 4 more GPUs free there")
    assert not jobs(plane, "fit-4c")
    wait_until(lambda: target(plane, "one-gpu") == FRAG, 60, "the 1-GPU training on the cheap fragments")
    assert wait_until(lambda: bound_nodes(plane, "one-gpu"), 60, "one-gpu bound")[0].startswith("frag-")
