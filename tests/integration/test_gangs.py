"""Distributed training on a real control plane: a gang's workers bound on distinct nodes, all or none.

Pool ``trap`` (cheap) has two 8-GPU nodes, one with a taint our pods do not tolerate (placement reads no taints:
the scheduler does); pool ``wide`` (dearer) has four. A 2-worker x 8-GPU gang sent to ``trap`` gets one worker
bound and one Unschedulable: after the unschedulable grace the whole gang is released and placed again, never
left half running. Needs kube-scheduler and kube-controller-manager (../shared/envtest has them); no kubelet:
bound is as far as a pod gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.builders import make_workload
from tests.controlplane import ControlPlane, wait_until
from tests.integration import test_scheduling as scheduling
from tests.integration.test_operator import Operator, signed

NAMESPACE = "team-gangs"
TRAP, WIDE = "trap", "wide"
NODES = {"trap-0": TRAP, "trap-1": TRAP, **{f"wide-{i}": WIDE for i in range(4)}}
TAINT = [{"key": "dedicated", "value": "others", "effect": "NoSchedule"}]


def set_taints(plane: ControlPlane, name: str, taints: list[dict[str, str]]) -> None:
    plane.kubectl("patch", "node", name, "--type=merge", "-p", json.dumps({"spec": {"taints": taints}}))


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    nodes = {name: (pool, 8) for name, pool in NODES.items()}
    scheduling.gpu_cluster(control_plane, NAMESPACE, {TRAP: 1.0, WIDE: 3.0}, nodes, taints={"trap-1": TAINT})
    operator = Operator(control_plane, extra_env={"MLPLACEMENT_UNSCHEDULABLE_GRACE_SECONDS": "6"})
    operator.start()
    yield control_plane
    operator.kill()


def gang(name: str, workers: int, gpus: int = 8) -> dict[str, Any]:
    resources = {"gpus": gpus, "workers": workers}
    return signed(make_workload(name=name, namespace=NAMESPACE, type="Training", resources=resources))


def target(plane: ControlPlane, name: str) -> str:
    return scheduling.target(plane, name, NAMESPACE)


def bound(plane: ControlPlane, name: str) -> dict[str, str]:
    """Pod name -> node, for the workload's pods the scheduler has bound."""
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in scheduling.pods(plane, name, NAMESPACE)
        if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
    }


def all_bound(plane: ControlPlane, name: str, workers: int) -> dict[str, str]:
    """The bound workers once all ``workers`` are, else {} (to poll on)."""
    found = bound(plane, name)
    return found if len(found) == workers else {}


def kubelet_done_and_none_on_trap(plane: ControlPlane, name: str) -> bool:
    scheduling.kubelet_finishes_terminating_pods(plane, NAMESPACE)  # the released worker's pod, as a kubelet would
    return not any(str(p["spec"].get("nodeName")).startswith(TRAP) for p in scheduling.pods(plane, name, NAMESPACE))


def test_a_gang_that_cannot_all_be_bound_in_time_is_released_whole_and_placed_again(plane: ControlPlane) -> None:
    plane.apply(gang("stuck", 2))
    wait_until(lambda: target(plane, "stuck") == TRAP, 60, "the gang placed on the cheap pool first")
    # One worker binds on trap-0; the other has no node it may use (trap-1's taint), so the gang is half bound.
    wait_until(lambda: set(bound(plane, "stuck").values()) == {"trap-0"}, 60, "one worker bound on trap-0")
    wait_until(lambda: target(plane, "stuck") == WIDE, 90, "the whole gang released and placed on wide")
    nodes = wait_until(lambda: all_bound(plane, "stuck", 2), 60, "both workers bound")
    assert len(set(nodes.values())) == 2, "a node per worker"
    assert all(NODES[n] == WIDE for n in nodes.values())
    wait_until(lambda: len(scheduling.jobs(plane, "stuck", NAMESPACE)) == 1, 60, "the Job on trap gone")
    wait_until(
        lambda: kubelet_done_and_none_on_trap(plane, "stuck"),
        60,
        "no worker of the gang left on trap",
    )


def test_a_gang_that_fits_has_every_worker_bound_on_its_own_node_with_torchruns_environment(
    plane: ControlPlane,
) -> None:
    set_taints(plane, "trap-1", [])  # trap can now take a 2-worker gang
    plane.apply(gang("pair", 2))
    wait_until(lambda: target(plane, "pair") == TRAP, 60, "pair placed on trap")
    nodes = wait_until(lambda: all_bound(plane, "pair", 2), 60, "both workers bound")
    assert sorted(nodes.values()) == ["trap-0", "trap-1"]
    [job] = scheduling.jobs(plane, "pair", NAMESPACE)
    assert (job["spec"]["completionMode"], job["spec"]["parallelism"]) == ("Indexed", 2)
    service = plane.get("service", "mlw-pair", "-n", NAMESPACE)
    assert service is not None
    assert service["spec"]["clusterIP"] == "None"
    for pod in scheduling.pods(plane, "pair", NAMESPACE):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["MASTER_ADDR"] == "mlw-pair-0.mlw-pair"
        assert env["WORLD_SIZE"] == "2"
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["spec"]["hostname"] == f"mlw-pair-{index}"  # worker 0 is MASTER_ADDR's host


def test_a_gang_wider_than_the_free_nodes_waits_with_no_worker_holding_a_gpu(plane: ControlPlane) -> None:
    # trap is full (pair), wide has two free nodes (stuck holds two): 16 free GPUs, enough for 3 workers of 4 in
    # all, but a 3-worker gang needs three nodes and has nowhere to start whole.
    plane.apply(gang("triple", 3, gpus=4))
    wait_until(lambda: scheduling.status(plane, "triple", NAMESPACE).get("phase") == "Waiting", 60, "triple to wait")
    message = str((scheduling.status(plane, "triple", NAMESPACE).get("placement") or {}).get("message") or "")
    assert "have 2 of the 3 nodes with 4 free GPUs a 3-worker gang needs" in message
    assert not scheduling.jobs(plane, "triple", NAMESPACE)
    assert not scheduling.pods(plane, "triple", NAMESPACE)
