"""Write slots: at most MLPLACEMENT_WRITE_CONCURRENCY writes at once, taken in the order of the plan.

A round that places many workloads writes a child and then a status for each. With a first-come semaphore every
child is asked for before any status (each workload's status waits behind the other workloads' children), so
in a burst of 20 the first status is written after 20 children and every workload is seen placed at about the
end of the round. Here a waiting write goes by the position of its workload in the plan (``ordered``): the first
workload's status goes before the tenth workload's child, and workloads are seen placed one after the other,
the first ones early. The writes and their number are the same; only their order changes.

A write made outside a plan (a refusal, a policy's status, a cleanup) goes before any of a plan's.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

Order = tuple[int, int]  # (round, position of the workload in that round's plan)
UNORDERED: Order = (-1, -1)
_ORDER: contextvars.ContextVar[Order] = contextvars.ContextVar("mlplacement_write_order", default=UNORDERED)


@contextmanager
def ordered(order: Order) -> Iterator[None]:
    """Every write slot taken in this block (and in tasks started from it) waits by ``order``."""
    token = _ORDER.set(order)
    try:
        yield
    finally:
        _ORDER.reset(token)


class WriteSlots:
    """An asyncio semaphore whose waiters are served lowest ``ordered`` first, in arrival order among equals."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a write needs at least one slot")
        self._free = limit
        # Waiters: (order, arrival, future). A cancelled waiter's entry stays until it comes up, then is skipped.
        self._waiting: list[tuple[Order, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def free(self) -> int:
        return self._free

    async def __aenter__(self) -> None:
        if self._free > 0:  # free slots mean nobody waits: a release hands its slot to a waiter first
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (_ORDER.get(), next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed a slot just as this waiter was cancelled: pass it on
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():  # skipped: cancelled while waiting
                future.set_result(None)
                return
        self._free += 1


__all__ = ["UNORDERED", "Order", "WriteSlots", "ordered"]
