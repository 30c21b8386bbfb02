"""The workload controller, given state, one event, and the status patches and actions that come out.

Fakes stand in at the adapter boundary only (the cluster writes and the event sink); admission, signing,
placement, manifests and status are the real thing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from mlplacement.api.constants import Reason
from mlplacement.api.errors import ApplyError
from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign
from tests.builders import make_policy, make_workload, with_annotations
from tests.component.fakes import Clock, Events, FakeCluster

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = keyring_core.generate_key()
OTHER = keyring_core.generate_key()


def signed(obj: dict[str, Any], key: Any = KEY, key_id: str = "platform") -> dict[str, Any]:
    return with_annotations(obj, sign(obj, key, key_id))


def gpu_node(name: str, pool: str, gpus: int = 8, spot: bool = False) -> dict[str, Any]:
    labels = {
        "mlplacement.io/pool": pool,
        "topology.kubernetes.io/region": "eu-west-1",
        "nvidia.com/gpu.product": "NVIDIA-A100",
    }
    if spot:
        labels["karpenter.sh/capacity-type"] = "spot"
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def workload(name: str = "trainer", gpus: int = 2, **spec: Any) -> dict[str, Any]:
    obj = make_workload(name=name, namespace="team-a", resources={"gpus": gpus}, **spec)
    obj["metadata"].update(uid=f"uid-{name}", generation=1, creationTimestamp="2026-11-22T11:00:00Z")
    return obj


@pytest.fixture
def world() -> tuple[WorkloadController, FakeCluster, Events, FleetCache]:
    config = OperatorConfig()
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    cache.on_policy(signed(make_policy("default")), deleted=False)
    cache.on_node(gpu_node("n1", "a100-euw1"), deleted=False)
    cluster, events = FakeCluster(), Events()
    controller = WorkloadController(config, cache, cluster, events, clock=lambda: NOW, monotonic=lambda: 0.0)
    return controller, cluster, events, cache


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def conditions(patch: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in patch["conditions"]}


def test_signed_workload_gets_a_job_on_the_pool_and_placed_status(world: Any) -> None:
    controller, cluster, events, _ = world
    obj = signed(workload())

    async def scenario() -> None:
        assert await controller.on_workload(obj) is None
        await controller.place_round()

    run(scenario())
    (job,) = cluster.children.values()
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "mlw-trainer"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-trainer"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"mlplacement.io/pool": "a100-euw1"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    ((key, patch),) = cluster.status_patches
    assert key == "team-a/trainer"
    assert patch["phase"] == "Placed"
    assert patch["observedGeneration"] == 1
    assert conditions(patch) == {
        "Verified": ("True", "Verified"),
        "Placed": ("True", "Dispatched"),
        "Ready": ("False", "Dispatched"),
    }
    assert patch["placement"]["target"] == {"kind": "GPUPool", "name": "a100-euw1", "region": "eu-west-1"}
    assert patch["verified"]["keyId"] == "platform"
    assert events[-1][:2] == ("Normal", "Placed")


REFUSALS = [
    pytest.param(lambda: workload(), Reason.SIGNATURE_MISSING, id="unsigned workload"),
    pytest.param(
        lambda: {**signed(workload()), "spec": {**workload()["spec"], "args": ["--evil"]}},
        Reason.SIGNATURE_INVALID,
        id="tampered workload",
    ),
    pytest.param(lambda: signed(workload(), OTHER, "platform"), Reason.SIGNATURE_INVALID, id="signed by another key"),
    pytest.param(
        lambda: signed(workload(policyRef={"name": "missing"})),
        Reason.POLICY_NOT_FOUND,
        id="policy that does not exist",
    ),
]


@pytest.mark.parametrize(("make", "reason"), REFUSALS)
def test_refused_workload_gets_no_child_and_says_why(world: Any, make: Any, reason: Reason) -> None:
    controller, cluster, events, _ = world

    async def scenario() -> None:
        refusal = await controller.on_workload(make())
        assert refusal is not None
        await controller.place_round()

    run(scenario())
    assert cluster.children == {}
    ((_, patch),) = cluster.status_patches
    assert patch["phase"] == "Refused"
    assert conditions(patch)["Verified"] == ("False", reason.value)
    assert conditions(patch)["Ready"] == ("False", reason.value)
    assert events[-1][:2] == ("Warning", reason.value)


def test_unsigned_policy_refuses_its_workloads(world: Any) -> None:
    controller, cluster, _, cache = world
    cache.policies.clear()
    cache.on_policy(make_policy("default"), deleted=False)
    run(controller.on_workload(signed(workload())))
    ((_, patch),) = cluster.status_patches
    assert conditions(patch)["Verified"] == ("False", "PolicyUnsigned")
    assert cluster.children == {}


def test_two_default_policies_are_ambiguous(world: Any) -> None:
    controller, cluster, _, cache = world
    cache.on_policy(signed(make_policy("second")), deleted=False)
    run(controller.on_workload(signed(workload())))
    ((_, patch),) = cluster.status_patches
    assert conditions(patch)["Verified"] == ("False", "PolicyAmbiguous")


def test_invalid_spec_is_a_condition_not_a_crash(world: Any) -> None:
    controller, cluster, events, _ = world
    bad = signed(workload(intent={"priority": -5}))
    run(controller.on_workload(bad))
    ((_, patch),) = cluster.status_patches
    assert conditions(patch)["Ready"] == ("False", "InvalidSpec")
    assert "spec.intent.priority" in patch["conditions"][0]["message"]
    assert events[-1][:2] == ("Warning", "InvalidSpec")


def test_refusal_is_written_once_not_on_every_resume(world: Any) -> None:
    controller, cluster, _, _ = world
    obj = workload()
    run(controller.on_workload(obj))
    refused = {**obj, "status": cluster.status_patches[0][1]}
    run(controller.on_workload(refused))
    assert len(cluster.status_patches) == 1


async def second_waits_behind_first(controller: WorkloadController) -> None:
    """6 of the pool's 8 GPUs to "first"; "second" asks for 4 and waits."""
    await controller.on_workload(signed(workload("first", gpus=6)))
    await controller.place_round()
    await controller.on_workload(signed(workload("second", gpus=4)))
    await controller.place_round()


