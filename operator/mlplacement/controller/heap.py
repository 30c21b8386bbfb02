"""Garbage collection for a heap of long-lived objects: short pauses under load, no lasting leak.

The operator holds every watched object for as long as it exists, and changes a few of them at a time. CPython
runs a full collection whenever the objects promoted since the last one reach a quarter of the heap, and a full
collection walks every tracked object: with 10,000 workloads that was a 350 ms stop every 6-7 s while placing
(measured, `bench/drain.py --latency`), which set the latency tail. Almost nothing it found was garbage: the
objects are freed by reference counting, not by the cycle collector.

So after each full collection everything alive is frozen (gc.freeze: kept out of later collections, still freed by
reference counting when dropped), and the next full collections walk only what was promoted since. Cycles among
frozen objects that become garbage later are found by one complete collection every ``complete_every_seconds``.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

COMPLETE_EVERY_SECONDS = 600.0
OLDEST_GENERATION = 2


class HeapCollector:
    """Installs the freeze-after-full policy for this process; ``run`` makes the periodic complete collection."""

    def __init__(self, complete_every_seconds: float = COMPLETE_EVERY_SECONDS) -> None:
        self.complete_every_seconds = complete_every_seconds
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self._after_collection)
            self.installed = True
        gc.freeze()  # what was loaded to start (modules, settings) lives as long as the process

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self._after_collection)
            self.installed = False
        gc.unfreeze()

    @staticmethod
    def _after_collection(phase: str, info: dict[str, Any]) -> None:
        # Called by the collector once it has finished: freezing only moves its lists, nothing is collecting.
        if phase == "stop" and info["generation"] == OLDEST_GENERATION:
            gc.freeze()

    @staticmethod
    def complete() -> int:
        """One collection over everything, frozen or not; then freeze again. The number of objects it freed."""
        gc.unfreeze()
        try:
            return gc.collect()
        finally:
            gc.freeze()

    async def run(self) -> None:
        """A complete collection every ``complete_every_seconds``, until cancelled."""
        while True:
            await asyncio.sleep(self.complete_every_seconds)
            self.complete()
