"""Node-true placement (core.nodes): a pod's GPUs sit on one node, in one round and across rounds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlplacement.api.fleet import FleetPool
from mlplacement.api.workload import TargetKind, WorkloadType
from mlplacement.core.nodes import NodeBook, holding, packs, pods_that_fit, reserve, take
from mlplacement.core.placement import decide, decide_many
from mlplacement.core.quantity import cpu_millis, memory_bytes
from mlplacement.core.snapshot import build_snapshot
from tests.builders import make_fleet, make_request, pool
from tests.unit.test_batch import COST_ONLY

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("blocks", "pod_gpus", "pods", "fits"),
    [
        pytest.param((2, 2, 4), 4, 1, True, id="a 4-GPU pod fits the node with 4 free"),
        pytest.param((2, 2, 2, 2), 4, 1, False, id="8 free GPUs, but no node holds a 4-GPU pod"),
        pytest.param((4,), 2, 2, True, id="two pods of one workload share a node"),
        pytest.param((3, 3), 2, 3, False, id="three 2-GPU pods on two nodes of 3: one is left over"),
        pytest.param((1, 1, 1), 1, 3, True, id="1-GPU pods fit wherever a GPU is free"),
        pytest.param((), 1, 1, False, id="no schedulable node holds anything"),
    ],
)
def test_what_fits_on_a_pools_nodes(blocks: tuple[int, ...], pod_gpus: int, pods: int, fits: bool) -> None:
    book = NodeBook({("GPUPool", "p"): blocks})
    assert book.fits(("GPUPool", "p"), pod_gpus, pods) is fits
    assert (pods_that_fit(blocks, pod_gpus) >= pods) is fits
    assert book.take(("GPUPool", "p"), pod_gpus, pods) is fits


def test_best_fit_keeps_the_large_block_whole_for_large_pods() -> None:
    blocks = [2, 8]
    assert take(blocks, 2)
    assert blocks == [0, 8]
    assert take(blocks, 8)
    assert blocks == [0, 0]
    assert not take(blocks, 1)
    assert blocks == [0, 0]  # nothing claimed by a take that does not fit


def test_a_target_without_node_shapes_is_one_bucket() -> None:
    book = NodeBook({})
    assert book.fits(("GPUPool", "bucket"), 8, 4)
    assert NodeBook.of(make_fleet(pool("bucket", free=8))) is None


# --- the engine ---


def test_a_pod_goes_to_the_pool_with_a_node_that_holds_it_not_the_cheaper_fragmented_one() -> None:
    fleet = make_fleet(
        pool("frag", free=8, gpu_hour_usd=2.0, blocks=(2, 2, 2, 2), node_gpus=8),
        pool("whole", free=8, gpu_hour_usd=3.0, blocks=(8,), node_gpus=8),
    )
    training = make_request(key="team-a/train", type=WorkloadType.TRAINING, gpus=4)
    decision = decide(training, COST_ONLY, fleet)
    assert decision.chosen is not None
    assert decision.chosen.target.name == "whole"
    assert "have no node with 4 free GPUs (0/4 nodes, largest free block: 2)" in decision.message
    one_gpu = decide(make_request(key="team-a/small", gpus=1), COST_ONLY, fleet)
    assert one_gpu.chosen is not None
    assert one_gpu.chosen.target.name == "frag"  # 1-GPU work still takes the cheap fragments


def test_a_pod_bigger_than_any_node_is_no_feasible_target_not_a_wait() -> None:
    fleet = make_fleet(pool("a", free=16, blocks=(8, 8), node_gpus=8), pool("b", free=32, blocks=(8,) * 4, node_gpus=8))
    decision = decide(make_request(key="team-a/huge", type=WorkloadType.TRAINING, gpus=16), COST_ONLY, fleet)
    assert decision.chosen is None
    assert decision.reason.value == "NoFeasibleTarget"
    assert "2 have no node with 16 GPUs (the largest has 8)" in decision.message


def test_one_round_never_counts_two_pods_on_the_same_nodes_gpus() -> None:
    fleet = make_fleet(
        pool("cheap", free=8, gpu_hour_usd=1.0, blocks=(2, 2, 4), node_gpus=4),
        pool("dear", free=8, gpu_hour_usd=5.0, blocks=(8,), node_gpus=8),
    )
    first = make_request(key="team-a/first", type=WorkloadType.TRAINING, gpus=4, priority=200)
    second = make_request(key="team-a/second", type=WorkloadType.TRAINING, gpus=4, priority=100)
    decisions = {d.request.key: d for d in decide_many([first, second], {None: COST_ONLY}, fleet)}
    placed = {key: d.chosen.target.name if d.chosen else None for key, d in decisions.items()}
    # 4 GPUs are still free on "cheap" after the first, but only as two blocks of 2.
    assert placed == {"team-a/first": "cheap", "team-a/second": "dear"}


# --- the snapshot ---


def gpu_node(name: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"mlplacement.io/pool": "p", "topology.kubernetes.io/region": "eu-west-1"},
        },
        "spec": {},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def bound_pod(node: str, gpus: int, init_gpus: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": node,
        "containers": [{"resources": {"limits": {"nvidia.com/gpu": gpus}}}],
    }
    if init_gpus:
        spec["initContainers"] = [{"resources": {"limits": {"nvidia.com/gpu": init_gpus}}}]
    return {"spec": spec, "status": {"phase": "Running"}}


def test_a_pools_free_blocks_are_its_nodes_allocatable_minus_what_pods_request() -> None:
    nodes = [gpu_node("n1", 8), gpu_node("n2", 8), gpu_node("n3", 4)]
    pods = [bound_pod("n1", 6), bound_pod("n2", 1, init_gpus=3)]  # an init container's peak counts
    [target] = build_snapshot(now=NOW, nodes=nodes, pods=pods).targets
    assert target.blocks == (2, 4, 5)
    assert target.node_gpus == 8
    assert target.capacity == 11


def test_pods_not_bound_yet_take_their_blocks_before_the_next_round_sees_them() -> None:
    nodes = [gpu_node("n1", 8), gpu_node("n2", 2)]
    snapshot = build_snapshot(
        now=NOW, nodes=nodes, reserved={("GPUPool", "p"): 4}, reserved_pods={("GPUPool", "p"): {(2, 1): 2}}
    )
    [target] = snapshot.targets
    assert target.blocks == (0, 6)  # best fit: one pod of 2 fills the 2-GPU node
    assert target.capacity == 6


def test_reserving_a_pod_no_block_holds_still_takes_its_gpus() -> None:
    assert reserve([2, 2], {(4, 1): 1}) == [0, 2]
    # The 2-GPU pod first (best fit: the 3), then the 1-GPU pods fill the smallest blocks, the 8 kept nearly whole.
    assert reserve([1, 3, 8], {(1, 1): 3, (2, 1): 1}) == [0, 0, 7]


# --- fleet files ---


@pytest.mark.parametrize(
    ("pool_fields", "blocks", "sizes"),
    [
        pytest.param({"gpusTotal": 16}, (), (), id="no node shapes: one bucket, as before"),
        pytest.param(
            {"gpusTotal": 16, "gpusFree": 11, "gpusPerNode": 8}, (3, 8), (8, 8), id="free GPUs fill whole nodes"
        ),
        pytest.param(
            {"gpusTotal": 10, "gpusFree": 5, "nodes": [{"gpus": 8, "free": 3}, {"gpus": 2}]},
            (2, 3),
            (2, 8),
            id="node by node",
        ),
    ],
)
def test_fleet_file_pools_may_give_their_node_shapes(
    pool_fields: dict[str, Any], blocks: tuple[int, ...], sizes: tuple[int, ...]
) -> None:
    fleet_pool = FleetPool.model_validate({"name": "p", "region": "eu-west-1", **pool_fields})
    assert fleet_pool.node_blocks() == (blocks, sizes)


@pytest.mark.parametrize(
    ("pool_fields", "problem"),
    [
        pytest.param({"gpusTotal": 12, "gpusPerNode": 8}, "not a whole number of 8-GPU nodes", id="partial node"),
        pytest.param({"gpusTotal": 9, "nodes": [{"gpus": 8}]}, "add up to 8, not gpusTotal 9", id="nodes disagree"),
        pytest.param(
            {"gpusTotal": 8, "nodes": [{"gpus": 8, "free": 9}]}, "more than the node's gpus", id="free > gpus"
        ),
        pytest.param({"gpusTotal": 8, "gpusPerNode": 8, "nodes": [{"gpus": 8}]}, "not both", id="both ways at once"),
    ],
)
def test_fleet_file_node_shapes_that_disagree_are_refused(pool_fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        FleetPool.model_validate({"name": "p", "region": "eu-west-1", **pool_fields})


# --- property: across rounds, no node is ever claimed beyond what it has ---


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.lists(st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=6), min_size=1, max_size=3),
    bucket=st.integers(0, 6),
    arrivals=st.lists(
        st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 8]), st.integers(1, 3), st.booleans()), max_size=5),
        min_size=1,
        max_size=4,
    ),
)
def test_over_rounds_every_placed_pod_has_a_node_that_holds_it(
    nodes: list[list[int]], bucket: int, arrivals: list[list[tuple[int, int, bool]]]
) -> None:
    """Each round decides on the blocks the last left (placed pods as reserved, not bound yet); whatever was
    placed in a round must pack onto those blocks (a gang's pods each on a node of its own), so no node's GPUs
    are claimed twice; and a pool without node shapes (one bucket, dearer) is never claimed past its free GPUs."""
    free = {("GPUPool", f"p{i}"): sorted(shape) for i, shape in enumerate(nodes)}
    serial = 0
    for batch in arrivals:
        targets = [
            pool(key[1], free=sum(blocks), gpu_hour_usd=1.0 + index, blocks=tuple(blocks), node_gpus=8)
            for index, (key, blocks) in enumerate(free.items())
        ]
        targets.append(pool("bucket", free=bucket, gpu_hour_usd=9.0))
        requests = []
        for gpus, pods, gang in batch:
            serial += 1
            kind = WorkloadType.TRAINING if gang or pods == 1 else WorkloadType.INFERENCE
            requests.append(
                make_request(
                    key=f"ns/w{serial}",
                    type=kind,
                    gpus=gpus,
                    replicas=pods,
                    gang=gang and pods > 1,
                    allowed=frozenset(TargetKind),
                )
            )
        decisions = decide_many(requests, {None: COST_ONLY}, make_fleet(*targets))
        in_bucket = sum(d.request.gpus_needed for d in decisions if d.chosen and d.chosen.target.name == "bucket")
        assert in_bucket <= bucket
        bucket -= in_bucket
        decisions = [d for d in decisions if not (d.chosen and d.chosen.target.name == "bucket")]
        placed = [
            (d.chosen.target.key, d.request.gpus, d.request.replicas, d.request.gang)
            for d in decisions
            if d.chosen is not None
        ]
        assert packs({key: tuple(blocks) for key, blocks in free.items()}, placed)
        for key, pod_gpus, pods, gang in placed:
            if gang:  # a node of its own for each worker, on what was free when it was placed
                assert holding(free[key], pod_gpus) >= pods
            assert take(free[key], pod_gpus, pods, gang)


def test_a_batch_whose_moves_do_not_pack_on_nodes_is_decided_again_without_them() -> None:
    """Room-making moved a 2-replica inference off the bucket pool to make room, a later workload took what the
    move freed there, and the moves then failed the node check: falling back to the greedy answer as it was
    would put both on the bucket (3 GPUs on 2). The batch is decided again without room-making instead."""
    fleet = make_fleet(
        pool("bucket", free=2, gpu_hour_usd=1.0, gpu_products=frozenset({"NVIDIA-A100", "NVIDIA-H100"})),
        # More free in all than its nodes show (a snapshot's free total and blocks may disagree for a moment).
        pool("shaped", free=3, gpu_hour_usd=5.0, blocks=(1,), node_gpus=1),
    )
    pair = make_request(key="ns/pair", type=WorkloadType.INFERENCE, gpus=1, replicas=2, priority=3)
    h100 = make_request(key="ns/h100", gpus=1, gpu_product="NVIDIA-H100", priority=2)
    late = make_request(key="ns/late", gpus=1, priority=1)
    decisions = decide_many([pair, h100, late], {None: COST_ONLY}, fleet)
    claimed: dict[str, int] = {}
    for d in decisions:
        if d.chosen is not None:
            claimed[d.chosen.target.name] = claimed.get(d.chosen.target.name, 0) + d.request.gpus_needed
    assert claimed.get("bucket", 0) <= 2
    assert claimed.get("shaped", 0) <= 1


# --- CPU and memory: a node must hold all of a pod ---


@pytest.mark.parametrize(
    ("value", "millis", "as_bytes"),
    [
        pytest.param("500m", 500, 1, id="millicores"),
        pytest.param(4, 4000, 4, id="a bare number"),
        pytest.param("16Gi", 16 * 2**30 * 1000, 16 * 2**30, id="binary suffix"),
        pytest.param("1e3", 1_000_000, 1000, id="exponent"),
        pytest.param("1.5", 1500, 2, id="a fraction rounds up"),
        pytest.param("lots", 0, 0, id="not a quantity counts nothing"),
    ],
)
def test_quantities(value: object, millis: int, as_bytes: int) -> None:
    assert (cpu_millis(value), memory_bytes(value)) == (millis, as_bytes)


def cpu_node(name: str, pool_name: str, gpus: int, cpu: str, memory: str) -> dict[str, Any]:
    node = gpu_node(name, gpus)
    node["metadata"]["labels"]["mlplacement.io/pool"] = pool_name
    node["status"]["allocatable"].update(cpu=cpu, memory=memory)
    return node


def cpu_pod(node: str, cpu: str, memory: str, gpus: int = 0) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = gpus
    return {"spec": {"nodeName": node, "containers": [{"resources": {"requests": requests}}]}, "status": {}}


def test_a_node_with_free_gpus_but_no_free_cpu_cannot_take_the_pod() -> None:
    nodes = [cpu_node("busy-0", "busy", 8, "32", "256Gi"), cpu_node("calm-0", "calm", 8, "32", "256Gi")]
    # busy-0's GPUs are all free, but a CPU-only pod requests 30 of its 32 cores.
    snapshot = build_snapshot(now=NOW, nodes=nodes, pods=[cpu_pod("busy-0", "30", "8Gi")])
    busy = next(t for t in snapshot.targets if t.name == "busy")
    assert busy.node_room == ((8, 2000, 248 * 2**30),)
    training = make_request(key="ns/t", type=WorkloadType.TRAINING, gpus=4, cpu_millis=8000, memory_bytes=64 * 2**30)
    decision = decide(training, COST_ONLY, replace_prices(snapshot, busy=1.0, calm=3.0))
    assert decision.chosen is not None
    assert decision.chosen.target.name == "calm"
    assert "1 have no node with 4 GPUs, 8 CPU and 64Gi memory free" in decision.message
    huge = make_request(key="ns/h", type=WorkloadType.TRAINING, gpus=1, cpu_millis=64_000)
    refused = decide(huge, COST_ONLY, snapshot)
    assert refused.reason.value == "NoFeasibleTarget"
    assert "2 have no node with 64 CPU (the largest has 32)" in refused.message


def replace_prices(snapshot: Any, **prices: float) -> Any:
    from dataclasses import replace

    return replace(snapshot, targets=tuple(replace(t, gpu_hour_usd=prices.get(t.name, 1.0)) for t in snapshot.targets))


def test_the_operator_cache_sums_every_pods_cpu_and_memory_per_node() -> None:
    from mlplacement.config import OperatorConfig
    from mlplacement.controller.state import FleetCache

    cache = FleetCache(config=OperatorConfig())
    first = {**cpu_pod("n1", "2", "4Gi"), "metadata": {"name": "a", "namespace": "x"}}
    second = {**cpu_pod("n1", "500m", "1Gi", gpus=1), "metadata": {"name": "b", "namespace": "x"}}
    assert cache.on_pod(first, deleted=False)  # a CPU-only pod: not kept, but its node's room changed
    assert not cache.on_pod(first, deleted=False)  # the same again: no news, no round
    assert cache.on_pod(second, deleted=False)
    assert cache.cpu_memory_used == {"n1": (2500, 5 * 2**30)}
    assert list(cache.gpu_pods) == ["x/b"]
    cache.on_pod({**first, "status": {"phase": "Succeeded"}}, deleted=False)  # finished: holds nothing now
    cache.on_pod(second, deleted=True)
    assert cache.cpu_memory_used == {}


# --- the operator's pools, kept as nodes and pods change, against the same pools built from scratch ---

NODE_NAMES = ("n0", "n1")
MOSTLY_NOT = st.sampled_from((False, False, False, True))  # a rare case, so the common one is common
node_events = st.builds(
    lambda name, pool, gpus, ready, cordoned, spot, rack, deleted, reclaimed: (
        "node",
        {
            "metadata": {
                "name": name,
                "labels": {
                    "mlplacement.io/pool": pool,
                    "topology.kubernetes.io/region": "eu-west-1",
                    "nvidia.com/gpu.product": "NVIDIA-A100",
                    "rack": rack,
                    **({"karpenter.sh/capacity-type": "spot"} if spot else {}),
                },
            },
            "spec": {"unschedulable": cordoned, "taints": [{"key": "karpenter.sh/disrupted"}] if reclaimed else []},
            "status": {
                "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "64", "memory": "512Gi"},
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        },
        deleted,
    ),
    st.sampled_from(NODE_NAMES),
    st.sampled_from(("a100", "h100")),
    st.integers(0, 8),
    MOSTLY_NOT.map(lambda down: not down),
    MOSTLY_NOT,
    st.booleans(),
    st.sampled_from(("r1", "r2")),
    MOSTLY_NOT,
    MOSTLY_NOT,
)
pod_events = st.builds(
    lambda name, node, gpus, cpu, phase, placeholder, deleted: (
        "pod",
        {
            "metadata": {
                "name": name,
                "namespace": "team",
                "labels": {"mlplacement.io/placeholder-for": "x"} if placeholder else {},
            },
            "spec": {
                "nodeName": node,
                "containers": [{"resources": {"requests": {"nvidia.com/gpu": gpus, **cpu}}}],
            },
            "status": {"phase": phase},
        },
        deleted,
    ),
    st.sampled_from(("p0", "p1", "p2", "p3", "p4")),
    st.sampled_from((*NODE_NAMES, None)),
    st.integers(0, 4),
    st.sampled_from(({}, {"cpu": "1", "memory": "1Gi"})),
    st.sampled_from(("Pending", "Running", "Running", "Succeeded", "Failed")),
    MOSTLY_NOT,
    MOSTLY_NOT,
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.one_of(node_events, pod_events), max_size=30),
    topology=st.sampled_from(((), ("rack",))),
)
def test_pools_kept_as_nodes_and_pods_change_equal_pools_built_from_scratch(
    events: list[tuple[str, dict[str, Any], bool]], topology: tuple[str, ...]
) -> None:
    from mlplacement.config import OperatorConfig
    from mlplacement.controller.state import FleetCache
    from mlplacement.core.snapshot import gpu_pools_from_nodes, node_interruption

    cache = FleetCache(config=OperatorConfig())
    for kind, obj, deleted in events:
        if kind == "node":
            cache.on_node(obj, deleted=deleted)
        else:
            cache.on_pod(obj, deleted=deleted)
        kept = cache.gpu_pools(None, topology)
        assert cache.gpu_pools(None, topology) is kept  # nothing changed since: not built again
        scratch = gpu_pools_from_nodes(
            cache.nodes.values(),
            cache.gpu_pods.values(),
            None,
            cache.config.pool_label_keys,
            topology,
            cache.cpu_memory_used,
        )
        assert kept == scratch
        assert cache.reclaimed == {
            name: why for name, node in cache.nodes.items() if (why := node_interruption(node)) is not None
        }
