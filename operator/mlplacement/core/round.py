"""One placement round, planned: what moves, what is decided, where, and what stops; as data, with no I/O.

``plan_round`` reads the workload records, one fleet snapshot and the round's inputs (the clock, what the pod and
node caches say is stuck or reclaimed) and returns a ``RoundPlan``. The controller's executor applies it through
the Runtimes and writes status; it decides nothing. Like Kueue's scheduler, in numbered steps:

1. Moves: running workloads to place again because their target died past its grace period (failover), their
   pods stayed unschedulable past theirs, their node is being reclaimed (interruption), or what their target is,
   or the signals the rules read, changed. Requeueing is a field of the plan: each move's workload is admitted
   again here (the caller's pure ``admit``) and joins the queue of this round.
2. Due: new entries, backoffs run out, and waiting ones when capacity moved.
3. Route: a namespace that refuses every child holds its own back untried; a placed workload whose rules still
   allow its target stays (brought to its revision); one they no longer allow moves, stops or is warned about,
   as its policy's enforcement says.
4. Decide the rest together with decide_many on the snapshot alone; preemption victims come with the decisions.

A plan that only places new work on GPU pools (or says why it waits) may still be written when the next round
is planned (``overlaps``): its capacity is committed before the first write, and its workloads are in
``RoundInputs.in_flight``, which a round leaves alone. Anything that moves, stops or preempts lands first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol

from mlplacement.api.constants import ACTIVE_PHASES, Reason
from mlplacement.api.errors import ApplyError
from mlplacement.api.policy import Enforcement, PlacementPolicySpec
from mlplacement.api.workload import TargetKind
from mlplacement.core.kinds import KINDS
from mlplacement.core.learned import with_learned_runtime
from mlplacement.core.placement import Decision, PlacementRequest, decide_many
from mlplacement.core.placement.engine import recheck
from mlplacement.core.reconcile import Admitted, Refusal
from mlplacement.core.records import Move, Queued, Records, WorkloadRecord
from mlplacement.core.scarcity import Running
from mlplacement.core.snapshot import Snapshot

TargetKey = tuple[str, str]


class TargetRules(Protocol):
    """What a round needs to know of a target kind's runtime: how long a dead target is waited for, in words."""

    @property
    def kind(self) -> TargetKind: ...

    def failover_grace(self, name: str) -> float: ...

    def unhealthy(self, name: str, seconds: float) -> str: ...


class MoveCause(Enum):
    FAILOVER = Reason.FAILING_OVER.value
    UNSCHEDULABLE = Reason.UNSCHEDULABLE.value
    INTERRUPTED = Reason.INTERRUPTED.value
    TARGET_CHANGED = "TargetChanged"  # re-routed quietly: it stays unless the rules now say otherwise


class Route(Enum):
    STAY = "stay"  # keeps its target: brought to its revision
    DECIDE = "decide"  # placed (again) by decide_many
    STOP = "stop"  # breaks the rules where it runs, enforcement Stop


@dataclass(frozen=True)
class PlannedMove:
    """A running workload placed again, and why."""

    key: str
    cause: MoveCause
    why: str
    target: Mapping[str, object]  # where it runs now
    outcome: Queued | Refusal | None  # its queue entry, its refusal, or None (queued already: not requeued)
    node: str = ""  # INTERRUPTED: the node being reclaimed
    pod: str = ""  # INTERRUPTED: namespace/name of the pod told to checkpoint
    notice: str = ""  # INTERRUPTED: what the node's taint says of the reclaim

    @property
    def releases_claim(self) -> bool:
        """Its claim on the target its pods cannot run on goes back to the fleet now."""
        return self.cause is MoveCause.UNSCHEDULABLE


@dataclass(frozen=True)
class Routed:
    """A due workload and where step 3 sent it."""

    entry: Queued
    route: Route
    violation: str = ""  # the rule its target now breaks ("" when none)
    enforcement: Enforcement | None = None  # set with a violation


