"""The operator's garbage-collection policy (controller.heap): long-lived objects frozen after each full
collection, frozen cycles freed by the periodic complete collection, nothing left installed afterwards."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from mlplacement.controller.heap import HeapCollector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def heap() -> Iterator[HeapCollector]:
    collector = HeapCollector()
    collector.install()
    try:
        yield collector
    finally:
        collector.uninstall()


def cycle() -> weakref.ref[Node]:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_a_full_collection_freezes_what_survived_it(heap: HeapCollector) -> None:
    gc.unfreeze()
    kept = [Node() for _ in range(100)]
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)


def test_a_cycle_dropped_after_it_was_frozen_is_freed_by_the_complete_collection(heap: HeapCollector) -> None:
    alive = cycle()
    holder = [alive()]
    gc.collect()  # the cycle is alive here: frozen with everything else
    holder.clear()
    gc.collect()
    assert alive() is not None, "a frozen cycle is out of reach of the ordinary collections"
    assert heap.complete() >= 2
    assert alive() is None
    assert gc.get_freeze_count() > 0, "frozen again after the complete collection"


def test_a_cycle_dropped_before_a_full_collection_is_freed_by_it(heap: HeapCollector) -> None:
    alive = cycle()
    gc.collect()
    assert alive() is None


def test_uninstall_leaves_the_collector_as_it_was() -> None:
    before = list(gc.callbacks)
    collector = HeapCollector()
    collector.install()
    collector.uninstall()
    assert gc.callbacks == before
    assert gc.get_freeze_count() == 0
