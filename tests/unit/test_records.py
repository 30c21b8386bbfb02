"""core.records: the store's index always says what a walk over every record would say."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.core.records import Eviction, Queued, Records, WorkloadRecord

KEYS = [f"team-a/w{i}" for i in range(6)]
STATUSES = [
    {},
    {"phase": "Waiting"},
    {"phase": "Placed", "placement": {"target": {"kind": "GPUPool", "name": "a100"}}},
    {"phase": "Running", "placement": {"target": {"kind": "GPUPool", "name": "h100"}}},
    {"phase": "Succeeded", "placement": {"target": {"kind": "EdgeCluster", "name": "edge-1"}}},
]
QUEUED = Queued(obj={}, admitted=None)  # type: ignore[arg-type]  # the index only asks whether there is one
EVICTION = Eviction(due=1.0, uid="u", status={})

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "obj": st.sampled_from([None, "with its uid", {"metadata": {}}]),
    "status": st.sampled_from(STATUSES),
    "queued": st.sampled_from([None, QUEUED]),
    "eviction": st.sampled_from([None, EVICTION]),
    "policy": st.sampled_from([None, "default", "gpu-heavy"]),
    "recurring": st.booleans(),
    "unschedulable_since": st.sampled_from([None, 3.0]),
    "interrupted_node": st.sampled_from([None, "n1"]),
    "room_at": st.floats(0, 10),  # not indexed: setting it must change nothing
}
STEPS = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(KEYS), st.none(), st.none()),
    *(st.tuples(st.just("set"), st.sampled_from(KEYS), st.just(name), values) for name, values in FIELDS.items()),
)


def walked(records: Records) -> dict[str, Any]:
    """What the index must say, by walking every record."""
    every = list(records.values())

    def where(r: WorkloadRecord) -> tuple[str, str] | None:
        return (str(r.target["kind"]), str(r.target["name"])) if r.target else None

    on_target: dict[tuple[str, str], list[str]] = {}
    for r in every:
        if where(r) is not None:
            on_target.setdefault(where(r), []).append(r.key)  # type: ignore[arg-type]
    by_uid: dict[str, str] = {}
    for r in every:
        if r.uid:
            by_uid[r.uid] = r.key
    return {
        "by_uid": by_uid,
        "queued": sorted(r.key for r in every if r.queued is not None),
        "evicting": sorted(r.key for r in every if r.eviction is not None),
        "recurring": sorted(r.key for r in every if r.recurring),
        "clocked": sorted(r.key for r in every if r.unschedulable_since is not None or r.interrupted_node),
        "policies": Counter(r.policy for r in every if r.policy is not None),
        "phases": Counter(str(r.status["phase"]) for r in every if r.status.get("phase")),
        "on_target": {where: sorted(keys) for where, keys in on_target.items()},
    }


def indexed(records: Records) -> dict[str, Any]:
    index = records.index
    return {
        "by_uid": index.by_uid,
        "queued": sorted(index.queued),
        "evicting": sorted(index.evicting),
        "recurring": sorted(index.recurring),
        "clocked": sorted(index.clocked),
        "policies": +index.policies,
        "phases": +index.phases,
        "on_target": {where: sorted(keys) for where, keys in index.on_target.items()},
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(STEPS, max_size=60))
def test_the_index_matches_a_walk_over_every_record_after_any_changes(steps: list[Any]) -> None:
    records = Records()
    for action, key, name, value in steps:
        if action == "drop":
            dropped = records.drop(key)
            if dropped is not None:
                dropped.policy = "default"  # a record out of the store no longer touches its index
        else:
            if value == "with its uid":  # uids are unique: each record's its own
                value = {"metadata": {"uid": f"uid-of-{key}"}}
            setattr(records.add(key), name, value)
        assert indexed(records) == walked(records)
    assert records.queued() == dict.fromkeys(walked(records)["queued"], QUEUED)


def test_a_record_made_outside_a_store_has_no_index_to_keep() -> None:
    record = WorkloadRecord("team-a/w0")
    record.queued = QUEUED
    assert record.index is None