@dataclass
class RoundMemory:
    """What one round leaves for the next (all keyed by target)."""

    unhealthy_since: dict[TargetKey, float] = field(default_factory=dict)  # monotonic time it went bad
    target_shapes: dict[TargetKey, tuple[object, ...]] = field(default_factory=dict)  # what the rules read of it
    signals_seen: datetime | None = None  # the signals' updatedAt the last round saw


@dataclass(frozen=True)
class RoundInputs:
    """What a round reads besides the records and the snapshot."""

    monotonic: float
    fleet_version: int
    unschedulable_grace: float
    # Workload uid -> (pool, the scheduler's message): its pods the scheduler refuses.
    unschedulable: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Workload uid -> (pod key, node, why): its pods on a node about to be reclaimed.
    interrupted: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)
    # Namespace -> the failure it gives every child (being deleted), while that holds.
    blocked: Mapping[str, ApplyError] = field(default_factory=dict)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # At most this many workloads decided in one round (0: no limit); the rest wait for the next, due at once.
    max_batch: int = 0
    # Workloads whose last decision is still being written (an earlier plan that overlaps): left alone until
    # it lands, so nothing is decided twice.
    in_flight: frozenset[str] = frozenset()


@dataclass
class RoundPlan:
    memory: RoundMemory
    moves: list[PlannedMove] = field(default_factory=list)
    stuck_since: dict[str, float | None] = field(default_factory=dict)  # key -> its unschedulable clock (None: off)
    told: dict[str, str | None] = field(default_factory=dict)  # key -> the reclaimed node it is told about
    blocked: list[tuple[Queued, ApplyError]] = field(default_factory=list)
    routed: list[Routed] = field(default_factory=list)
    decisions: list[tuple[Queued, Decision]] = field(default_factory=list)
    policies: dict[str | None, PlacementPolicySpec] = field(default_factory=dict)
    scarce: bool = False  # preemption or quotas are in play: their metrics are due
    more: bool = False  # workloads were left for the next round by max_batch: it is due at once

    @property
    def fleet_moved(self) -> bool:
        """A move gave capacity back or took a node away: waiting workloads get another chance."""
        return any(m.releases_claim or m.cause is MoveCause.INTERRUPTED for m in self.moves)

    def route(self, route: Route) -> list[Routed]:
        return [r for r in self.routed if r.route is route]

    def overlaps(self, records: Mapping[str, WorkloadRecord]) -> bool:
        """Whether the next round may be planned while this plan is written: it only starts workloads placed
        nowhere yet on GPU pools (whose capacity the executor commits before any write) or says why they wait.
        A move, a stop, a preemption, a violation or a remote target's start lands before anything else."""
        if self.moves or self.blocked:
            return False
        if any(r.route is not Route.DECIDE or r.violation for r in self.routed):
            return False
        for entry, decision in self.decisions:
            if decision.preempts or entry.failover or records[entry.admitted.request.key].target:
                return False
            if decision.chosen is not None and decision.chosen.target.kind is not TargetKind.GPU_POOL:
                return False
        return True


Admit = Callable[[WorkloadRecord], Admitted | Refusal | None]
RulesOf = Callable[[WorkloadRecord], tuple[PlacementRequest, PlacementPolicySpec] | None]


