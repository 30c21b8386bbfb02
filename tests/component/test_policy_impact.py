"""The what-if of a PlacementPolicy change as admission warnings: `kubectl apply` of a tightened policy is told
what it would move, over the webhook's real TLS, computed from the cluster as listed (read-only)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from mlplacement.adapters.live import LiveState
from mlplacement.controller.policy_impact import PolicyImpact
from mlplacement.controller.webhook_tls import ServingCertificate, WebhookCertificates
from mlplacement.core.signing import sign
from mlplacement.handlers.webhook import WebhookServer
from tests.builders import make_policy, make_workload, with_annotations
from tests.component.test_compliance import node_in
from tests.component.test_webhook import KEY, KEYRING, Store, client_context, config, free_port, in_loop, post

EU_ONLY = {"residency": {"allowedRegions": ["eu-west-1"]}}


def running_on(pool: str, name: str, **spec: Any) -> dict[str, Any]:
    obj = make_workload(name=name, namespace="team-a", resources={"gpus": 2}, **spec)
    obj["status"] = {
        "phase": "Running",
        "placement": {"target": {"kind": "GPUPool", "name": pool, "region": "us-east-1"}},
    }
    return obj


def cluster() -> LiveState:
    """A US and an EU pool; a trainer on the US pool under the default policy, another under its own."""
    nodes = [node_in("n-us", "us-pool", "us-east-1"), node_in("n-eu", "eu-pool", "eu-west-1")]
    for node in nodes:
        node["status"]["capacity"] = node["status"]["allocatable"]
    return LiveState(
        nodes=nodes,
        policies=[make_policy("default"), make_policy("research") | {"metadata": {"name": "research"}}],
        workloads=[
            running_on("us-pool", "trainer", intent={"dataRegion": "us-east-1"}),
            running_on("us-pool", "other", intent={"dataRegion": "us-east-1"}, policyRef={"name": "research"}),
        ],
    )


def test_a_tightened_policy_warns_what_it_would_move_and_only_for_its_own_workloads() -> None:
    impact = PolicyImpact(cluster)
    warnings = asyncio.run(impact(make_policy("default", **EU_ONLY)))
    assert warnings[0].startswith("what-if for PlacementPolicy default: 1 move, 0 become infeasible")
    assert warnings[1].startswith("what-if: team-a/trainer moves: GPUPool/us-pool -> GPUPool/eu-pool")
    assert "outside allowed regions [eu-west-1]" in warnings[1]
    assert len(warnings) == 2  # team-a/other is under "research": not this change's business


def test_a_change_that_moves_nothing_says_so() -> None:
    warnings = asyncio.run(PolicyImpact(cluster)(make_policy("default")))
    assert warnings == ["what-if: no workload under PlacementPolicy default changes (1 checked)"]


def test_a_slow_cluster_read_admits_with_a_warning_instead_of_timing_out_the_api_server() -> None:
    release = threading.Event()

    def stuck() -> LiveState:
        release.wait(timeout=30)
        return cluster()

    async def apply() -> list[str]:
        try:
            return await PolicyImpact(stuck, timeout_seconds=0.05)(make_policy("default", **EU_ONLY))
        finally:
            release.set()  # before asyncio.run waits for its threads

    warnings = asyncio.run(apply())
    assert warnings == [
        "what-if skipped: the analysis took longer than 0.05s; run `mlplacement whatif --live --policy FILE` "
        "before signing"
    ]


def test_the_cluster_is_read_once_for_a_diff_then_an_apply() -> None:
    reads: list[int] = []

    def read() -> LiveState:
        reads.append(1)
        return cluster()

    impact = PolicyImpact(read)
    for _ in range(2):
        asyncio.run(impact(make_policy("default", **EU_ONLY)))
    assert reads == [1]


def policy_review(obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"uid": "p0", "operation": "UPDATE" if old else "CREATE", "object": obj}
    if old is not None:
        request["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def signed(obj: dict[str, Any]) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, KEY, "platform"))


@in_loop
async def test_kubectl_apply_of_a_policy_change_gets_the_what_if_as_warnings() -> None:
    store, serving, port = Store(), ServingCertificate(), free_port()
    certs = WebhookCertificates(config(port), store, serving)
    await certs.ensure()
    await certs.load()
    asked: list[str] = []

    async def impact(obj: Any) -> list[str]:
        asked.append(obj["metadata"]["name"])
        return await PolicyImpact(cluster)(obj)

    server = WebhookServer(port, serving, lambda: KEYRING, impact=impact)
    await server.start()
    try:
        context = client_context(store.ca_bundle or "")
        current, proposed = signed(make_policy("default")), signed(make_policy("default", **EU_ONLY))
        answer = await post(port, context, policy_review(proposed, current), path="/validate-placementpolicies")
        assert answer["response"]["allowed"] is True
        assert answer["response"]["warnings"][0].startswith("what-if for PlacementPolicy default: 1 move")
        relabelled = signed(make_policy("default", **EU_ONLY))
        relabelled["metadata"]["labels"]["argocd.argoproj.io/instance"] = "platform"
        answer = await post(port, context, policy_review(relabelled, proposed), path="/validate-placementpolicies")
        assert "warnings" not in answer["response"]  # nothing it says changed: no what-if
        unsigned = await post(
            port, context, policy_review(make_policy("default", **EU_ONLY)), "/validate-placementpolicies"
        )
        assert unsigned["response"]["allowed"] is False
        assert "warnings" not in unsigned["response"]  # refused on its signature; no analysis for it
        assert asked == ["default"]
    finally:
        await server.stop()
        serving.close()
