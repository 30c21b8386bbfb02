"""The start-up cache sync (controller.sync): ready only once every watch delivered what was listed."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlplacement.controller.sync import KEYS_AND_SIGNALS, WATCHES, CacheSync, sync_caches


def obj(key: str) -> dict[str, object]:
    namespace, _, name = key.rpartition("/")
    return {"metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}


def sync_of(*kinds: str, reads: tuple[str, ...] = ()) -> CacheSync:
    return CacheSync(kinds=kinds, reads=reads)


@pytest.mark.parametrize(
    ("steps", "ready"),
    [
        pytest.param(
            [("listed", "policies", {"default"}), ("seen", "policies", "default")], True, id="listed then seen"
        ),
        pytest.param(
            [("seen", "policies", "default"), ("listed", "policies", {"default"})], True, id="seen then listed"
        ),
        pytest.param([("seen", "policies", "default")], False, id="seen but never listed: an empty list is unknown"),
        pytest.param([("listed", "policies", set())], True, id="listed empty: nothing to wait for"),
        pytest.param(
            [("listed", "policies", {"default", "gpu"}), ("seen", "policies", "default")],
            False,
            id="one listed policy not delivered yet",
        ),
        pytest.param(
            [
                ("listed", "policies", {"default", "gone"}),
                ("seen", "policies", "default"),
                ("listed", "policies", {"default"}),
            ],
            True,
            id="deleted before its watch listed: a later list drops it",
        ),
        pytest.param(
            [("listed", "policies", {"default"}), ("seen", "policies", "other")],
            False,
            id="created after the list does not stand in for a listed one",
        ),
    ],
)
def test_a_kind_is_synced_when_its_watch_delivered_every_listed_key(
    steps: list[tuple[str, str, object]], ready: bool
) -> None:
    sync = sync_of("policies")
    for action, kind, arg in steps:
        if action == "listed":
            sync.listed(kind, arg)  # type: ignore[arg-type]
        else:
            sync.seen(kind, obj(str(arg)))
    assert sync.ready is ready


def test_every_kind_and_every_read_must_be_synced() -> None:
    sync = sync_of("policies", "nodes", reads=(KEYS_AND_SIGNALS,))
    sync.listed("policies", set())
    sync.listed("nodes", {"n1"})
    sync.seen("nodes", obj("n1"))
    assert not sync.ready
    assert sync.waiting_for() == KEYS_AND_SIGNALS
    sync.read(KEYS_AND_SIGNALS)
    assert sync.ready
    assert sync.waiting_for() == "nothing"


def test_what_it_waits_for_reads_as_words() -> None:
    sync = sync_of("policies", "jobs", reads=(KEYS_AND_SIGNALS,))
    sync.listed("jobs", {"team-a/mlw-x", "team-a/mlw-y"})
    assert sync.waiting_for() == (
        "policies (not listed yet), jobs (2 listed, not delivered yet), trusted keys and signals"
    )


def test_once_ready_it_stays_ready_and_keeps_nothing() -> None:
    sync = sync_of("nodes")
    sync.listed("nodes", set())
    assert sync.ready
    sync.seen("nodes", obj("n9"))
    sync.listed("nodes", {"n1"})
    assert sync.ready
    assert sync.unsynced() == []


def test_every_watched_kind_has_a_path_and_namespaced_keys_match_the_handlers() -> None:
    assert {w.kind for w in WATCHES.values()} == set(WATCHES)
    sync = CacheSync()
    sync.listed("jobs", {"team-a/mlw-train"})
    sync.seen("jobs", {"metadata": {"namespace": "team-a", "name": "mlw-train"}})
    assert "jobs" not in sync.unsynced()


@given(
    listed=st.sets(st.sampled_from([f"k{i}" for i in range(8)])),
    deleted=st.sets(st.sampled_from([f"k{i}" for i in range(8)])),
    order=st.randoms(use_true_random=False),
)
def test_ready_exactly_when_every_key_still_listed_was_delivered(
    listed: set[str], deleted: set[str], order: object
) -> None:
    """Whatever the order the watch delivers in, the sync is ready only after the last listed key that still
    exists has been delivered; keys deleted before the watch listed are dropped by the next list."""
    sync = sync_of("things")
    sync.listed("things", listed)
    remaining = sorted(listed - deleted)
    order.shuffle(remaining)  # type: ignore[attr-defined]
    if deleted & listed:
        sync.listed("things", listed - deleted)  # the re-list after those deletions
    for index, key in enumerate(remaining):
        assert not sync.ready
        sync.seen("things", obj(key))
        assert sync.ready is (index == len(remaining) - 1)
    assert sync.ready


def test_the_driver_lists_again_until_a_deleted_key_is_gone_and_reports_nothing_lost() -> None:
    """The first list names a key the watch will never deliver (deleted meanwhile); the next list drops it."""
    sync = sync_of("policies", reads=(KEYS_AND_SIGNALS,))
    lists = iter([{"default", "deleted-meanwhile"}, {"default"}])
    reads: list[str] = []

    async def read_sources() -> None:
        reads.append("read")

    async def scenario() -> None:
        sync.seen("policies", obj("default"))
        await asyncio.wait_for(sync_caches(sync, lambda kind: next(lists), read_sources, relist_seconds=0.01), 5)

    asyncio.run(scenario())
    assert sync.ready
    assert reads == ["read"]


def test_the_driver_retries_a_failed_list_and_a_failed_read() -> None:
    sync = sync_of("policies", reads=(KEYS_AND_SIGNALS,))
    answers: list[object] = [PermissionError("403 Forbidden"), set()]
    failures = [ConnectionError("refused")]

    def list_keys(kind: str) -> set[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    async def read_sources() -> None:
        if failures:
            raise failures.pop()

    asyncio.run(asyncio.wait_for(sync_caches(sync, list_keys, read_sources, relist_seconds=0.01), 5))
    assert sync.ready