def plan_round(
    records: Records,
    snapshot: Snapshot,
    inputs: RoundInputs,
    memory: RoundMemory,
    rules: Mapping[TargetKind, TargetRules],
    admit: Admit,
    running: Callable[[], Sequence[Running]],
    workload_uids: Mapping[str, str],
    rules_of: RulesOf,
) -> RoundPlan:
    """Plan one round (see the module docstring). ``admit`` admits a record again (pure: core.reconcile.admit over
    the caller's policies and keys), ``running`` lists what holds capacity now (only called when preemption,
    quotas or several teams are in play), ``workload_uids`` maps a uid back to its workload key, ``rules_of``
    gives an admitted workload's request and the verified policy it is under (None when either is unknown)."""
    plan = RoundPlan(memory=RoundMemory(signals_seen=memory.signals_seen))
    flying = inputs.in_flight
    stuck = {workload_uids[uid]: found for uid, found in inputs.unschedulable.items() if uid in workload_uids}
    reclaimed = {workload_uids[uid]: hit for uid, hit in inputs.interrupted.items() if uid in workload_uids}
    if flying:
        stuck = {key: found for key, found in stuck.items() if key not in flying}
        reclaimed = {key: hit for key, hit in reclaimed.items() if key not in flying}
    # What waits, and the clocks whose cause has gone: from the store's index, not a walk over every record.
    waiting = {key: entry for key, entry in records.queued().items() if key not in flying}
    for record in records.keyed(records.index.clocked):
        if record.key in flying:
            continue
        if record.unschedulable_since is not None and record.key not in stuck:
            plan.stuck_since[record.key] = None
        if record.interrupted_node is not None and record.key not in reclaimed:
            plan.told[record.key] = None
    queued = set(waiting) | flying  # never queued again by a move while its decision is being written
    _plan_unschedulable(plan, records, inputs, stuck, queued, admit)
    _plan_interruptions(plan, records, reclaimed, queued, admit)
    _plan_failover(plan, records, snapshot, inputs, memory, rules, queued, admit)
    _plan_changed_targets(plan, records, snapshot, memory, queued, admit, rules_of)
    waiting.update((m.key, m.outcome) for m in plan.moves if isinstance(m.outcome, Queued))
    fleet_version = inputs.fleet_version + (1 if plan.fleet_moved else 0)
    due = [
        entry
        for entry in waiting.values()
        if entry.attempts == 0
        or inputs.monotonic >= entry.not_before
        or (entry.fleet_version != fleet_version and not entry.failure)
    ]
    deciding: list[Queued] = []
    for entry in due:
        key = entry.admitted.request.key
        failure = inputs.blocked.get(key.partition("/")[0])
        if failure is not None:
            plan.blocked.append((entry, failure))
            continue
        routed = _route(entry, records[key], snapshot)
        plan.routed.append(routed)
        if routed.route is Route.DECIDE:
            deciding.append(entry)
    if not deciding:
        return plan
    if inputs.max_batch and len(deciding) > inputs.max_batch:
        # The batch the engine would put first (priority, then age); the rest stay queued, untouched.
        deciding.sort(key=lambda q: _batch_order(q.admitted.request))
        deciding, plan.more = deciding[: inputs.max_batch], True
    plan.policies = {q.admitted.policy_name: q.admitted.policy for q in deciding}
    # A run length the workload does not state is the one its own finished runs took (core.learned), if any.
    requests = [
        with_learned_runtime(
            dataclasses.replace(q.admitted.request, policy=q.admitted.policy_name, avoid=q.avoid),
            records[q.admitted.request.key].status,
        )
        for q in deciding
    ]
    by_key = {q.admitted.request.key: q for q in deciding}
    plan.scarce = any(p.preemption.enabled or p.quotas for p in plan.policies.values())
    teams = {r.key.partition("/")[0] for r in requests}
    # Workloads being decided again (moving) are requests now, not running work: never counted twice.
    holding = [r for r in running() if r.key not in by_key] if plan.scarce or len(teams) > 1 else []
    decisions = decide_many(
        requests, plan.policies, snapshot, running=holding, namespace_labels=inputs.namespace_labels
    )
    plan.decisions = [(by_key[d.request.key], d) for d in decisions]
    return plan


def _batch_order(request: PlacementRequest) -> tuple[object, ...]:
    created = request.created.timestamp() if request.created is not None else 0.0
    return (-request.priority, created, request.key)


