"""PlacementPolicy status: its own Verified condition and how many workloads were admitted under it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from mlplacement.api.constants import ConditionType
from mlplacement.config import OperatorConfig
from mlplacement.controller.ports import Cluster, EventSink
from mlplacement.controller.slots import WriteSlots
from mlplacement.controller.state import FleetCache
from mlplacement.core.reconcile import policy_status
from mlplacement.core.status import get_condition, status_patch

Obj = Mapping[str, Any]


class PolicyStatuses:
    """Writes each policy's status only when it changes; a moving count at most once per reload period."""

    def __init__(
        self,
        config: OperatorConfig,
        cache: FleetCache,
        cluster: Cluster,
        events: EventSink,
        writes: WriteSlots,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self.config = config
        self.cache = cache
        self.cluster = cluster
        self.events = events
        self.writes = writes
        self.clock = clock
        self.monotonic = monotonic
        self.written: dict[str, Obj] = {}  # policy name -> status last written
        self._checked: dict[str, tuple[int, int, int, float]] = {}  # name -> (object, keyring, count, when)
        self._count_written: dict[str, float] = {}  # name -> when a status was last written

    async def sync(self, counts: Mapping[str, int]) -> None:
        now = self.clock()
        tick = self.monotonic()
        for name, obj in list(self.cache.policies.items()):
            # Verifying every policy every round is wasted work: redo it when the object, the keyring or the
            # count changed, and once per reload period so an expiring signature is still noticed.
            inputs = (id(obj), id(self.cache.keyring), counts.get(name, 0))
            checked = self._checked.get(name)
            if checked and checked[:3] == inputs and tick - checked[3] < self.config.reload_seconds:
                continue
            self._checked[name] = (*inputs, tick)
            current = self.written.get(name) or obj.get("status") or {}
            desired = policy_status(obj, self.cache.keyring, now, counts.get(name, 0), current)
            patch = status_patch(current, desired)
            if patch is None:
                continue
            if set(patch) <= {"workloads"} and tick - self._count_written.get(name, -1e18) < self.config.reload_seconds:
                # Only the count moved (a drain admits thousands): at most one write per reload period.
                self._checked.pop(name, None)
                continue
            self._count_written[name] = tick
            async with self.writes:
                await asyncio.to_thread(self.cluster.patch_policy_status, name, patch)
            self.written[name] = {**current, **patch}
            verified = next(c for c in desired["conditions"] if c["type"] == ConditionType.VERIFIED.value)
            was = get_condition(current, ConditionType.VERIFIED) or {}
            if verified["status"] == "False" and was.get("reason") != verified["reason"]:
                self.events(obj, "Warning", verified["reason"], verified["message"])
        for store in (self.written, self._checked, self._count_written):
            for name in set(store) - set(self.cache.policies):
                del store[name]
