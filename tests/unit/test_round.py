"""core.round.plan_round: one placement round as data, asserted without a cluster, a clock or an event loop."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from mlplacement.api.errors import ApplyError
from mlplacement.api.workload import TargetKind
from mlplacement.core import keyring as keyring_core
from mlplacement.core.reconcile import Admitted, PolicyCheck, Refusal, admission_view, admit
from mlplacement.core.records import Eviction, Queued, Records, WorkloadRecord
from mlplacement.core.round import (
    MoveCause,
    RoundInputs,
    RoundMemory,
    RoundPlan,
    Route,
    plan_round,
)
from mlplacement.core.scarcity import Running
from mlplacement.core.signing import sign
from mlplacement.core.snapshot import Snapshot
from tests.builders import keyring_of, make_fleet, make_policy, make_workload, pool, with_annotations, workspace

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = keyring_core.generate_key("ed25519")
KEYRING = keyring_of(("platform", KEY))
GRACE = 30.0


def signed(obj: dict[str, Any]) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, KEY, "platform"))


@dataclass(frozen=True)
class Rules:
    """A target kind's failover rules, as the Runtimes give them."""

    kind: TargetKind
    grace: float = GRACE

    def failover_grace(self, name: str) -> float:
        return self.grace

    def unhealthy(self, name: str, seconds: float) -> str:
        return f"{self.kind.value} {name} down for {seconds:.0f}s"


RULES = {kind: Rules(kind) for kind in TargetKind}


class World:
    """Records, policies and a fleet; plan() runs one round over them."""

    def __init__(self, *targets: Any, **policy: Any) -> None:
        self.policies = {"default": signed(make_policy("default", **policy))}
        self.snapshot: Snapshot = make_fleet(*targets)
        self.records = Records()
        self.memory = RoundMemory()
        self.check = PolicyCheck()
        self.running: list[Running] = []
        self.admissions = 0

    def workload(
        self, name: str, on: tuple[str, str] | None = None, phase: str = "Placed", **spec: Any
    ) -> WorkloadRecord:
        obj = signed(make_workload(name, **spec))
        obj["metadata"].update(uid=f"uid-{name}", generation=1)
        record = self.records.add(f"team-a/{name}")
        record.obj = admission_view(obj)
        if on is not None:
            record.status = {
                "observedGeneration": 1,
                "phase": phase,
                "placement": {"target": {"kind": on[0], "name": on[1]}},
            }
        return record

    def queue(self, record: WorkloadRecord, **fields: Any) -> Queued:
        outcome = self.admit(record)
        assert isinstance(outcome, Admitted)
        record.queued = Queued(record.obj or {}, outcome, **fields)
        return record.queued

    def admit(self, record: WorkloadRecord) -> Admitted | Refusal | None:
        self.admissions += 1
        return admit(record.obj or {}, policies=self.policies, keyring=KEYRING, now=NOW, policy_check=self.check)

    def rules_of(self, record: WorkloadRecord) -> Any:
        outcome = self.admit(record)
        return (outcome.request, outcome.policy) if isinstance(outcome, Admitted) else None

    def plan(self, at: float = 0.0, fleet_version: int = 0, **inputs: Any) -> RoundPlan:
        plan = plan_round(
            self.records,
            self.snapshot,
            RoundInputs(monotonic=at, fleet_version=fleet_version, unschedulable_grace=GRACE, **inputs),
            self.memory,
            RULES,
            admit=self.admit,
            running=lambda: self.running,
            workload_uids={r.uid: key for key, r in self.records.items()},
            rules_of=self.rules_of,
        )
        self.memory = plan.memory
        return plan


def decided(plan: RoundPlan) -> dict[str, str | None]:
    """Workload key -> the target name chosen (None: it waits)."""
    return {q.admitted.request.key: (d.chosen.target.name if d.chosen else None) for q, d in plan.decisions}


def moves(plan: RoundPlan) -> list[tuple[str, MoveCause]]:
    return [(m.key, m.cause) for m in plan.moves]


# --- placement: due entries, routes, decisions ---


def test_new_workloads_are_decided_together_on_the_snapshot() -> None:
    world = World(pool("a100", free=2))
    for name in ("one", "two", "three"):
        world.queue(world.workload(name))
    plan = world.plan()
    assert sorted(map(str, decided(plan).values())) == ["None", "a100", "a100"]  # two fit, one waits
    assert plan.moves == []
    assert plan.blocked == []