def test_no_capacity_waits_with_the_explanation(world: Any) -> None:
    controller, cluster, events, _ = world

    run(second_waits_behind_first(controller))
    patch = cluster.statuses["team-a/second"]
    assert patch["phase"] == "Waiting"
    assert conditions(patch)["Placed"] == ("False", "WaitingForCapacity")
    # What would make it fit now is worked out when the message is written anyway (core.counterfactual).
    expected = "0/1 targets fit: 1 lack free GPUs (need 4); would fit on GPUPool a100-euw1 if 2 more GPUs free there"
    assert patch["placement"]["message"] == expected
    placed = next(c for c in patch["conditions"] if c["type"] == "Placed")
    assert placed["message"] == expected
    assert events[-1][:2] == ("Normal", "WaitingForCapacity")


def test_what_would_fit_changing_alone_writes_nothing(world: Any) -> None:
    controller, cluster, _, _ = world

    run(second_waits_behind_first(controller))
    written = len(cluster.status_patches)
    record = controller.records["team-a/second"]
    # As if an earlier round had said another way to fit: the decision itself is the same.
    record.status = {
        **record.status,
        "placement": {
            **record.status["placement"],
            "message": "0/1 targets fit: 1 lack free GPUs (need 4); would fit x",
        },
    }
    record.queued.not_before = 0.0
    run(controller.place_round())
    assert len(cluster.status_patches) == written