def _requeue(record: WorkloadRecord, move: Move | None, admit: Admit) -> Queued | Refusal | None:
    """A running workload admitted again, as a fresh queue entry (or the refusal admitting it gave)."""
    outcome = admit(record)
    if not isinstance(outcome, Admitted):
        return outcome
    assert record.obj is not None  # admit only answers for records seen whole
    if move is None:
        return Queued(record.obj, outcome)
    return Queued(record.obj, outcome, failover=move.why, avoid=move.avoid or frozenset())


def _movable(record: WorkloadRecord, queued: set[str]) -> bool:
    """Running, admitted once, not queued or being stopped already, on a kind whose workloads can be moved."""
    target = record.target
    return (
        record.runs
        and record.obj is not None
        and record.key not in queued
        and record.eviction is None
        and target is not None
        and KINDS[TargetKind(str(target.get("kind")))].fails_over
    )


def _plan_unschedulable(
    plan: RoundPlan,
    records: Mapping[str, WorkloadRecord],
    inputs: RoundInputs,
    stuck: Mapping[str, tuple[str, str]],
    queued: set[str],
    admit: Admit,
) -> None:
    """Children whose pods the scheduler refused past the grace period (``stuck``: workload key -> pool, message):
    a placement that failed. Their claim goes back and the workload is placed again, avoiding that target
    (another may have room)."""
    now = inputs.monotonic
    for key, (pool, message) in sorted(stuck.items()):
        record = records.get(key)
        if record is None:
            continue
        target = record.target
        if target and pool and pool != target.get("name"):
            # The pod of a child it has left (still being collected): says nothing of where it is now.
            plan.stuck_since[key] = None
            continue
        first = record.unschedulable_since if record.unschedulable_since is not None else now
        plan.stuck_since[key] = first
        # A preemptor's pods wait for its victims' children to stop: its clock starts when they do.
        since = max(first, record.room_at)
        if now - since < inputs.unschedulable_grace or target is None or not _movable(record, queued):
            continue
        plan.stuck_since[key] = None
        why = f"pods unschedulable on {target['kind']} {target['name']} for {now - since:.0f}s: {message}"
        avoid = frozenset({(str(target["kind"]), str(target["name"]))})
        outcome = _requeue(record, Move(why, avoid), admit)
        plan.moves.append(PlannedMove(key, MoveCause.UNSCHEDULABLE, why, target, outcome))
        queued.add(key)


def _plan_interruptions(
    plan: RoundPlan,
    records: Mapping[str, WorkloadRecord],
    found: Mapping[str, tuple[str, str, str]],
    queued: set[str],
    admit: Admit,
) -> None:
    """Pods on a node about to be reclaimed (``found``: workload key -> pod, node, why): told to checkpoint (by the
    executor), and the workload placed again. The node has already left the snapshot, so the new decision keeps
    the pool only while its other nodes have room. Once per workload and node; a workload queued already is
    told but not queued twice."""
    for key, (pod, node, why) in sorted(found.items()):
        record = records.get(key)
        if record is None or record.interrupted_node == node or not record.runs or record.obj is None:
            continue
        target = record.target or {}
        plan.told[key] = node
        where = f"node {node} of {target['kind']} {target['name']} is being reclaimed: {why}"
        # Queued already, or being stopped: told, and placed again by what queued it.
        requeue = key not in queued and record.eviction is None
        outcome = _requeue(record, Move(where), admit) if requeue else None
        plan.moves.append(
            PlannedMove(key, MoveCause.INTERRUPTED, where, target, outcome, node=node, pod=pod, notice=why)
        )
        queued.add(key)


