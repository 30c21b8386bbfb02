"""Edge probes, pure: what a probe result means for EdgeCluster status, and which changes are worth a write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlplacement.core.edge import ProbeResult, capacity_of, edge_status, worth_writing
from mlplacement.core.placement.filters import fits_at_all
from mlplacement.core.snapshot import edge_targets
from tests.builders import make_request

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GOOD = ProbeResult(reachable=True, api_ready=True, rtt_ms=12.34, ready_nodes=2, gpus_allocatable=8, gpus_free=3)


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("result", "failures", "problem", "expected", "message"),
    [
        pytest.param(
            GOOD,
            0,
            "",
            {"Reachable": ("True", "ProbeSucceeded"), "Ready": ("True", "ProbeSucceeded")},
            "2 ready nodes, 3/8 GPUs free",
            id="healthy edge is Ready with its counts",
        ),
        pytest.param(
            ProbeResult(reachable=False, error="MaxRetryError (NewConnectionError)"),
            3,
            "",
            {"Reachable": ("False", "ProbeFailed"), "Ready": ("False", "ProbeFailed")},
            "probe failed (3 in a row): MaxRetryError (NewConnectionError)",
            id="unreachable edge says how the probe failed and how often",
        ),
        pytest.param(
            ProbeResult(reachable=True, api_ready=False, rtt_ms=5, error="HTTP 503"),
            0,
            "",
            {"Reachable": ("True", "ProbeSucceeded"), "Ready": ("False", "ApiServerNotReady")},
            "API server answers but /readyz is not ok",
            id="answering but not ready API server is reachable, not Ready",
        ),
        pytest.param(
            ProbeResult(reachable=True, api_ready=True, rtt_ms=5, ready_nodes=0),
            0,
            "",
            {"Reachable": ("True", "ProbeSucceeded"), "Ready": ("False", "NoReadyNodes")},
            "no Ready, schedulable node",
            id="edge without a ready node cannot take work",
        ),
        pytest.param(
            None,
            1,
            "users[op].exec is refused (runs a program)",
            {"Reachable": ("False", "CredentialsInvalid"), "Ready": ("False", "CredentialsInvalid")},
            "credentials rejected: users[op].exec is refused (runs a program)",
            id="refused kubeconfig is named, never probed",
        ),
    ],
)
def test_probe_result_to_status(
    result: ProbeResult | None, failures: int, problem: str, expected: dict[str, Any], message: str
) -> None:
    status = edge_status({}, result, failures, NOW, 4, problem)
    assert conditions(status) == expected
    assert status["message"] == message
    assert status["consecutiveFailures"] == failures
    assert status["observedGeneration"] == 4
    assert status["lastProbeTime"] == "2026-11-22T12:00:00Z"


def test_a_failed_probe_keeps_the_last_known_counts() -> None:
    healthy = edge_status({}, GOOD, 0, NOW, 1)
    failing = edge_status(healthy, ProbeResult(reachable=False, error="TimeoutError"), 1, NOW, 1)
    assert (failing["readyNodes"], failing["gpusFree"], failing["rttMs"]) == (2, 3, 12.3)


def later(status: dict[str, Any], seconds: float, **changes: Any) -> dict[str, Any]:
    stamp = (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {**status, "lastProbeTime": stamp, **changes}


BASE = edge_status({}, GOOD, 0, NOW, 1)


@pytest.mark.parametrize(
    ("desired", "write"),
    [
        pytest.param(later(BASE, 30), False, id="same results a probe later is not news"),
        pytest.param(later(BASE, 30, rttMs=20.0), False, id="small rtt wobble is not news"),
        pytest.param(later(BASE, 30, rttMs=80.0), True, id="rtt several times higher is news"),
        pytest.param(later(BASE, 30, gpusFree=2), True, id="a GPU taken is news"),
        pytest.param(later(BASE, 30, readyNodes=1), True, id="a node lost is news"),
        pytest.param(later(BASE, 30, observedGeneration=2), True, id="a new spec generation is news"),
        pytest.param(
            edge_status(BASE, ProbeResult(reachable=False, error="x"), 1, NOW + timedelta(seconds=30), 1),
            True,
            id="a failing probe is news",
        ),
        pytest.param(later(BASE, 10 * 30), True, id="nothing new for ten intervals refreshes lastProbeTime"),
    ],
)
def test_worth_writing(desired: dict[str, Any], write: bool) -> None:
    assert worth_writing(BASE, desired, interval_seconds=30) is write


def node(name: str, gpus: int, ready: str = "True", cordoned: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"unschedulable": cordoned},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}, "conditions": [{"type": "Ready", "status": ready}]},
    }


def pod(node_name: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    container = {"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    return {"spec": {"nodeName": node_name, "containers": [container]}, "status": {"phase": phase}}


def test_capacity_counts_ready_nodes_and_gpus_not_requested_by_live_pods() -> None:
    nodes = [node("a", 4), node("b", 2), node("down", 8, ready="False"), node("cordoned", 8, cordoned=True)]
    pods = [pod("a", 3), pod("b", 1, phase="Succeeded"), pod("down", 8)]
    capacity = capacity_of(nodes, pods)
    assert capacity.ready_nodes == 2
    assert (sum(capacity.gpus_by_node), sum(capacity.free_gpus_by_node)) == (6, 3)
    assert (capacity.gpus_by_node, capacity.free_gpus_by_node) == ((2, 4), (1, 2))  # node by node, smallest first


def test_an_edge_probe_reports_its_node_shapes_and_placement_reads_them() -> None:
    result = ProbeResult(
        reachable=True,
        api_ready=True,
        ready_nodes=2,
        gpus_allocatable=6,
        gpus_free=3,
        gpus_by_node=(2, 4),
        free_gpus_by_node=(1, 2),
    )
    status = edge_status(None, result, 0, NOW, 1)
    assert (status["gpusByNode"], status["freeGPUsByNode"]) == ([2, 4], [1, 2])
    edge = {
        "metadata": {"name": "fra"},
        "spec": {"region": "eu-central-1"},
        "status": {**status, "lastProbeTime": NOW.isoformat()},
    }
    [target] = edge_targets([edge], NOW)
    assert (target.blocks, target.node_sizes, target.node_gpus) == ((1, 2), (2, 4), 4)
    # An edge whose largest node has 4 GPUs never takes a 6-GPU pod, whatever its total.
    assert fits_at_all(make_request(gpus=6), target, 3, None) == "have no node with 6 GPUs (the largest has 4)"
