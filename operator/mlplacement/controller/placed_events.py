"""Events for routine placements, at a bounded rate.

A workload's first placement is already in its status (`status.placement`, the Placed condition with the
decision's words) and in the audit log. Its Event is a third copy that costs a write as large as the status
apply: a third of the apiserver's writes while a backlog drains, and the wait of every workload created
meanwhile. So routine placements get an Event each up to a rate (burst: ten seconds' worth), like client-go's
event recorder limits an object's Events; what is over the rate is said in a summary on the PlacementPolicy that
admitted them, at most once per policy every SUMMARY_SECONDS. Not once per round: under a steady stream a round
places one or two workloads, and a summary per round would be an Event per placement again. Failures, moves,
preemptions and refusals never go through here: one Event each, always.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from mlplacement.api.constants import Reason
from mlplacement.controller.ports import EventSink

BURST_SECONDS = 10.0
SUMMARY_SECONDS = 10.0  # what was held back is said at most this often (per policy, on the policy)
SHOWN_TARGETS = 5  # a summary names the targets with most placements, then says how many others


class PlacedEvents:
    """A token bucket for routine ``Placed`` Events and the count of those it held back this round."""

    def __init__(self, per_second: float, monotonic: Callable[[], float]) -> None:
        self.per_second = per_second
        # At least one whole token, unless routine Events are off altogether (0).
        self.burst = max(1.0, per_second * BURST_SECONDS) if per_second > 0 else 0.0
        self.monotonic = monotonic
        self._tokens = self.burst
        self._at = monotonic()
        self._held: dict[str, Counter[str]] = {}  # policy -> target ("pool a100") -> placements without an Event
        self._said_at = -math.inf  # when the last summaries were posted

    def allow(self, policy: str, target: str) -> bool:
        """True: post this placement's Event. False: it is counted for the next summary instead."""
        now = self.monotonic()
        if not math.isinf(self.burst):
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self._held.setdefault(policy, Counter())[target] += 1
        return False

    def flush(self, policies: Mapping[str, Mapping[str, Any]], events: EventSink, force: bool = False) -> None:
        """One summary Event per policy whose placements went without one since the last summaries, once
        SUMMARY_SECONDS have passed since those (``force``: now, as the operator stops)."""
        if not self._held:
            return
        now = self.monotonic()
        if not force and now - self._said_at < SUMMARY_SECONDS:
            return  # still counting: said in the next summary
        self._said_at = now
        held, self._held = self._held, {}
        for policy, targets in sorted(held.items()):
            obj = policies.get(policy)
            if obj is None:  # deleted meanwhile: its workloads' statuses still say it all
                continue
            total = sum(targets.values())
            shown = ", ".join(f"{count} on {target}" for target, count in targets.most_common(SHOWN_TARGETS))
            others = len(targets) - SHOWN_TARGETS
            where = shown + (f" and {others} other target{'s' if others > 1 else ''}" if others > 0 else "")
            events(
                obj,
                "Normal",
                Reason.PLACED.value,
                f"placed {total} workload{'s' if total > 1 else ''} without an Event each (more than "
                f"MLPLACEMENT_PLACED_EVENTS_PER_SECOND={self.per_second:g} a second): {where}; each one's "
                "status.placement says where and why",
            )


__all__ = ["PlacedEvents"]
