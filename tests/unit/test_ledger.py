"""The capacity ledger and the one rule for a pod's GPUs, both pure."""

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.core.ledger import CapacityLedger, Commitment, bound_gpus_by_workload, child_commitment
from mlplacement.core.snapshot import pod_gpu_requests


def container(gpus: int, **extra: Any) -> dict[str, Any]:
    return {"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}, **extra}


POD_GPUS = [
    pytest.param({"containers": [container(2), container(1)]}, 3, id="app containers add up"),
    pytest.param(
        {"initContainers": [container(4)], "containers": [container(1)]}, 4, id="a bigger init container sets the peak"
    ),
    pytest.param(
        {"initContainers": [container(1, restartPolicy="Always"), container(2)], "containers": [container(2)]},
        3,
        id="a sidecar runs beside the app and beside later init containers",
    ),
    pytest.param(
        {"containers": [{"resources": {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}}]},
        2,
        id="requests and limits name the same claim once",
    ),
    pytest.param({"containers": [{"resources": {}}]}, 0, id="no GPUs"),
]


@pytest.mark.parametrize(("spec", "gpus"), POD_GPUS)
def test_pod_gpu_requests_follow_the_schedulers_rule(spec: dict[str, Any], gpus: int) -> None:
    assert pod_gpu_requests({"spec": spec}) == gpus


def job(uid: str, gpus: int, target: str = "GPUPool/a100", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {"labels": {"mlplacement.io/workload-uid": uid}, "annotations": {"mlplacement.io/target": target}},
        "spec": {"template": {"spec": {"containers": [container(gpus)]}}, **spec},
    }


CHILDREN = [
    pytest.param(job("u", 2), Commitment(("GPUPool", "a100"), 2, 2), id="a Job holds its pod's GPUs"),
    pytest.param(job("u", 2, parallelism=3), Commitment(("GPUPool", "a100"), 6, 2), id="times its parallelism"),
    pytest.param(
        {**job("u", 1), "kind": "Deployment", "spec": {**job("u", 1)["spec"], "replicas": 4}},
        Commitment(("GPUPool", "a100"), 4, 1),
        id="a Deployment times its replicas",
    ),
    pytest.param(
        {**job("u", 2), "status": {"conditions": [{"type": "Complete", "status": "True"}]}}, None, id="finished"
    ),
    pytest.param(
        job("u", 2, target="Edge/store-1"),
        Commitment(("Edge", "store-1"), 2, 2),
        id="an edge copy holds GPUs on its edge until the edge's probe sees its pods bound",
    ),
    pytest.param(job("u", 2, target="Databricks/dbx"), None, id="a Databricks run is counted in run slots"),
    pytest.param(job("u", 0), None, id="no GPUs, nothing held"),
]


@pytest.mark.parametrize(("child", "commitment"), CHILDREN)
def test_what_a_child_commits(child: dict[str, Any], commitment: Commitment | None) -> None:
    assert child_commitment(child) == commitment


def pod(uid: str, gpus: int, node: str | None, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"mlplacement.io/workload-uid": uid}},
        "spec": {"nodeName": node, "containers": [container(gpus)]},
        "status": {"phase": phase},
    }


def test_outstanding_is_the_commitment_less_what_bound_pods_hold() -> None:
    ledger = CapacityLedger()
    ledger.observe_child(job("a", 2, parallelism=2), deleted=False)
    ledger.observe_child(job("b", 4), deleted=False)
    pods = [pod("a", 2, "n1"), pod("a", 2, None), pod("b", 4, "n2", phase="Succeeded")]
    assert ledger.outstanding(bound_gpus_by_workload(pods)) == {("GPUPool", "a100"): 2 + 4}


def test_a_given_up_target_is_not_claimed_again_by_the_lingering_child() -> None:
    ledger = CapacityLedger()
    ledger.observe_child(job("a", 2), deleted=False)
    assert ledger.release("a", give_up_target=True)
    ledger.observe_child(job("a", 2), deleted=False)  # the old child's next watch event
    assert ledger.get("a") is None
    ledger.observe_child(job("a", 2, target="GPUPool/other"), deleted=False)  # replaced elsewhere
    assert ledger.get("a") == Commitment(("GPUPool", "other"), 2, 2)


def test_pods_not_bound_yet_are_counted_one_by_one_where_the_snapshot_offers_blocks() -> None:
    ledger = CapacityLedger()
    ledger.observe_child(job("a", 4, parallelism=2), deleted=False)  # two pods of 4
    ledger.observe_child(job("b", 2), deleted=False)
    pods = [pod("a", 4, "n1")]  # one of a's pods is bound: it counts on its node already
    held, waiting = ledger.outstanding_pods(bound_gpus_by_workload(pods))
    assert held == {("GPUPool", "a100"): 4 + 2}
    assert waiting == {("GPUPool", "a100"): {(4, 1): 1, (2, 1): 1}}


COMMITMENTS = st.builds(
    Commitment,
    target=st.sampled_from([("GPUPool", "a100"), ("GPUPool", "h100"), ("EdgeCluster", "edge-1")]),
    gpus=st.integers(1, 16),
    pod_gpus=st.sampled_from([0, 1, 2, 4]),
    gang=st.booleans(),
)
UIDS = st.sampled_from(["a", "b", "c", "d"])
LEDGER_STEPS = st.one_of(
    st.tuples(st.just("commit"), UIDS, COMMITMENTS),
    st.tuples(st.just("release"), UIDS, st.booleans()),
    st.tuples(st.just("bound"), UIDS, st.integers(0, 20)),
    st.tuples(st.just("child gone"), UIDS, st.none()),
)


def held_afresh(ledger: CapacityLedger, bound: dict[str, int]) -> tuple[dict[Any, int], dict[Any, Counter[Any]]]:
    """What is still held, computed from every commitment at once: what the running sums must equal."""
    held: dict[Any, int] = {}
    waiting: dict[Any, Counter[Any]] = {}
    for uid in "abcd":
        commitment = ledger.get(uid)
        left = commitment.gpus - bound.get(uid, 0) if commitment is not None else 0
        if commitment is None or left <= 0:
            continue
        held[commitment.target] = held.get(commitment.target, 0) + left
        size = commitment.pod_gpus or commitment.gpus
        unbound = -(-left // size)
        group = waiting.setdefault(commitment.target, Counter())
        if commitment.gang and unbound > 1:
            group[size, unbound] += 1
        else:
            group[size, 1] += unbound
    return held, waiting


@settings(max_examples=300, deadline=None)
@given(st.lists(LEDGER_STEPS, max_size=40))
def test_the_running_sums_equal_a_fresh_count_after_any_commitments_and_bindings(steps: list[Any]) -> None:
    ledger, bound = CapacityLedger(), {}
    for action, uid, value in steps:
        if action == "commit":
            ledger.commit(uid, value)
        elif action == "release":
            ledger.release(uid, give_up_target=value)
        elif action == "bound":
            bound[uid] = value
            ledger.set_bound(uid, value)
        else:
            ledger.observe_child({"metadata": {"labels": {"mlplacement.io/workload-uid": uid}}}, deleted=True)
        assert ledger.outstanding_pods() == held_afresh(ledger, bound)
