"""Continuous compliance: a policy, key or target change that forbids where a workload runs is enforced on
what runs (Move, Stop, Warn), not only on the next placement; lost authorization stops the children."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign
from tests.builders import make_policy, with_annotations
from tests.component.fakes import Clock, Events, FakeCluster
from tests.component.test_capacity_and_failures import NOW
from tests.component.test_workload_controller import KEY, gpu_node, signed, workload

OTHER = keyring_core.generate_key()


def node_in(name: str, pool: str, region: str) -> dict[str, Any]:
    node = gpu_node(name, pool)
    node["metadata"]["labels"]["topology.kubernetes.io/region"] = region
    return node


class World:
    """Pools in us-east-1 and eu-west-1; a trainer with its data in us-east-1 runs on the US pool."""

    def __init__(self) -> None:
        config = OperatorConfig()
        self.cache = FleetCache(config=config)
        self.cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
        self.cache.on_policy(signed(make_policy("default")), deleted=False)
        self.cache.on_node(node_in("n-us", "us-pool", "us-east-1"), deleted=False)
        self.cache.on_node(node_in("n-eu", "eu-pool", "eu-west-1"), deleted=False)
        self.cluster, self.events = FakeCluster(), Events()
        self.violations: list[str] = []
        self.now = NOW
        self.controller = WorkloadController(
            config, self.cache, self.cluster, self.events, clock=lambda: self.now, monotonic=Clock()
        )
        self.controller.metrics.compliance = self.violations.append  # type: ignore[method-assign]
        self.obj = signed(workload("trainer", gpus=2, intent={"dataRegion": "us-east-1"}))

    def run(self, *steps: Any) -> None:
        async def scenario() -> None:
            await self.controller.on_workload(self.obj)
            await self.controller.place_round()
            assert self.pool() == "us-pool"
            for child in list(self.cluster.children.values()):  # what the child watch would list
                self.controller.on_home_child(child, deleted=False)
            for step in steps:
                await step()

        asyncio.run(scenario())

    def repolicy(self, **spec: Any) -> Any:
        async def step() -> None:
            self.cache.on_policy(signed(make_policy("default", **spec)), deleted=False)
            await self.controller.readmit_all()
            await self.controller.place_round()

        return step

    async def round(self) -> None:
        await self.controller.place_round()

    def pool(self) -> str | None:
        job = self.cluster.children.get(("Job", "team-a", "mlw-trainer"))
        return None if job is None else str(job["spec"]["template"]["spec"]["nodeSelector"]["mlplacement.io/pool"])

    def compliant(self) -> tuple[str, str, str] | None:
        status = self.controller.records.statuses()["team-a/trainer"]
        found = next((c for c in status.get("conditions") or [] if c["type"] == "Compliant"), None)
        return None if found is None else (found["status"], found["reason"], found["message"])

    def warnings(self, reason: str) -> list[str]:
        return [message for kind, why, message in self.events if kind == "Warning" and why == reason]


EU_ONLY = {"residency": {"allowedRegions": ["eu-west-1"]}}


def test_residency_tightened_moves_the_running_workload_to_an_allowed_region() -> None:
    world = World()
    world.run(world.repolicy(**EU_ONLY))
    assert world.pool() == "eu-pool"
    assert world.violations == ["Move"]
    (warning,) = world.warnings("PolicyViolation")
    assert warning == "GPUPool us-pool: outside allowed regions [eu-west-1]; moving it (enforcement Move)"
    assert world.compliant() == (
        "True",
        "Compliant",
        "runs on GPUPool eu-pool, which the rules allow (moved from GPUPool us-pool: outside allowed regions "
        "[eu-west-1])",
    )


def test_with_nowhere_allowed_to_move_to_the_children_are_stopped() -> None:
    world = World()
    world.run(world.repolicy(allowedTargets=["Edge"]), world.round)
    assert world.pool() is None
    assert ("Job", "team-a", "mlw-trainer") in world.cluster.deletes
    status, reason, message = world.compliant() or ("", "", "")
    assert (status, reason) == ("False", "PolicyViolation")
    assert message.startswith("GPUPool us-pool: GPUPool not allowed by the policy; no target the rules allow fits")


def test_warn_leaves_it_running_and_says_so() -> None:
    world = World()
    world.run(world.repolicy(enforcement="Warn", **EU_ONLY), world.round)
    assert world.pool() == "us-pool"
    assert world.cluster.deletes == []
    assert world.compliant() == (
        "False",
        "PolicyViolation",
        "GPUPool us-pool: outside allowed regions [eu-west-1]; left running (enforcement Warn)",
    )
    assert len(world.warnings("PolicyViolation")) == 1
    assert world.violations == ["Warn"]


def test_stop_stops_first_then_places_it_where_allowed() -> None:
    world = World()
    seen: list[Any] = []

    async def after_stop() -> None:
        seen.append((world.pool(), world.controller.records.statuses()["team-a/trainer"]["phase"], world.compliant()))
        await world.round()  # its children stop, then it is placed again where the rules allow
        seen.append((world.pool(), world.controller.records.statuses()["team-a/trainer"]["phase"]))

    world.run(world.repolicy(enforcement="Stop", **EU_ONLY), after_stop)
    stopping = "GPUPool us-pool: outside allowed regions [eu-west-1] (enforcement Stop); its children are stopped"
    assert seen == [("us-pool", "Waiting", ("False", "PolicyViolation", stopping)), ("eu-pool", "Placed")]
    assert world.cluster.deletes[0] == ("Job", "team-a", "mlw-trainer")  # the old copy went before the new one
    assert world.violations == ["Stop"]
    assert world.compliant() is not None
    assert world.compliant()[:2] == ("True", "Compliant")  # type: ignore[index]


def test_a_revoked_signing_key_stops_the_children_whatever_the_policy_says() -> None:
    world = World()

    async def revoke() -> None:
        # The platform key leaves the trusted keys (the policy is re-signed by the new one).
        world.cache.keyring = keyring_core.parse_keyring({"rotated.pem": keyring_core.public_pem(OTHER)})
        world.cache.on_policy(signed(make_policy("default", enforcement="Warn"), OTHER, "rotated"), deleted=False)
        await world.controller.readmit_all()
        await world.round()

    world.run(revoke)
    status = world.controller.records.statuses()["team-a/trainer"]
    assert status["phase"] == "Refused"
    assert world.pool() is None
    assert ("Job", "team-a", "mlw-trainer") in world.cluster.deletes
    compliant = world.compliant()
    assert compliant is not None
    assert compliant[:2] == ("False", "AuthorizationLost")
    (warning,) = world.warnings("AuthorizationLost")
    assert warning.startswith("its authorization no longer holds (UnknownKey: ")
    assert warning.endswith("; stopping its children")


def expiring(obj: dict[str, Any], key: Any, key_id: str, hours: float) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, key, key_id, NOW + timedelta(hours=hours)))


def test_a_signature_that_expires_while_it_runs_stops_the_children_without_any_event() -> None:
    world = World()
    world.obj = expiring(workload("trainer", gpus=2, intent={"dataRegion": "us-east-1"}), KEY, "platform", 1)
    seen: list[Any] = []

    async def time_passes() -> None:
        world.now = NOW + timedelta(minutes=30)
        await world.round()
        seen.append(world.pool())  # still valid: left alone
        world.now = NOW + timedelta(hours=1, minutes=6)  # past the expiry and the clock skew allowed
        await world.round()

    world.run(time_passes)
    assert seen == ["us-pool"]
    status = world.controller.records.statuses()["team-a/trainer"]
    verified = next(c for c in status["conditions"] if c["type"] == "Verified")
    assert (status["phase"], verified["reason"]) == ("Refused", "SignatureExpired")
    assert ("Job", "team-a", "mlw-trainer") in world.cluster.deletes
    assert world.compliant()[:2] == ("False", "AuthorizationLost")  # type: ignore[index]


def test_a_policy_signature_that_expires_stops_what_runs_under_it() -> None:
    world = World()
    world.cache.on_policy(expiring(make_policy("default"), KEY, "platform", 2), deleted=False)

    async def time_passes() -> None:
        world.now = NOW + timedelta(hours=3)
        await world.round()

    world.run(time_passes)
    assert world.pool() is None
    assert world.compliant()[:2] == ("False", "AuthorizationLost")  # type: ignore[index]
    assert "PolicyUnsigned" in world.compliant()[2]  # type: ignore[index]


def test_a_pool_relabelled_into_a_forbidden_region_moves_its_workloads() -> None:
    world = World()

    async def relabel() -> None:
        world.cache.on_policy(
            signed(make_policy("default", residency={"allowedRegions": ["us-east-1", "eu-west-1"]})), deleted=False
        )
        await world.controller.readmit_all()
        await world.round()
        assert world.pool() == "us-pool"  # still allowed
        world.cache.on_node(node_in("n-us", "us-pool", "ap-south-1"), deleted=False)  # the pool moves region
        await world.round()

    world.run(relabel)
    assert world.pool() == "eu-pool"
    (warning,) = world.warnings("PolicyViolation")
    assert warning.startswith("GPUPool us-pool: outside allowed regions [us-east-1, eu-west-1]")


def test_an_idle_round_still_refreshes_signals_age_and_target_health() -> None:
    world = World()
    seen: list[tuple[str, Any]] = []
    world.controller.metrics.signals_age = lambda age: seen.append(("signals", age))  # type: ignore[method-assign]
    world.controller.metrics.target_health = lambda targets: seen.append(("health", dict(targets)))  # type: ignore[method-assign]

    async def idle() -> None:
        seen.clear()
        await world.round()  # nothing is due: the trainer is placed and stays

    world.run(idle)
    assert ("signals", None) in seen
    assert ("health", {("GPUPool", "eu-pool"): True, ("GPUPool", "us-pool"): True}) in seen


def test_a_price_rise_in_the_signals_moves_what_now_breaks_its_budget() -> None:
    world = World()
    world.obj = signed(workload("trainer", gpus=2, intent={"dataRegion": "us-east-1", "maxHourlyCostUSD": 10}))

    def signals(us_price: float, minute: int) -> dict[str, Any]:
        text = (
            f"updatedAt: '2026-11-22T11:{minute:02d}:00Z'\nttlSeconds: 3600\n"
            f"pools: {{us-pool: {{gpuHourUSD: {us_price}}}, eu-pool: {{gpuHourUSD: 4.5}}}}\n"
        )
        return {"data": {"signals.yaml": text}}

    world.cache.signals_configmap = signals(3.0, 50)  # $6/h for 2 GPUs in the US, $9/h in the EU: both within $10

    async def price_rise() -> None:
        await world.round()
        assert world.pool() == "us-pool"
        world.cache.signals_configmap = signals(6.0, 55)  # the US pool now costs $12/h for it: over its budget
        await world.round()

    world.run(price_rise)
    assert world.pool() == "eu-pool"
    (warning,) = world.warnings("PolicyViolation")
    assert warning.startswith("GPUPool us-pool: over budget $10/h")


def test_status_history_keeps_the_last_transitions_and_compliance_survives_a_restart() -> None:
    from mlplacement.core.status import HISTORY_LENGTH, owned_status, with_history

    world = World()
    world.run(world.repolicy(**EU_ONLY))
    status = world.controller.records.statuses()["team-a/trainer"]
    assert [(h["phase"], h.get("target")) for h in status["history"]] == [
        ("Placed", "GPUPool/us-pool"),
        ("Placed", "GPUPool/eu-pool"),
    ]
    assert status["history"][-1]["reason"] == "Dispatched"
    # What a restarted operator seeds from the cluster keeps Compliant and the history as its own.
    seeded = owned_status(status)
    assert [c["type"] for c in seeded["conditions"] if c["type"] == "Compliant"] == ["Compliant"]
    assert seeded["history"] == status["history"]
    # Bounded: the oldest entries go.
    current: dict[str, Any] = {}
    for index in range(HISTORY_LENGTH + 3):
        current = with_history(
            current, {"phase": "Placed", "placement": {"target": {"kind": "GPUPool", "name": f"p{index}"}}}, NOW
        )
    assert len(current["history"]) == HISTORY_LENGTH
    assert current["history"][-1]["target"] == f"GPUPool/p{HISTORY_LENGTH + 2}"
