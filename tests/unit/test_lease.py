"""Leader election rules (core.lease): when a candidate may take the Lease, and that two never lead at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.core.lease import LeaderElection, LeaseAction, LeaseRecord

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DURATION, DEADLINE = 15.0, 10.0


def candidate(identity: str = "b") -> LeaderElection:
    return LeaderElection(identity, DURATION, DEADLINE)


HELD_BY_A = LeaseRecord(holder="a", duration_seconds=15, transitions=3, renew_time="x", resource_version="7")


@pytest.mark.parametrize(
    ("record", "seen_for", "expected"),
    [
        pytest.param(None, 0, LeaseAction.CREATE, id="no lease yet: create it"),
        pytest.param(HELD_BY_A, 0, LeaseAction.WAIT, id="fresh lease of another: wait"),
        pytest.param(HELD_BY_A, 14.9, LeaseAction.WAIT, id="unchanged for less than its duration: wait"),
        pytest.param(HELD_BY_A, 15.0, LeaseAction.TAKE, id="unchanged for its whole duration: take it"),
        pytest.param(replace(HELD_BY_A, holder=""), 0, LeaseAction.TAKE, id="released (no holder): take it at once"),
        pytest.param(replace(HELD_BY_A, holder="b"), 100, LeaseAction.RENEW, id="ours: renew"),
        pytest.param(
            replace(HELD_BY_A, duration_seconds=1), 1.0, LeaseAction.TAKE, id="the holder's own duration governs"
        ),
        pytest.param(
            replace(HELD_BY_A, duration_seconds=0), 14.0, LeaseAction.WAIT, id="no duration on it: ours stands in"
        ),
    ],
)
def test_what_a_candidate_does(record: LeaseRecord | None, seen_for: float, expected: LeaseAction) -> None:
    election = candidate()
    election.observe(record, 100.0)
    assert election.decide(100.0 + seen_for) is expected


def test_the_wall_clock_in_the_lease_is_never_trusted() -> None:
    """A holder whose clock is a year behind still keeps its lease while it renews: only changes count."""
    election = candidate()
    stale_stamp = replace(HELD_BY_A, renew_time="2025-01-01T00:00:00.000000Z")
    election.observe(stale_stamp, 0.0)
    assert election.decide(1.0) is LeaseAction.WAIT
    election.observe(replace(stale_stamp, resource_version="8"), 14.0)  # renewed: seen to change
    assert election.decide(28.0) is LeaseAction.WAIT
    assert election.decide(29.0) is LeaseAction.TAKE


@pytest.mark.parametrize(
    ("action", "transitions", "keeps_acquire_time"),
    [
        pytest.param(LeaseAction.CREATE, 0, False, id="create starts at zero transitions"),
        pytest.param(LeaseAction.TAKE, 4, False, id="take counts one more transition and a new acquire time"),
        pytest.param(LeaseAction.RENEW, 3, True, id="renew keeps transitions and acquire time"),
    ],
)
def test_what_a_candidate_writes(action: LeaseAction, transitions: int, keeps_acquire_time: bool) -> None:
    election = candidate("b")
    previous = replace(HELD_BY_A, acquire_time="2026-11-22T11:00:00.000000Z", holder="b" if keeps_acquire_time else "a")
    if action is not LeaseAction.CREATE:
        election.observe(previous, 0.0)
    written = election.desired(action, NOW)
    assert written.holder == "b"
    assert written.duration_seconds == 15
    assert written.transitions == (transitions if action is not LeaseAction.CREATE else 0)
    assert written.renew_time == "2026-11-22T12:00:00.000000Z"
    assert (written.acquire_time == previous.acquire_time) is keeps_acquire_time
    assert written.resource_version == ("" if action is LeaseAction.CREATE else "7")


def test_a_released_lease_names_nobody_and_lasts_a_second() -> None:
    election = candidate("b")
    election.observe(replace(HELD_BY_A, holder="b"), 0.0)
    released = election.released(NOW)
    assert (released.holder, released.duration_seconds, released.transitions) == ("", 1, 3)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"leaseDurationSeconds": "soon"}, id="a duration that is not a number"),
        pytest.param({"leaseDurationSeconds": 10**400}, id="a duration too large for a float"),
        pytest.param({"leaseTransitions": -5}, id="negative transitions"),
        pytest.param({"holderIdentity": None}, id="a null holder"),
    ],
)
def test_a_hand_edited_lease_never_breaks_the_election(spec: dict[str, object]) -> None:
    record = LeaseRecord.from_object({"metadata": {"resourceVersion": "1"}, "spec": spec})
    election = candidate()
    election.observe(record, 0.0)
    assert election.decide(DURATION) in (LeaseAction.TAKE, LeaseAction.WAIT)
    assert record.transitions >= 0


def test_losing_sight_of_our_name_on_the_lease_ends_leadership_at_once() -> None:
    election = candidate("b")
    election.wrote(replace(HELD_BY_A, holder="b"), 0.0)
    assert election.leading(1.0)
    election.observe(replace(HELD_BY_A, holder="c", resource_version="9"), 2.0)
    assert not election.leading(2.0)


def test_the_renew_deadline_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError, match="shorter than the lease duration"):
        LeaderElection("a", 10.0, 10.0)


# --- two candidates never lead at once ---


@dataclass
class Store:
    """A Lease as the API server keeps it: one record, a resourceVersion that every write must match."""

    record: LeaseRecord | None = None
    version: int = 0

    def write(self, record: LeaseRecord, create: bool) -> LeaseRecord | None:
        if create and self.record is not None:
            return None  # AlreadyExists
        if not create and (self.record is None or record.resource_version != self.record.resource_version):
            return None  # Conflict
        self.version += 1
        self.record = replace(record, resource_version=str(self.version))
        return self.record


def attempt(election: LeaderElection, store: Store, now: float, wall: datetime) -> None:
    """One try_acquire_or_renew, as controller.leader does it (read, decide, write)."""
    election.observe(store.record, now)
    action = election.decide(now)
    if action is LeaseAction.WAIT:
        return
    written = store.write(election.desired(action, wall), create=action is LeaseAction.CREATE)
    if written is not None:
        election.wrote(written, now)


@settings(max_examples=600, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=1),  # which candidate acts
            st.sampled_from(["try", "try", "try", "try", "try", "release", "crash"]),
            st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.5, 9.5]),  # time passing before it acts
        ),
        min_size=1,
        max_size=80,
    )
)
def test_two_candidates_never_lead_at_the_same_moment(steps: list[tuple[int, str, float]]) -> None:
    """Any interleaving of reads, writes, releases, crashes (a candidate that stops renewing) and pauses: at no
    moment do two candidates both believe they lead. Each judges by its own monotonic clock; clocks run at
    the same rate (a Lease cannot protect against a clock that runs slow)."""
    store = Store()
    candidates = [LeaderElection(name, DURATION, DEADLINE) for name in "ab"]
    crashed: set[int] = set()
    now = 0.0

    def one_leader_at_most() -> None:
        leaders = [c.identity for i, c in enumerate(candidates) if i not in crashed and c.leading(now)]
        assert len(leaders) <= 1, f"two leaders at t={now}: {leaders}"

    for who, what, pause in steps:
        now += pause
        one_leader_at_most()
        if who in crashed:
            crashed.discard(who)  # restarted: a new process with a new identity
            candidates[who] = LeaderElection(f"{candidates[who].identity}'", DURATION, DEADLINE)
            continue
        election = candidates[who]
        if what == "crash":
            crashed.add(who)
        elif what == "release" and election.leading(now):
            written = store.write(election.released(NOW + timedelta(seconds=now)), create=False)
            if written is not None:
                election.wrote(written, now)
        else:
            attempt(election, store, now, NOW + timedelta(seconds=now))
        one_leader_at_most()


def test_a_stalled_leader_stops_before_the_standby_takes_over() -> None:
    """The leader renewed at t=0 and then stalled (a long GC pause, a partition): it stops leading at the renew
    deadline (t=10); the standby, which saw that renewal at t=0, takes over only at the lease duration (t=15)."""
    store = Store()
    leader, standby = candidate("a"), candidate("b")
    attempt(leader, store, 0.0, NOW)
    attempt(standby, store, 0.0, NOW)
    assert leader.leading(9.9)
    assert not standby.leading(9.9)
    assert not leader.leading(10.0)
    attempt(standby, store, 14.9, NOW)
    assert not standby.leading(14.9)
    attempt(standby, store, 15.0, NOW)
    assert standby.leading(15.0)
    assert store.record is not None
    assert store.record.holder == "b"