def test_a_backlog_larger_than_a_batch_is_decided_highest_priority_first_and_the_rest_next_round() -> None:
    world = World(pool("a100", free=8))
    for name, priority in (("low", 1), ("high", 900), ("mid", 50), ("lowest", 0)):
        world.queue(world.workload(name, intent={"priority": priority, "dataRegion": "eu-west-1"}))
    plan = world.plan(max_batch=2)
    assert sorted(decided(plan)) == ["team-a/high", "team-a/mid"]
    assert plan.more  # the executor runs the next round at once
    for queued, _ in plan.decisions:
        world.records[queued.admitted.request.key].queued = None  # what the executor does once placed
    rest = world.plan(max_batch=2)
    assert sorted(decided(rest)) == ["team-a/low", "team-a/lowest"]
    assert not rest.more


@pytest.mark.parametrize(
    ("attempts", "not_before", "seen_version", "failure", "due"),
    [
        pytest.param(0, 0.0, -1, "", True, id="a new entry is due at once"),
        pytest.param(2, 50.0, 3, "", False, id="a backoff that has not run out waits"),
        pytest.param(2, 5.0, 3, "", True, id="a backoff that ran out is due"),
        pytest.param(2, 50.0, 1, "", True, id="capacity moved since it waited: due before its backoff ends"),
        pytest.param(2, 50.0, 1, "Forbidden: quota", False, id="a refused apply waits its backoff out anyway"),
    ],
)
def test_which_queued_workloads_are_due(
    attempts: int, not_before: float, seen_version: int, failure: str, due: bool
) -> None:
    world = World(pool("a100"))
    world.queue(
        world.workload("job"), attempts=attempts, not_before=not_before, fleet_version=seen_version, failure=failure
    )
    plan = world.plan(at=10.0, fleet_version=3)
    assert ("team-a/job" in decided(plan)) is due


def test_a_namespace_that_refuses_every_child_holds_its_workloads_back_untried() -> None:
    world = World(pool("a100"))
    world.queue(world.workload("job"))
    gone = ApplyError("NamespaceTerminating", "namespace team-a is being terminated")
    plan = world.plan(blocked={"team-a": gone})
    assert [(q.admitted.request.key, failure) for q, failure in plan.blocked] == [("team-a/job", gone)]
    assert plan.decisions == []


@pytest.mark.parametrize(
    ("enforcement", "route", "chosen"),
    [
        pytest.param("Move", Route.DECIDE, "a100-use1", id="Move places it where the rules allow"),
        pytest.param("Stop", Route.STOP, None, id="Stop stops it where it runs"),
        pytest.param("Warn", Route.STAY, None, id="Warn leaves it running, with the violation said"),
    ],
)
def test_a_placed_workload_the_rules_no_longer_allow_where_it_runs(
    enforcement: str, route: Route, chosen: str | None
) -> None:
    world = World(
        pool("a100-euw1"),
        pool("a100-use1", region="us-east-1"),
        enforcement=enforcement,
        residency={"allowedRegions": ["us-east-1"]},
    )
    world.queue(world.workload("job", on=("GPUPool", "a100-euw1"), intent={"priority": 10}))
    plan = world.plan()
    [routed] = plan.routed
    assert routed.route is route
    assert routed.violation.startswith("GPUPool a100-euw1: ")
    assert decided(plan) == ({"team-a/job": chosen} if chosen else {})


def test_a_placed_workload_the_rules_still_allow_stays_and_is_not_decided_again() -> None:
    world = World(pool("a100"), pool("cheaper", gpu_hour_usd=0.1))
    world.queue(world.workload("job", on=("GPUPool", "a100")))
    plan = world.plan()
    assert [(r.route, r.violation) for r in plan.routed] == [(Route.STAY, "")]
    assert plan.decisions == []


# --- moves: failover, unschedulable, interruption, changed targets ---


def test_a_dead_pool_is_waited_for_over_its_grace_then_its_workloads_move_in_the_same_round() -> None:
    world = World(pool("a100", healthy=False), pool("spare"))
    world.workload("job", on=("GPUPool", "a100"))
    assert world.plan(at=100.0).moves == []  # its clock starts
    assert world.plan(at=100.0 + GRACE - 1).moves == []
    plan = world.plan(at=100.0 + GRACE)
    assert moves(plan) == [("team-a/job", MoveCause.FAILOVER)]
    [move] = plan.moves
    assert isinstance(move.outcome, Queued)
    assert move.outcome.failover == "GPUPool a100 down for 30s"
    assert decided(plan) == {"team-a/job": "spare"}


def test_a_pool_that_recovers_within_its_grace_keeps_its_workloads_and_its_clock_restarts() -> None:
    world = World(pool("a100", healthy=False), pool("spare"))
    world.workload("job", on=("GPUPool", "a100"))
    world.plan(at=0.0)
    world.snapshot = make_fleet(pool("a100"), pool("spare"))
    assert world.plan(at=GRACE - 1).moves == []
    world.snapshot = make_fleet(pool("a100", healthy=False), pool("spare"))
    assert world.plan(at=GRACE + 1).moves == []  # down again: a new clock, not the old one


