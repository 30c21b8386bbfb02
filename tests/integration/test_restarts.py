"""A restart never stops running work: the leader killed again and again, once while the API server is away.

200 signed workloads are placed; then the leader is SIGKILLed at random points (the kubelet starts it again, as
a standby) and once more while the API server restarts. Every new leader lists before it decides, so none
refuses, stops or re-creates anything: the same 200 Jobs (same UIDs), no Refused or Stopped audit record,
all 200 still Placed. Needs a control plane (KUBEBUILDER_ASSETS or setup-envtest); skips without one.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.builders import make_workload
from tests.controlplane import ControlPlane, wait_until
from tests.integration.replicas import holder, install_with_replicas, leader, replicas, stop_replicas
from tests.integration.test_operator import signed

NAMESPACE = "team-restart"
NODES, GPUS_PER_NODE = 21, 10  # 210 GPUs: the 200 below and the probes after each phase
WORKLOADS = 200
KILLS = 10


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    install_with_replicas(control_plane, NAMESPACE, NODES, GPUS_PER_NODE, "restart")
    yield control_plane
    stop_replicas(control_plane)


def apply(plane: ControlPlane, names: list[str]) -> None:
    items = [signed(make_workload(name=n, namespace=NAMESPACE, resources={"gpus": 1})) for n in names]
    plane.kubectl(
        "apply", "--server-side", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )


def phases(plane: ControlPlane) -> dict[str, str]:
    listed = plane.get("mlworkloads", "-n", NAMESPACE) or {"items": []}
    return {o["metadata"]["name"]: (o.get("status") or {}).get("phase", "") for o in listed["items"]}


def job_uids(plane: ControlPlane) -> dict[str, str]:
    """Workload name -> the UID of its Job (a replaced Job has another UID)."""
    jobs = plane.get("jobs", "-n", NAMESPACE) or {"items": []}
    return {j["metadata"]["labels"].get("mlplacement.io/workload", "?"): j["metadata"]["uid"] for j in jobs["items"]}


def all_placed(plane: ControlPlane, names: list[str]) -> bool:
    now, jobs = phases(plane), job_uids(plane)
    return all(now.get(n) == "Placed" and n in jobs for n in names)


def kill_the_leader(plane: ControlPlane) -> None:
    """SIGKILL the leader (no release), start it again as the kubelet would; wait for the next leader."""
    victim, identity = leader(plane), holder(plane)
    victim.kill()
    victim.start()
    wait_until(lambda: holder(plane) not in ("", identity), 60, "a standby to take over")


def records(plane: ControlPlane, since: dict[str, int], actions: set[str]) -> list[dict[str, Any]]:
    found = []
    for replica in replicas(plane):
        found += [r for r in replica.audit_records()[since.get(replica.user or "", 0) :] if r["action"] in actions]
    return found


def test_killing_the_leader_again_and_again_replaces_no_job_and_refuses_nothing(plane: ControlPlane) -> None:
    names = [f"train-{i:03d}" for i in range(WORKLOADS)]
    apply(plane, names)
    wait_until(lambda: all_placed(plane, names), 180, f"{WORKLOADS} workloads placed")
    before = job_uids(plane)
    since = {r.user or "": len(r.audit_records()) for r in replicas(plane)}
    shuffle = random.Random()
    seed = shuffle.randrange(2**32)
    shuffle.seed(seed)
    print(f"kill points seed: {seed}")
    for _ in range(KILLS):
        time.sleep(shuffle.uniform(0.0, 2.0))  # the kill point itself, not a wait for a condition
        kill_the_leader(plane)
    # And once while the API server is away: the new leader starts against an API server that is still coming
    # up (lists answered 429 "storage is (re)initializing", then the whole cluster at once).
    victim = leader(plane)  # read before the API server goes away
    plane.stop_apiserver()
    victim.kill()
    victim.start()
    plane.start_apiserver()
    # A workload applied now is placed only by a leader whose caches have synced, in a round that has also
    # re-admitted all 200: once it is Placed, whatever that leader would have refused or re-created, it has.
    apply(plane, ["probe"])
    wait_until(lambda: running(plane) and all_placed(plane, ["probe"]), 120, "the probe placed by the last leader")
    assert "caches synced" in leader(plane).readyz()
    after = job_uids(plane)
    assert {n: (before[n], after.get(n)) for n in names if after.get(n) != before[n]} == {}, "Jobs replaced"
    assert records(plane, since, {"Refused", "Stopped"}) == []
    assert all_placed(plane, names)


def running(plane: ControlPlane) -> bool:
    """What the kubelet does: a replica that exited (a leader that lost its Lease while the API server was away)
    is started again."""
    for replica in replicas(plane):
        replica.ensure_running()
    return True
