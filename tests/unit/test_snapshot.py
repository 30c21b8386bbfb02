"""The snapshot builder turns raw Kubernetes objects and fleet files into targets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.adapters.files import ManifestFileError, load_fleet
from mlplacement.api.workload import TargetKind
from mlplacement.core.snapshot import build_snapshot, node_interruption
from tests.conftest import run_cli

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SIGNALS_CM = {
    "data": {
        "signals.yaml": "updatedAt: '2026-11-22T11:58:00Z'\nttlSeconds: 600\n"
        "gpuHourUSDByProduct: {NVIDIA-A100: 4.0}\npools: {spot-pool: {gpuHourUSD: 1.5, preemptionProbability: 0.1}}\n"
    }
}


def node(
    name: str, gpus: int = 8, ready: bool = True, labels: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}, *extra.pop("conditions", [])]
    return {
        "metadata": {
            "name": name,
            "labels": {
                "topology.kubernetes.io/region": "eu-west-1",
                "nvidia.com/gpu.product": "NVIDIA-A100",
                **(labels or {}),
            },
        },
        "spec": extra.pop("spec", {}),
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}, "conditions": conditions},
    }


def pod(node_name: str, gpus: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "spec": {"nodeName": node_name, "containers": [{"resources": {"limits": {"nvidia.com/gpu": gpus}}}]},
        "status": {"phase": phase},
    }


def pools(nodes: list[dict[str, Any]], pods: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    snapshot = build_snapshot(now=NOW, nodes=nodes, pods=pods, signals_configmap=SIGNALS_CM)
    return {t.name: t for t in snapshot.targets if t.kind is TargetKind.GPU_POOL}


@pytest.mark.parametrize(
    ("label", "value"),
    [
        pytest.param("mlplacement.io/pool", "p", id="mlplacement pool label"),
        pytest.param("cloud.google.com/gke-nodepool", "p", id="GKE node pool"),
        pytest.param("eks.amazonaws.com/nodegroup", "p", id="EKS node group"),
        pytest.param("karpenter.sh/nodepool", "p", id="Karpenter node pool"),
        pytest.param("kubernetes.azure.com/agentpool", "p", id="AKS agent pool"),
    ],
)
def test_nodes_are_grouped_by_any_pool_label(label: str, value: str) -> None:
    result = pools([node("n1", labels={label: value}), node("n2", labels={label: value})])
    assert result["p"].gpus_total == 16


def test_free_gpus_subtract_requests_of_non_terminal_pods() -> None:
    result = pools(
        [node("n1", labels={"mlplacement.io/pool": "p"})],
        [pod("n1", 3), pod("n1", 2, phase="Succeeded"), pod("n1", 1, phase="Pending")],
    )
    assert result["p"].capacity == 4


@pytest.mark.parametrize(
    ("label", "value"),
    [
        pytest.param("karpenter.sh/capacity-type", "spot", id="Karpenter spot"),
        pytest.param("cloud.google.com/gke-spot", "true", id="GKE spot"),
        pytest.param("eks.amazonaws.com/capacityType", "SPOT", id="EKS spot"),
        pytest.param("kubernetes.azure.com/scalesetpriority", "spot", id="AKS spot"),
    ],
)
def test_spot_is_read_from_the_usual_labels(label: str, value: str) -> None:
    result = pools([node("n1", labels={"mlplacement.io/pool": "spot-pool", label: value})])
    assert result["spot-pool"].spot
    assert (result["spot-pool"].gpu_hour_usd, result["spot-pool"].preemption_probability) == (1.5, 0.1)


@pytest.mark.parametrize(
    "sick",
    [
        pytest.param(node("n2", ready=False), id="not Ready"),
        pytest.param(node("n2", spec={"unschedulable": True}), id="cordoned"),
        pytest.param(node("n2", conditions=[{"type": "MemoryPressure", "status": "True"}]), id="under memory pressure"),
        pytest.param(
            node("n2", spec={"taints": [{"key": "aws-node-termination-handler/spot-itn", "effect": "NoSchedule"}]}),
            id="about to be reclaimed",
        ),
    ],
)
def test_unhealthy_nodes_are_excluded(sick: dict[str, Any]) -> None:
    sick["metadata"]["labels"]["mlplacement.io/pool"] = "p"
    result = pools([node("n1", labels={"mlplacement.io/pool": "p"}), sick])
    assert result["p"].gpus_total == 8
    assert result["p"].healthy


def test_pool_without_ready_nodes_is_unhealthy_and_says_why() -> None:
    result = pools([node("n1", ready=False, labels={"mlplacement.io/pool": "p"})])
    assert not result["p"].healthy
    assert result["p"].health_detail == "no ready nodes (not Ready)"


@pytest.mark.parametrize(
    ("taint", "expected"),
    [
        pytest.param(
            "aws-node-termination-handler/spot-itn",
            "EC2 spot interruption notice (aws-node-termination-handler/spot-itn)",
            id="aws-node-termination-handler: spot interruption notice",
        ),
        pytest.param(
            "aws-node-termination-handler/rebalance-recommendation",
            "EC2 rebalance recommendation (aws-node-termination-handler/rebalance-recommendation)",
            id="aws-node-termination-handler: rebalance recommendation",
        ),
        pytest.param(
            "karpenter.sh/disrupted", "Karpenter disrupting the node (karpenter.sh/disrupted)", id="Karpenter"
        ),
        pytest.param(
            "cloud.google.com/impending-node-termination",
            "GCE preemption notice (cloud.google.com/impending-node-termination)",
            id="GKE node termination handler",
        ),
        pytest.param(
            "ToBeDeletedByClusterAutoscaler",
            "cluster-autoscaler removing the node (ToBeDeletedByClusterAutoscaler)",
            id="cluster-autoscaler scale-down",
        ),
        pytest.param("nvidia.com/gpu", None, id="a GPU taint is no interruption"),
    ],
)
def test_interruption_taints_say_who_reclaims_the_node(taint: str, expected: str | None) -> None:
    tainted = node("n1", spec={"taints": [{"key": taint, "effect": "NoSchedule"}]})
    assert node_interruption(tainted) == expected


def test_a_pool_whose_every_node_is_being_reclaimed_says_so() -> None:
    taints = [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]
    result = pools([node("n1", labels={"mlplacement.io/pool": "p"}, spec={"taints": taints})])
    assert not result["p"].healthy
    assert result["p"].health_detail == (
        "no ready nodes (being reclaimed: Karpenter disrupting the node (karpenter.sh/disrupted))"
    )


def test_nodes_without_gpus_or_pool_are_not_targets() -> None:
    assert pools([node("cpu", gpus=0, labels={"mlplacement.io/pool": "cpu"}), node("loose")]) == {}


def test_edge_with_stale_probe_is_not_placeable() -> None:
    edge = {
        "metadata": {"name": "e"},
        "spec": {"region": "eu-central-1", "probe": {"intervalSeconds": 30}},
        "status": {
            "lastProbeTime": "2026-11-22T11:50:00Z",
            "gpusFree": 2,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    (target,) = build_snapshot(now=NOW, edge_clusters=[edge]).targets
    assert not target.healthy
    assert target.health_detail == "probe stale (600s old)"


def test_signals_freshness_follows_updated_at_and_ttl() -> None:
    snapshot = build_snapshot(now=NOW, signals_configmap=SIGNALS_CM)
    assert snapshot.signals_age_seconds == 120
    assert snapshot.signals_fresh()
    assert not build_snapshot(
        now=datetime(2026, 11, 22, 13, 0, tzinfo=UTC), signals_configmap=SIGNALS_CM
    ).signals_fresh()


def test_embedded_sample_fleet_loads() -> None:
    fleet = load_fleet(None)
    assert {p.region for p in fleet.pools} == {"eu-west-1", "eu-central-1", "us-east-1"}
    assert len(fleet.databricks_workspaces) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "apiVersion: mlplacement.io/fleet/v1\nkind: Fleet\npools:\n- name: p\n  region: eu-west-1\n",
            "pools[0].gpusTotal: Field required",
            id="missing field named with its path",
        ),
        pytest.param(
            "apiVersion: mlplacement.io/fleet/v1\nkind: Fleet\npools:\n- {name: p, region: x, gpusTotal: -1}\n",
            "pools[0].gpusTotal: Input should be greater than or equal to 0",
            id="negative GPUs",
        ),
        pytest.param("apiVersion: mlplacement.io/fleet/v2\nkind: Fleet\n", "apiVersion", id="unknown format version"),
        pytest.param(
            "apiVersion: mlplacement.io/fleet/v1\nkind: Fleet\nedges: []\n",
            "edges: Extra inputs",
            id="unknown top-level field",
        ),
    ],
)
def test_bad_fleet_files_are_rejected_with_the_field_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(ManifestFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_fleet(path)


def test_explain_prints_decision_candidates_and_reasons(repo: Path) -> None:
    result = run_cli("explain", "examples/workload-realtime-inference.yaml", "--policy", "examples/policy-default.yaml")
    assert result.returncode == 0, result.stderr
    assert "decision: Edge edge-fra-store-01 in eu-central-1" in result.stdout
    assert "Feasible candidates" in result.stdout
    assert "data not local (in eu-central-1)" in result.stdout


def test_demo_places_the_examples_and_a_generated_batch(repo: Path) -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    assert "team-payments/fraud-scorer" in result.stdout
    assert "decision: Databricks dbx-eu-analytics" in result.stdout
    assert "decision: GPUPool a10g-spot-use1" in result.stdout


@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
@settings(max_examples=150)
def test_a_signals_configmap_with_garbage_means_no_signals_and_says_why(text: str) -> None:
    from mlplacement.core.snapshot import signals_from_configmap

    signals, problem = signals_from_configmap({"data": {"signals.yaml": text}})
    assert signals is not None or problem