def _plan_failover(
    plan: RoundPlan,
    records: Records,
    snapshot: Snapshot,
    inputs: RoundInputs,
    memory: RoundMemory,
    rules: Mapping[TargetKind, TargetRules],
    queued: set[str],
    admit: Admit,
) -> None:
    """Workloads whose target has been unhealthy (or gone) past its kind's grace period go back through placement.
    A stale edge copy is removed when the edge comes back (controller.edges)."""
    healthy = {t.key for t in snapshot.targets if t.healthy}
    since_of = {key: at for key, at in memory.unhealthy_since.items() if key not in healthy}
    now = inputs.monotonic
    # Only what sits on a target that is not healthy (or gone) can fail over.
    away = [where for where in records.index.on_target if where not in healthy]
    for record in records.keyed(key for where in away for key in records.index.on_target[where]):
        key = record.key
        if key in queued or record.status.get("phase") not in ACTIVE_PHASES:
            continue
        target = record.target
        if not target:
            continue
        target_key = (str(target["kind"]), str(target["name"]))
        kind = TargetKind(target_key[0])
        if not KINDS[kind].fails_over:
            continue
        since = since_of.setdefault(target_key, now)
        runtime = rules.get(kind)
        if runtime is None or now - since < runtime.failover_grace(target_key[1]) or not _movable(record, queued):
            continue
        why = runtime.unhealthy(target_key[1], now - since)
        plan.moves.append(PlannedMove(key, MoveCause.FAILOVER, why, target, _requeue(record, Move(why), admit)))
        queued.add(key)
    plan.memory.unhealthy_since = since_of


def _plan_changed_targets(
    plan: RoundPlan,
    records: Mapping[str, WorkloadRecord],
    snapshot: Snapshot,
    memory: RoundMemory,
    queued: set[str],
    admit: Admit,
    rules_of: RulesOf,
) -> None:
    """Workloads on a target whose region, GPU products or spot-ness changed (a relabelled pool) are routed again,
    so the rules are checked against what the target is now. When the signals change (prices, preemption risk:
    budget and spot rules read them), every running workload is checked in memory and only those the rules no
    longer allow where they run are routed again."""
    shapes: dict[TargetKey, tuple[object, ...]] = {t.key: (t.region, t.gpu_products, t.spot) for t in snapshot.targets}
    changed = {key for key, shape in shapes.items() if memory.target_shapes.get(key, shape) != shape}
    plan.memory.target_shapes = shapes
    signals_at = snapshot.signals.updated_at if snapshot.signals is not None else None
    signals_changed = memory.signals_seen is not None and signals_at != memory.signals_seen
    plan.memory.signals_seen = signals_at
    if not changed and not signals_changed:
        return
    for key in sorted(records):
        record = records[key]
        if not _movable(record, queued):
            continue
        target = record.target or {}
        where = (str(target.get("kind")), str(target.get("name")))
        if where not in changed and not _breaks_rules(rules_of(record), where, snapshot):
            continue
        plan.moves.append(PlannedMove(key, MoveCause.TARGET_CHANGED, "", target, _requeue(record, None, admit)))
        queued.add(key)


def _breaks_rules(
    rules: tuple[PlacementRequest, PlacementPolicySpec] | None, where: TargetKey, snapshot: Snapshot
) -> bool:
    if rules is None:
        return False  # not admitted under a policy that verifies: its next admission says so
    return recheck(rules[0], rules[1], snapshot, where) is not None


def _route(entry: Queued, record: WorkloadRecord, snapshot: Snapshot) -> Routed:
    """A placed workload keeps its target across a spec or policy change while the rules still allow it there;
    when they no longer do, the policy's enforcement says: move it (decide), stop it, or warn (stay)."""
    target = record.target
    if not target or not record.runs or entry.failover or entry.failure:
        return Routed(entry, Route.DECIDE)
    reason = recheck(entry.admitted.request, entry.admitted.policy, snapshot, (target["kind"], target["name"]))
    if reason is None:
        return Routed(entry, Route.STAY)
    violation = f"{target['kind']} {target['name']}: {reason}"
    enforcement = entry.admitted.policy.enforcement
    route = {Enforcement.WARN: Route.STAY, Enforcement.STOP: Route.STOP}.get(enforcement, Route.DECIDE)
    return Routed(entry, route, violation, enforcement)
