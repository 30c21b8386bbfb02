"""Preemption against a real kube-apiserver: a pool full of low-priority Jobs, then a high-priority workload.

Exactly the chosen victim's Job is deleted, the victim reads Preempted, the preemptor gets its Job, and
nothing else moves. envtest has no scheduler or job controller: Jobs never get pods, so each holds its GPUs
in the operator's ledger, which is what fills the pool. Needs KUBEBUILDER_ASSETS; skips without it.
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

NAMESPACE = "team-scarce"


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    policy = make_policy("default", preemption={"enabled": True, "gracePeriodSeconds": 0})
    control_plane.install_home(REPO / "crds", (NAMESPACE,), keyring_core.public_pem(KEY), signed(policy))
    control_plane.apply(node("a100-1", "a100-euw1"))
    control_plane.kubectl("patch", "node", "a100-1", "--subresource=status", "--type=merge", "-p", gpu_status(8))
    operator = Operator(control_plane)
    operator.start()
    yield control_plane
    operator.kill()


def job_uid(plane: ControlPlane, name: str) -> str | None:
    job = plane.get("job", f"mlw-{name}", "-n", NAMESPACE)
    return str(job["metadata"]["uid"]) if job else None


def ready_reason(plane: ControlPlane, name: str) -> str | None:
    obj = plane.get("mlworkload", name, "-n", NAMESPACE) or {}
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Placed":
            return str(condition["reason"])
    return None


def workload(name: str, priority: int) -> dict[str, Any]:
    return signed(make_workload(name=name, namespace=NAMESPACE, resources={"gpus": 2}, intent={"priority": priority}))


def test_a_high_priority_workload_displaces_exactly_one_low_priority_job(plane: ControlPlane) -> None:
    batch = [f"batch-{i}" for i in range(4)]
    for name in batch:  # batch-3 has the lowest priority: it is the one victim
        plane.apply(workload(name, 5 if name == "batch-3" else 10))
        wait_until(lambda n=name: job_uid(plane, n), 60, f"the Job of {name}")
    uids = {name: job_uid(plane, name) for name in batch}
    plane.apply(workload("service", 1000))
    wait_until(lambda: job_uid(plane, "service"), 60, "the preemptor's Job")
    wait_until(lambda: ready_reason(plane, "batch-3") == "Preempted", 60, "the victim to read Preempted")
    wait_until(lambda: job_uid(plane, "batch-3") is None, 60, "the victim's Job to be deleted")
    for name in batch[:3]:  # nothing else moved: same Jobs, same objects
        assert job_uid(plane, name) == uids[name]
        assert ready_reason(plane, name) == "Dispatched"
    # Once its Job is gone the victim is queued again: it may already read WaitingForCapacity (the room is
    # the service's), never Dispatched.
    assert ready_reason(plane, "batch-3") in ("Preempted", "WaitingForCapacity")
    events = plane.get("events", "-n", NAMESPACE, "--field-selector", "reason=Preempted") or {"items": []}
    assert [e["involvedObject"]["name"] for e in events["items"]] == ["batch-3"]
    assert "preempted by team-scarce/service (priority 1000)" in events["items"][0]["message"]