def test_work_bigger_than_the_whole_pool_says_so_instead_of_waiting(world: Any) -> None:
    controller, cluster, events, _ = world

    async def scenario() -> None:
        await controller.on_workload(signed(workload(gpus=16)))
        await controller.place_round()

    run(scenario())
    assert cluster.children == {}
    ((_, patch),) = cluster.status_patches
    assert conditions(patch)["Placed"] == ("False", "NoFeasibleTarget")
    assert patch["placement"]["message"] == "0/1 targets fit: 1 have 8 GPUs in all (need 16)"
    assert events[-1][:2] == ("Warning", "NoFeasibleTarget")


def test_waiting_workload_is_placed_when_capacity_arrives(world: Any) -> None:
    controller, cluster, _, cache = world

    async def scenario() -> None:
        await controller.on_workload(signed(workload(gpus=16)))
        await controller.place_round()
        cache.on_node(gpu_node("n2", "a100-euw1", gpus=16), deleted=False)  # a node that can hold its pod
        controller.fleet_changed()
        await controller.place_round()

    run(scenario())
    assert [k[0] for k in cluster.children] == ["Job"]
    assert cluster.status_patches[-1][1]["phase"] == "Placed"


def test_batch_never_gives_two_workloads_the_same_last_gpus(world: Any) -> None:
    controller, cluster, _, _ = world

    async def scenario() -> None:
        for name, priority in (("low", 1), ("high", 9)):
            await controller.on_workload(signed(workload(name, gpus=6, intent={"priority": priority})))
        await controller.place_round()

    run(scenario())
    assert [key[2] for key in cluster.children] == ["mlw-high"]
    phases = {key: patch["phase"] for key, patch in cluster.status_patches}
    assert phases == {"team-a/high": "Placed", "team-a/low": "Waiting"}


def test_dependencies_hold_a_workload_back(world: Any) -> None:
    controller, cluster, _, cache = world
    run(controller.on_workload(signed(workload("eval", dependsOn=["trainer"]))))
    ((_, patch),) = cluster.status_patches
    assert patch["phase"] == "Waiting"
    assert conditions(patch)["Placed"] == ("False", "WaitingForDependencies")
    cache.set_phase("team-a", "trainer", "Succeeded")
    run(controller.on_workload({**signed(workload("eval", dependsOn=["trainer"])), "status": patch}))
    assert "team-a/eval" in controller.records.queued()


def test_spec_update_updates_the_same_child(world: Any) -> None:
    controller, cluster, _, _ = world
    first = signed(workload())

    async def scenario() -> None:
        await controller.on_workload(first)
        await controller.place_round()
        placed_status = controller.records.statuses()["team-a/trainer"]
        second = workload(args=["--epochs", "9"])
        second["metadata"]["generation"] = 2
        await controller.on_workload({**signed(second), "status": placed_status})
        await controller.place_round()

    run(scenario())
    assert list(cluster.children) == [("Job", "team-a", "mlw-trainer")]
    job = cluster.children[("Job", "team-a", "mlw-trainer")]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["--epochs", "9"]
    assert job["metadata"]["annotations"]["mlplacement.io/workload-generation"] == "2"
    assert cluster.status_patches[-1][1]["observedGeneration"] == 2


def test_job_completion_flows_back_as_finished(world: Any) -> None:
    controller, cluster, _, _ = world

    async def scenario() -> None:
        await controller.on_workload(signed(workload()))
        await controller.place_round()
        job = cluster.children[("Job", "team-a", "mlw-trainer")]
        await controller.on_child({**job, "status": {"active": 1, "ready": 1}})
        await controller.on_child({**job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}})

    run(scenario())
    phases = [patch.get("phase") for _, patch in cluster.status_patches]
    assert phases == ["Placed", "Running", "Succeeded"]
    last = controller.records.statuses()["team-a/trainer"]
    assert {c["type"]: c["status"] for c in last["conditions"]}["Finished"] == "True"