@pytest.mark.parametrize(
    ("phase", "stopping", "queued"),
    [
        pytest.param("Succeeded", False, False, id="a finished workload is left alone"),
        pytest.param("Placed", True, False, id="one being stopped is placed again by its eviction"),
        pytest.param("Placed", False, True, id="one queued already is not queued twice"),
    ],
)
def test_failover_leaves_alone_what_is_not_running_free(phase: str, stopping: bool, queued: bool) -> None:
    world = World(pool("a100", healthy=False), pool("spare"))
    record = world.workload("job", on=("GPUPool", "a100"), phase=phase)
    if stopping:
        record.eviction = Eviction(due=1e9, uid=record.uid, status=record.status)
    if queued:
        world.queue(record, attempts=1, not_before=1e9, fleet_version=0)
    world.plan(at=0.0)
    assert world.plan(at=GRACE * 10).moves == []


def test_a_databricks_run_is_never_moved_when_its_workspace_is_unreachable() -> None:
    world = World(workspace("dbx", healthy=False), pool("spare"))
    world.workload("job", on=("Databricks", "dbx"))
    world.plan(at=0.0)
    assert world.plan(at=GRACE * 100).moves == []


def test_pods_unschedulable_past_the_grace_period_give_their_claim_back_and_avoid_that_pool() -> None:
    world = World(pool("a100"), pool("spare"))
    world.workload("job", on=("GPUPool", "a100"))
    stuck = {"uid-job": ("a100", "0/3 nodes are available: 3 Insufficient nvidia.com/gpu")}
    first = world.plan(at=10.0, unschedulable=stuck)
    assert first.moves == []
    assert first.stuck_since == {"team-a/job": 10.0}
    world.records["team-a/job"].unschedulable_since = 10.0
    plan = world.plan(at=10.0 + GRACE, unschedulable=stuck)
    [move] = plan.moves
    assert move.cause is MoveCause.UNSCHEDULABLE
    assert move.releases_claim
    assert plan.fleet_moved
    assert isinstance(move.outcome, Queued)
    assert move.outcome.avoid == {("GPUPool", "a100")}
    assert decided(plan) == {"team-a/job": "spare"}
    assert plan.stuck_since == {"team-a/job": None}


def test_a_preemptors_unschedulable_clock_starts_when_its_victims_children_stop() -> None:
    world = World(pool("a100"), pool("spare"))
    record = world.workload("job", on=("GPUPool", "a100"))
    record.unschedulable_since, record.room_at = 0.0, 100.0
    stuck = {"uid-job": ("a100", "waiting for the victims' pods to go")}
    assert world.plan(at=100.0 + GRACE - 1, unschedulable=stuck).moves == []
    assert moves(world.plan(at=100.0 + GRACE, unschedulable=stuck)) == [("team-a/job", MoveCause.UNSCHEDULABLE)]


def test_a_stuck_pod_of_a_pool_the_workload_has_left_says_nothing_of_where_it_is() -> None:
    world = World(pool("a100"), pool("spare"))
    record = world.workload("job", on=("GPUPool", "spare"))
    record.unschedulable_since = 0.0
    plan = world.plan(at=GRACE * 10, unschedulable={"uid-job": ("a100", "old pod")})
    assert plan.moves == []
    assert plan.stuck_since == {"team-a/job": None}


def test_a_reclaimed_node_is_told_once_and_its_workload_placed_again() -> None:
    world = World(pool("spot", spot=True), pool("a100"))
    record = world.workload("job", on=("GPUPool", "spot"))
    reclaim = {"uid-job": ("team-a/job-abc", "spot-0", "EC2 spot interruption notice")}
    plan = world.plan(interrupted=reclaim)
    [move] = plan.moves
    assert (move.cause, move.pod, move.node, move.notice) == (
        MoveCause.INTERRUPTED,
        "team-a/job-abc",
        "spot-0",
        "EC2 spot interruption notice",
    )
    assert move.why == "node spot-0 of GPUPool spot is being reclaimed: EC2 spot interruption notice"
    assert plan.told == {"team-a/job": "spot-0"}
    assert plan.fleet_moved
    record.interrupted_node = "spot-0"
    record.queued = None
    assert world.plan(interrupted=reclaim).moves == []  # told already
    assert world.plan().told == {"team-a/job": None}  # the node is gone: a next one is told again


