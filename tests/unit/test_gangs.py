"""Distributed training: a gang of workers, each on a node of its own in one pool, placed all or nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from mlplacement.api.policy import GangRules
from mlplacement.api.workload import MLWorkload, TargetKind, WorkloadType
from mlplacement.core.databricks import submit_payload
from mlplacement.core.explain import describe_nodes
from mlplacement.core.ledger import CapacityLedger, Commitment, bound_gpus_by_workload, child_commitment
from mlplacement.core.manifests import build_children
from mlplacement.core.nodes import NodeBook, reserve
from mlplacement.core.placement import decide, decide_many, request_from_workload
from mlplacement.core.reconcile import child_status
from mlplacement.core.snapshot import build_snapshot
from tests.builders import make_fleet, make_request, make_workload, pool, workspace
from tests.conftest import REPO, run_cli
from tests.unit.test_batch import COST_ONLY
from tests.unit.test_chart import KUBERNETES_SCHEMA_VERSION
from tests.unit.test_ledger import pod

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
KEY = ("GPUPool", "p")


def gang(workers: int, gpus: int, key: str = "team-a/train", **overrides: Any) -> Any:
    return make_request(key=key, type=WorkloadType.TRAINING, gpus=gpus, replicas=workers, gang=workers > 1, **overrides)


@pytest.mark.parametrize(
    ("blocks", "gpus", "workers", "fits"),
    [
        pytest.param((8, 8), 8, 2, True, id="two 8-GPU workers on two free 8-GPU nodes"),
        pytest.param((8,), 4, 2, False, id="one node could hold both, but a gang needs a node per worker"),
        pytest.param((4, 4, 8), 4, 3, True, id="three nodes with 4 free each hold a 3x4 gang"),
        pytest.param((2, 2, 2, 2), 4, 2, False, id="8 free GPUs, no node holds a 4-GPU worker"),
        pytest.param((7, 8, 8), 8, 3, False, id="the third node is one GPU short"),
        pytest.param((1, 1, 1), 1, 3, True, id="1-GPU workers still need three nodes"),
    ],
)
def test_what_a_gang_fits_on_a_pools_nodes(blocks: tuple[int, ...], gpus: int, workers: int, fits: bool) -> None:
    book = NodeBook({KEY: blocks})
    assert book.fits(KEY, gpus, workers, distinct=True) is fits
    before = list(book.blocks(KEY))
    assert book.take(KEY, gpus, workers, distinct=True) is fits
    if not fits:
        assert list(book.blocks(KEY)) == before  # all or nothing: a gang that does not fit claims no node


def test_a_gang_takes_the_smallest_nodes_that_hold_a_worker_so_large_ones_stay_whole() -> None:
    book = NodeBook({KEY: (2, 4, 4, 8)})
    assert book.take(KEY, 4, 2, distinct=True)
    assert list(book.blocks(KEY)) == [0, 0, 2, 8]


def test_a_gang_goes_to_the_pool_with_a_node_per_worker_not_the_cheaper_one_with_the_gpus_in_fewer_nodes() -> None:
    fleet = make_fleet(
        pool("one-big", free=16, gpu_hour_usd=1.0, blocks=(16,), node_gpus=16, node_sizes=(16,)),
        pool("frag", free=16, gpu_hour_usd=1.5, blocks=(4, 4, 4, 4), node_gpus=8, node_sizes=(8, 8, 8, 8)),
        pool("pair", free=16, gpu_hour_usd=3.0, blocks=(8, 8), node_gpus=8, node_sizes=(8, 8)),
    )
    decision = decide(gang(2, 8), COST_ONLY, fleet)
    assert decision.chosen is not None
    assert decision.chosen.target.name == "pair"
    assert "have 1 nodes with 8 GPUs (a 2-worker gang needs a node per worker)" in decision.message  # one-big
    assert "have 0 of the 2 nodes with 8 free GPUs a 2-worker gang needs" in decision.message  # frag, for now


def test_a_gang_wider_than_any_pool_is_no_feasible_target_not_a_wait() -> None:
    # 32 GPUs, enough in all, but on two nodes: a 4-worker gang could never start there.
    fleet = make_fleet(pool("pair", free=32, blocks=(16, 16), node_gpus=16, node_sizes=(16, 16)))
    decision = decide(gang(4, 8), COST_ONLY, fleet)
    assert decision.chosen is None
    assert decision.reason.value == "NoFeasibleTarget"
    assert "have 2 nodes with 8 GPUs (a 4-worker gang needs a node per worker)" in decision.message


def test_two_gangs_of_one_round_never_share_a_node() -> None:
    fleet = make_fleet(
        pool("cheap", free=24, gpu_hour_usd=1.0, blocks=(8, 8, 8), node_gpus=8, node_sizes=(8, 8, 8)),
        pool("dear", free=16, gpu_hour_usd=5.0, blocks=(8, 8), node_gpus=8, node_sizes=(8, 8)),
    )
    first, second = gang(2, 8, "team-a/first", priority=200), gang(2, 8, "team-a/second", priority=100)
    placed = {
        d.request.key: d.chosen and d.chosen.target.name for d in decide_many([first, second], {None: COST_ONLY}, fleet)
    }
    # 8 GPUs are still free on "cheap" after the first: one node, and the second gang needs two.
    assert placed == {"team-a/first": "cheap", "team-a/second": "dear"}


def test_a_gang_on_a_pool_without_node_shapes_counts_its_gpus_as_one_bucket() -> None:
    decision = decide(gang(4, 8), COST_ONLY, make_fleet(pool("bucket", free=32)))
    assert decision.chosen is not None  # the stated assumption of a pool whose nodes are not known


def test_a_gang_that_no_pool_can_hold_now_may_still_run_on_databricks() -> None:
    fleet = make_fleet(
        pool("pair", free=8, gpu_hour_usd=1.0, blocks=(0, 8), node_gpus=8, node_sizes=(8, 8)),
        workspace("dbx", gpu_hour_usd=4.0),
    )
    decision = decide(gang(2, 8, allowed=frozenset(TargetKind), databricks_task=True), COST_ONLY, fleet)
    assert decision.chosen is not None
    assert decision.chosen.target.kind is TargetKind.DATABRICKS


# --- what pods not bound yet hold ---


def indexed_job(uid: str, gpus: int, workers: int) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {
            "labels": {"mlplacement.io/workload-uid": uid},
            "annotations": {"mlplacement.io/target": "GPUPool/p"},
        },
        "spec": {
            "completionMode": "Indexed",
            "parallelism": workers,
            "completions": workers,
            "template": {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": gpus}}}]}},
        },
    }


def test_a_gangs_unbound_workers_are_reserved_on_distinct_nodes_across_rounds() -> None:
    assert child_commitment(indexed_job("g", 4, 2)) == Commitment(KEY, 8, 4, gang=True)
    ledger = CapacityLedger()
    ledger.observe_child(indexed_job("g", 4, 3), deleted=False)
    held, waiting = ledger.outstanding_pods(bound_gpus_by_workload([pod("g", 4, "n1")]))
    assert held == {KEY: 8}
    assert waiting == {KEY: {(4, 2): 1}}  # the two workers still unbound, as a gang of two
    # Two 4-GPU workers on an 8 and a 4: one each (a plain pair of pods would both go to the 8, best fit).
    assert reserve([4, 8], {(4, 2): 1}) == [0, 4]
    assert reserve([4, 8], {(4, 1): 2}) == [0, 4]
    assert reserve([8, 8], {(4, 2): 1}) == [4, 4]
    assert reserve([8, 8], {(4, 1): 2}) == [0, 8]


# --- the child ---


def gang_workload(name: str = "llm-pretrain", workers: int = 2, gpus: int = 8, **spec: Any) -> dict[str, Any]:
    obj = make_workload(name=name, type="Training", resources={"gpus": gpus, "workers": workers}, **spec)
    obj["metadata"]["uid"] = "uid-gang"
    return obj


def test_a_gang_runs_as_an_indexed_job_with_a_headless_service_and_torchruns_environment() -> None:
    obj = gang_workload(workers=3, gpus=8)
    job, service = build_children(obj, MLWorkload.model_validate(obj).spec, pool("a100"))
    for child in (job, service):
        kubernetes_validate.validate(child, KUBERNETES_SCHEMA_VERSION, strict=True)
    assert (job["kind"], service["kind"]) == ("Job", "Service")
    assert {k: job["spec"][k] for k in ("completionMode", "completions", "parallelism", "backoffLimit")} == {
        "completionMode": "Indexed",
        "completions": 3,
        "parallelism": 3,
        "backoffLimit": 0,  # a lost worker fails the gang whole; the operator retries it whole
    }
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["subdomain"] == service["metadata"]["name"] == "mlw-llm-pretrain"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    [anti] = pod_spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == {
        "labelSelector": {"matchLabels": {"mlplacement.io/workload-uid": "uid-gang"}},
        "topologyKey": "kubernetes.io/hostname",
    }
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod_spec["containers"][0]["env"]}
    rank = {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "mlw-llm-pretrain-0.mlw-llm-pretrain"
    assert env["MASTER_PORT"] == "29500"
    assert env["WORLD_SIZE"] == env["NNODES"] == env["PET_NNODES"] == "3"
    assert env["NPROC_PER_NODE"] == env["PET_NPROC_PER_NODE"] == "8"
    assert env["NODE_RANK"] == env["RANK"] == env["PET_NODE_RANK"] == rank
    assert child_commitment(
        {**job, "metadata": {**job["metadata"], "annotations": {"mlplacement.io/target": "GPUPool/a100"}}}
    ) == Commitment(("GPUPool", "a100"), 24, 8, gang=True)


def test_a_single_worker_training_is_the_plain_job_it_always_was() -> None:
    obj = make_workload(name="small", type="Training", resources={"gpus": 2})
    obj["metadata"]["uid"] = "uid-small"
    [job] = build_children(obj, MLWorkload.model_validate(obj).spec, pool("a100"))
    assert "completionMode" not in job["spec"]
    assert "affinity" not in job["spec"]["template"]["spec"]


def test_a_gang_on_databricks_is_a_new_cluster_with_as_many_workers() -> None:
    task = {"spark_python_task": {"python_file": "dbfs:/train.py"}}
    cluster = {"spark_version": "15.4.x-gpu-ml-scala2.12", "node_type_id": "g5.12xlarge"}
    obj = gang_workload(workers=4, databricks={"task": task, "newCluster": cluster})
    payload = submit_payload(MLWorkload.model_validate(obj), attempt=1)
    assert payload["tasks"][0]["new_cluster"]["num_workers"] == 4
    autoscaling = gang_workload(
        workers=4,
        databricks={"task": task, "newCluster": {**cluster, "autoscale": {"min_workers": 2, "max_workers": 8}}},
    )
    assert (
        "num_workers"
        not in submit_payload(MLWorkload.model_validate(autoscaling), attempt=1)["tasks"][0]["new_cluster"]
    )


def test_a_gang_runs_only_when_every_worker_is_ready() -> None:
    workload = MLWorkload.model_validate(gang_workload(workers=2))
    job = {"kind": "Job", "status": {"active": 2, "ready": 1}}
    assert child_status(workload, job, None, NOW) is None  # half a gang is not running: torchrun still waits
    running = child_status(workload, {"kind": "Job", "status": {"active": 2, "ready": 2}}, None, NOW)
    assert running is not None
    assert running["phase"] == "Running"
    assert "2/2 workers ready" in running["conditions"][0]["message"]


# --- the API ---


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        pytest.param(
            make_workload(type="Batch", resources={"gpus": 1, "workers": 2}),
            "workers applies to Training only",
            id="workers on a Batch job",
        ),
        pytest.param(gang_workload(name="x" * 53), "at most 52 characters", id="a gang name too long for hostnames"),
        pytest.param(gang_workload(workers=0), "greater than or equal to 1", id="zero workers"),
    ],
)
def test_gangs_the_model_refuses(obj: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        MLWorkload.model_validate(obj)


def test_a_gang_is_one_request_of_workers_pods() -> None:
    request = request_from_workload(MLWorkload.model_validate(gang_workload(workers=4, gpus=8)))
    assert (request.gpus, request.replicas, request.gang, request.gpus_needed) == (8, 4, True, 32)
    single = request_from_workload(MLWorkload.model_validate(gang_workload(workers=1, gpus=8)))
    assert (single.replicas, single.gang) == (1, False)


# --- one topology block (the policy's gangs.topologyLabel) ---

RACKED = (("rack",), ((("r1",), (8, 8)), (("r2",), (8, 8, 8)), (("",), (8, 8))))


def racked_book() -> NodeBook:
    flat = tuple(sorted(block for _, blocks in RACKED[1] for block in blocks))
    return NodeBook({KEY: flat}, {KEY: RACKED})


@pytest.mark.parametrize(
    ("workers", "fits", "why"),
    [
        pytest.param(2, True, "", id="two workers fit either rack"),
        pytest.param(3, True, "", id="three fit r2 only"),
        pytest.param(
            4,
            False,
            "have no rack block with 4 nodes of 8 free GPUs (the most in one: 3)",
            id="seven nodes, none 4 in a rack",
        ),
    ],
)
def test_a_gang_held_to_one_rack_fits_only_where_one_rack_has_a_node_per_worker(
    workers: int, fits: bool, why: str
) -> None:
    book = racked_book()
    assert book.fits(KEY, 8, workers, distinct=True)  # without the rule the 7 nodes would do
    assert book.fits_block(KEY, "rack", 8, workers) is fits
    if not fits:
        assert book.block_shortfall(KEY, "rack", 8, workers) == why


def test_a_gang_takes_the_smallest_rack_that_holds_it_and_other_claims_land_in_a_rack_too() -> None:
    book = racked_book()
    assert book.take_block(KEY, "rack", 8, 2) == "r1"  # r2 (three nodes) stays whole for a wider gang
    assert book.take_block(KEY, "rack", 8, 3) == "r2"
    assert book.take_block(KEY, "rack", 8, 2) is None  # the unlabelled nodes are in no rack
    assert book.take(KEY, 8, 2, distinct=True)  # a gang without the rule may use them
    assert list(book.blocks(KEY)) == [0] * 7
    assert not book.fits(KEY, 1, 1)


def test_the_policy_pins_a_gang_to_the_rack_the_round_counted_for_it() -> None:
    policy = COST_ONLY.model_copy(update={"gangs": GangRules(topology_label="rack")})
    racked = pool("racked", free=56, blocks=(8,) * 7, node_gpus=8, node_sizes=(8,) * 7, domain_labels=RACKED[0])
    fleet = make_fleet(replace(racked, domains=RACKED[1]))
    first, second = gang(3, 8, "team-a/three", priority=9), gang(3, 8, "team-a/again", priority=1)
    decisions = {d.request.key: d for d in decide_many([first, second], {None: policy}, fleet)}
    three = decisions["team-a/three"].chosen
    assert three is not None
    assert three.target.pin == ("rack", "r2")
    again = decisions["team-a/again"]
    assert again.chosen is None  # 4 nodes are free, but no rack has 3 of them
    assert "have no rack block with 3 nodes of 8 free GPUs (the most in one: 2)" in again.message
    obj = gang_workload(workers=3)
    [job, _] = build_children(obj, MLWorkload.model_validate(obj).spec, three.target)
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"mlplacement.io/pool": "racked", "rack": "r2"}


def rack_node(name: str, rack: str | None, free_gpus: int = 8) -> dict[str, Any]:
    labels = {"mlplacement.io/pool": "p", "topology.kubernetes.io/region": "eu-west-1"}
    if rack:
        labels["rack"] = rack
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(free_gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_the_snapshot_keeps_a_pool_per_rack_when_a_policy_names_the_label_and_reserves_there() -> None:
    nodes = [rack_node("a", "r1"), rack_node("b", "r1"), rack_node("c", "r2"), rack_node("d", None, 4)]
    [plain] = build_snapshot(now=NOW, nodes=nodes).targets
    assert plain.domains == ()
    [target] = build_snapshot(now=NOW, nodes=nodes, topology_labels={"rack"}).targets
    assert target.domain_labels == ("rack",)
    assert target.domains == ((("",), (4,)), (("r1",), (8, 8)), (("r2",), (8,)))
    # A 2-worker gang created but not bound yet: its workers hold two distinct nodes in the next snapshot.
    [held] = build_snapshot(
        now=NOW, nodes=nodes, topology_labels={"rack"}, reserved_pods={KEY: {(8, 2): 1}}, reserved={KEY: 16}
    ).targets
    assert held.blocks == (0, 0, 4, 8)
    assert sum(len([b for b in blocks if b == 0]) for _, blocks in held.domains) == 2


# --- explain ---


def test_explain_says_which_nodes_a_gang_takes(tmp_path: Path) -> None:
    example = REPO / "examples" / "workload-distributed-training.yaml"
    policy = ("--policy", REPO / "examples" / "policy-default.yaml")
    result = run_cli("explain", example, *policy, "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (decision,) = json.loads(result.stdout)["decisions"]
    assert decision["target"]["name"] == "a100-ondemand-euw1"  # the sample fleet's pool of 8-GPU nodes
    assert decision["nodesFreeGPUs"] == [8, 8]  # a node each, the two workers never on one
    table = run_cli("explain", example, *policy, cwd=tmp_path).stdout
    assert "nodes: a node per worker, 2 x 4 GPUs, on nodes with 8, 8 free GPUs" in table


def test_explain_of_a_pinned_gang_names_its_block() -> None:
    policy = COST_ONLY.model_copy(update={"gangs": GangRules(topology_label="rack")})
    racked = pool("racked", free=56, blocks=(8,) * 7, node_gpus=8, node_sizes=(8,) * 7, domain_labels=RACKED[0])
    [decision] = decide_many([gang(2, 8)], {None: policy}, make_fleet(replace(racked, domains=RACKED[1])))
    assert describe_nodes(decision) == "nodes: a node per worker, 2 x 8 GPUs, on nodes with 8, 8 free GPUs (rack=r1)"