def test_a_finished_run_teaches_the_workload_its_length_and_the_next_decision_uses_it(world: Any) -> None:
    """#32: no expectedGPUHours stated; the Job ran 3 h on 2 A100s, so the work of a run is 6 A100 GPU-hours,
    kept in status.learned (never in the signed spec), and the next generation is priced per job with it."""
    controller, cluster, _, _ = world
    first = signed(workload(gpus=2, type="Training"))

    async def scenario() -> None:
        await controller.on_workload(first)
        await controller.place_round()
        job = cluster.children[("Job", "team-a", "mlw-trainer")]
        times = {"startTime": "2026-11-22T09:00:00Z", "completionTime": "2026-11-22T12:00:00Z"}
        done = {"conditions": [{"type": "Complete", "status": "True"}], **times}
        await controller.on_child({**job, "status": done})
        again = workload(gpus=2, type="Training", args=["--epochs", "9"])
        again["metadata"]["generation"] = 2
        await controller.on_workload(signed(again))
        await controller.place_round()

    run(scenario())
    statuses = [patch for _, patch in cluster.status_patches]
    succeeded = next(p for p in statuses if p.get("phase") == "Succeeded")
    assert succeeded["learned"] == {"referenceGPUHours": [6.0]}
    assert "(3.0h a run, learned from 1 earlier run)" in statuses[-1]["placement"]["message"]
    assert all("expectedGPUHours" not in json.dumps(p) for p in statuses)  # learned, not written as intent


def test_operator_never_writes_spec_labels_or_annotations(world: Any) -> None:
    controller, cluster, _, _ = world
    run(controller.on_workload(signed(workload())))
    run(controller.place_round())
    for _, patch in cluster.status_patches:
        assert not {"spec", "metadata", "labels", "annotations"} & set(patch)


def test_child_creation_failure_keeps_the_workload_pending_and_says_why(world: Any) -> None:
    controller, cluster, events, _ = world

    def refuse(obj: Mapping[str, Any]) -> str:
        raise ApplyError("Invalid", "422 Job.batch is invalid: spec.template.spec.containers[0].image: Required value")

    cluster.apply_child = refuse

    async def scenario() -> None:
        await controller.on_workload(signed(workload()))
        await controller.place_round()

    run(scenario())
    assert "team-a/trainer" in controller.records.queued()
    ((_, patch),) = cluster.status_patches
    assert patch["phase"] == "Waiting"
    assert conditions(patch)["Placed"] == ("False", "ApplyFailed")
    placed = next(c for c in patch["conditions"] if c["type"] == "Placed")
    assert "spec.template.spec.containers[0].image: Required value" in placed["message"]
    assert events[-1][:2] == ("Warning", "ApplyFailed")


def test_new_trusted_key_readmits_refused_workloads(world: Any) -> None:
    controller, cluster, _, cache = world
    run(controller.on_workload(signed(workload(), OTHER, "rotated")))
    assert cluster.status_patches[-1][1]["phase"] == "Refused"
    cache.keyring = keyring_core.parse_keyring(
        {"platform.pem": keyring_core.public_pem(KEY), "rotated.pem": keyring_core.public_pem(OTHER)}
    )
    run(controller.readmit_all())
    assert "team-a/trainer" in controller.records.queued()


def not_ready(node: dict[str, Any]) -> dict[str, Any]:
    return {**node, "status": {**node["status"], "conditions": [{"type": "Ready", "status": "False"}]}}


def test_pool_without_ready_nodes_fails_over_after_the_grace_period_and_keeps_one_child(world: Any) -> None:
    controller, cluster, events, cache = world
    clock = Clock()
    controller.monotonic = clock
    first = gpu_node("n1", "a100-euw1")
    cache.on_node(gpu_node("n2", "a100-euw1-b"), deleted=False)
    obj = signed(workload())

    async def scenario() -> None:
        await controller.on_workload(obj)
        await controller.place_round()
        (job,) = cluster.children.values()
        on = job["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"]
        node = first if on == "a100-euw1" else gpu_node("n2", "a100-euw1-b")
        cache.on_node(not_ready(node), deleted=False)
        controller.fleet_changed()
        await controller.place_round()
        assert [e for e in events if e[1] == "FailingOver"] == []  # inside the grace period: stay
        clock.now += controller.config.pool_grace_seconds + 1
        await controller.place_round()
        (moved,) = cluster.children.values()  # same name: the child is replaced, never duplicated
        assert moved["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"] != on
        assert (
            moved["metadata"]["annotations"]["mlplacement.io/target"]
            != job["metadata"]["annotations"]["mlplacement.io/target"]
        )

    run(scenario())
    (failing,) = [e for e in events if e[1] == "FailingOver"]
    assert failing[0] == "Warning"
    assert "no ready node" in failing[2]
    _, last = cluster.status_patches[-1]
    assert conditions(last)["Degraded"] == ("True", "TargetUnhealthy")
    degraded = next(c for c in last["conditions"] if c["type"] == "Degraded")
    assert "moved to GPUPool" in degraded["message"]