def test_a_relabelled_pool_routes_its_workloads_again_and_the_rules_decide() -> None:
    world = World(pool("a100"), pool("other"), residency={"allowedRegions": ["eu-west-1"]})
    world.workload("job", on=("GPUPool", "a100"))
    world.workload("elsewhere", on=("GPUPool", "other"), phase="Running")
    assert world.plan().moves == []  # the first round learns the shapes
    world.snapshot = make_fleet(pool("a100", region="us-east-1"), pool("other"))
    plan = world.plan()
    assert moves(plan) == [("team-a/job", MoveCause.TARGET_CHANGED)]
    [routed] = plan.routed
    assert routed.route is Route.DECIDE
    assert "a100" in routed.violation


def test_new_signals_recheck_running_workloads_in_memory_and_move_only_those_the_rules_now_refuse() -> None:
    world = World(pool("spot", spot=True), pool("a100"))
    for index in range(5):
        world.workload(f"job-{index}", on=("GPUPool", "spot"))
    world.plan()
    assert world.snapshot.signals is not None
    world.snapshot = replace(world.snapshot, signals=world.snapshot.signals.model_copy(update={"updated_at": NOW}))
    plan = world.plan()
    assert plan.moves == []  # the rules still allow spot: nothing queued, nothing written
    assert world.memory.signals_seen == NOW


def test_a_move_whose_admission_no_longer_holds_is_a_refusal_never_a_queue_entry() -> None:
    world = World(pool("a100", healthy=False), pool("spare"))
    world.workload("job", on=("GPUPool", "a100"))
    world.plan(at=0.0)
    world.policies = {}  # the policy is gone
    plan = world.plan(at=GRACE)
    [move] = plan.moves
    assert isinstance(move.outcome, Refusal)
    assert move.outcome.reason.value == "PolicyNotFound"
    assert plan.decisions == []


def test_an_idle_round_admits_nothing_and_decides_nothing() -> None:
    world = World(pool("a100"))
    for index in range(20):
        world.workload(f"job-{index}", on=("GPUPool", "a100"), phase="Running")
    world.plan()
    world.admissions = 0
    plan = world.plan(at=1000.0)
    assert (plan.moves, plan.routed, plan.decisions, world.admissions) == ([], [], [], 0)


# --- overlapping plans: what may still be written while the next round is planned ---


def _new_work_on_a_pool(world: World) -> None:
    world.queue(world.workload("one"))
    world.queue(world.workload("two"))


def _a_run_on_a_workspace(world: World) -> None:
    task = {"notebook_task": {"notebook_path": "/Repos/x/train"}}
    world.queue(world.workload("one", type="Training", targets={"allowed": ["Databricks"]}, databricks={"task": task}))


def _a_placed_workload_moved_by_its_rules(world: World) -> None:
    world.queue(world.workload("job", on=("GPUPool", "a100")))


def _a_failover(world: World) -> None:
    world.workload("job", on=("GPUPool", "dead"))


@pytest.mark.parametrize(
    ("setup", "policy", "overlaps"),
    [
        pytest.param(_new_work_on_a_pool, {}, True, id="new work on a pool, one of it waiting: overlaps"),
        pytest.param(
            _a_run_on_a_workspace, {}, False, id="a Databricks run lands first (its slot is not in the ledger)"
        ),
        pytest.param(
            _a_placed_workload_moved_by_its_rules,
            {"residency": {"allowedRegions": ["us-east-1"]}},
            False,
            id="a placed workload its rules move lands first",
        ),
        pytest.param(_a_failover, {}, False, id="a failover lands first"),
    ],
)
def test_which_plans_may_still_be_written_while_the_next_round_is_planned(
    setup: Any, policy: dict[str, Any], overlaps: bool
) -> None:
    world = World(
        pool("a100", free=1),
        pool("dead", healthy=False),
        pool("use1", region="us-east-1"),
        workspace("dbx"),
        **policy,
    )
    setup(world)
    world.plan(at=0.0)  # a failover's grace runs from the round that first saw its target dead
    plan = world.plan(at=GRACE)
    assert plan.decisions
    assert plan.overlaps(world.records) is overlaps


def test_workloads_whose_decision_is_being_written_are_left_alone() -> None:
    world = World(pool("a100"), pool("spare"))
    world.queue(world.workload("new"))
    stuck = world.workload("stuck", on=("GPUPool", "a100"))
    stuck.unschedulable_since = 0.0
    world.queue(stuck)
    flying = frozenset({"team-a/new", "team-a/stuck"})
    unschedulable = {"uid-stuck": ("a100", "0/3 nodes are available")}
    plan = world.plan(at=GRACE, in_flight=flying, unschedulable=unschedulable)
    assert (plan.decisions, plan.routed, plan.moves) == ([], [], [])
    assert plan.stuck_since == {}  # its clock is neither started again nor stopped
    assert decided(world.plan(at=GRACE)) == {"team-a/new": "a100"}  # landed: decided like any other