def test_failover_with_nowhere_to_go_waits_and_says_so(world: Any) -> None:
    controller, cluster, _, cache = world
    clock = Clock()
    controller.monotonic = clock
    obj = signed(workload())

    async def scenario() -> None:
        await controller.on_workload(obj)
        await controller.place_round()
        cache.on_node(not_ready(gpu_node("n1", "a100-euw1")), deleted=False)
        await controller.place_round()
        clock.now += controller.config.pool_grace_seconds + 1
        await controller.place_round()

    run(scenario())
    _, last = cluster.status_patches[-1]
    assert last["phase"] == "Waiting"
    degraded = next(c for c in last["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "TargetUnhealthy"
    assert "no other target fits yet" in degraded["message"]


def test_a_pool_that_recovers_within_the_grace_period_keeps_its_workloads(world: Any) -> None:
    controller, cluster, events, cache = world
    clock = Clock()
    controller.monotonic = clock
    node = gpu_node("n1", "a100-euw1")

    async def scenario() -> None:
        await controller.on_workload(signed(workload()))
        await controller.place_round()
        cache.on_node(not_ready(node), deleted=False)
        await controller.place_round()
        clock.now += controller.config.pool_grace_seconds / 2
        cache.on_node(node, deleted=False)
        await controller.place_round()
        clock.now += controller.config.pool_grace_seconds
        await controller.place_round()

    run(scenario())
    assert [e for e in events if e[1] == "FailingOver"] == []
    assert cluster.applies == 1


def test_policy_status_says_verified_and_counts_its_workloads(world: Any) -> None:
    controller, cluster, _, _ = world

    async def scenario() -> None:
        await controller.on_workload(signed(workload("a")))
        await controller.on_workload(signed(workload("b")))
        await controller.on_workload(workload("unsigned"))
        await controller.place_round()
        await controller.place_round()  # nothing changed: nothing written

    run(scenario())
    ((name, patch),) = cluster.policy_patches
    assert name == "default"
    assert patch["workloads"] == 2
    assert conditions(patch) == {"Verified": ("True", "Verified")}


def test_unsigned_policy_gets_verified_false_and_one_warning(world: Any) -> None:
    controller, cluster, events, cache = world
    cache.on_policy(make_policy("strict"), deleted=False)

    async def scenario() -> None:
        await controller.sync_policies()
        await controller.sync_policies()

    run(scenario())
    strict = [patch for name, patch in cluster.policy_patches if name == "strict"]
    assert len(strict) == 1
    assert conditions(strict[0]) == {"Verified": ("False", "SignatureMissing")}
    assert strict[0]["workloads"] == 0
    assert [e[:2] for e in events] == [("Warning", "SignatureMissing")]


def test_watch_events_admit_only_when_generation_or_signature_changed(world: Any) -> None:
    controller, cluster, _, _ = world
    obj = signed(workload())
    admitted: list[str] = []
    real_admit = controller.on_workload

    async def counting(body: Any) -> Any:
        admitted.append(body["metadata"].get("generation"))
        return await real_admit(body)

    controller.on_workload = counting

    async def scenario() -> None:
        await controller.on_workload_event(None, obj)  # the initial listing
        await controller.place_round()
        written = cluster.statuses["team-a/trainer"]
        await controller.on_workload_event("MODIFIED", {**obj, "status": written})  # our own status write
        relabelled = {**obj, "metadata": {**obj["metadata"], "labels": {"team": "b"}}, "status": written}
        await controller.on_workload_event("MODIFIED", relabelled)  # a label edit: nothing admission reads
        second = workload(args=["--epochs", "9"])
        second["metadata"]["generation"] = 2
        await controller.on_workload_event("MODIFIED", {**signed(second), "status": written})

    run(scenario())
    assert admitted == [1, 2]


def test_a_deleted_pool_workload_sheds_the_finalizer_an_older_release_left(world: Any) -> None:
    controller, cluster, _, _ = world
    obj = signed(workload())
    gone = {**obj, "metadata": {**obj["metadata"], "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"]}}
    gone["metadata"]["deletionTimestamp"] = "2026-11-22T12:05:00Z"

    async def scenario() -> None:
        await controller.on_workload_event(None, obj)
        await controller.place_round()
        await controller.on_workload_event("MODIFIED", gone)
        await controller.cleanups["team-a/trainer"]

    run(scenario())
    assert cluster.finalizer_calls == [("remove kopf.zalando.org/KopfFinalizerMarker", "team-a/trainer")]


def _policy_appears(controller: WorkloadController, cache: FleetCache, cluster: FakeCluster) -> Any:
    async def appear() -> None:
        if cache.on_policy(signed(make_policy("default")), deleted=False):  # what the policy handler does
            await controller.readmit_all()

    return appear()


def _named_policy_appears(controller: WorkloadController, cache: FleetCache, cluster: FakeCluster) -> Any:
    async def appear() -> None:
        team = make_policy("team-policy")
        team["metadata"]["labels"] = {}
        if cache.on_policy(signed(team), deleted=False):
            await controller.readmit_all()

    return appear()


def _key_appears(controller: WorkloadController, cache: FleetCache, cluster: FakeCluster) -> Any:
    from mlplacement.controller.keys import KeyReloader

    cluster.put_secret(
        "mlplacement-system",
        "mlplacement-trusted-keys",
        {"platform.pem": keyring_core.public_pem(KEY).decode(), "team.pem": keyring_core.public_pem(OTHER).decode()},
    )
    return KeyReloader(controller.config, cache, cluster, controller.readmit_all).reload()


@pytest.mark.parametrize(
    ("setup", "reason", "appears"),
    [
        pytest.param("no default policy", Reason.POLICY_NOT_FOUND, _policy_appears, id="default policy created later"),
        pytest.param(
            "policyRef names a policy", Reason.POLICY_NOT_FOUND, _named_policy_appears, id="named policy later"
        ),
        pytest.param(
            "signed by an unknown key", Reason.UNKNOWN_KEY, _key_appears, id="its key added to the Secret later"
        ),
    ],
)
def test_a_refusal_for_something_that_can_appear_later_is_admitted_when_it_appears(
    world: Any, setup: str, reason: Reason, appears: Any
) -> None:
    controller, cluster, _, cache = world
    spec: dict[str, Any] = {}
    key, key_id = KEY, "platform"
    if setup == "no default policy":
        cache.on_policy(signed(make_policy("default")), deleted=True)
    elif setup == "policyRef names a policy":
        spec["policyRef"] = {"name": "team-policy"}
    else:
        key, key_id = OTHER, "team"
    obj = signed(workload("late", **spec), key, key_id)

    async def scenario() -> None:
        refusal = await controller.on_workload(obj)
        assert refusal is not None
        assert refusal.reason is reason
        assert cluster.statuses["team-a/late"]["phase"] == "Refused"
        await appears(controller, cache, cluster)
        await controller.place_round()

    run(scenario())
    assert cluster.statuses["team-a/late"]["phase"] == "Placed"
    assert ("Job", "team-a", "mlw-late") in cluster.children
