"""The what-if of a PlacementPolicy change against the live cluster, as admission warnings.

Served by the webhook on every replica, so it cannot read the leader's memory: it lists the cluster
(read-only, as `mlplacement whatif --live` does), at most once per CACHE_SECONDS, and gives up after
TIMEOUT_SECONDS so the API server's webhook timeout is never reached (the change is admitted; the warning
says the analysis was skipped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mlplacement.api.constants import POOL_LABEL_KEYS
from mlplacement.api.policy import PlacementPolicy
from mlplacement.api.workload import MLWorkload
from mlplacement.core.reconcile import resolve_policy
from mlplacement.core.snapshot import build_snapshot
from mlplacement.core.whatif import LiveState, impact_warnings, live_workloads, whatif_live

log = logging.getLogger("mlplacement.webhook")
CACHE_SECONDS = 10.0  # a `kubectl diff` then `apply` of one change reads the cluster once
TIMEOUT_SECONDS = 3.0  # below the chart's webhook timeoutSeconds (5)


class PolicyImpact:
    def __init__(
        self,
        read: Callable[[], LiveState],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        pool_label_keys: tuple[str, ...] = POOL_LABEL_KEYS,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self.read = read
        self.clock = clock
        self.monotonic = monotonic
        self.pool_label_keys = pool_label_keys
        self.timeout_seconds = timeout_seconds
        self._cached: tuple[float, LiveState] | None = None

    async def __call__(self, obj: Mapping[str, Any]) -> list[str]:
        """Warnings for a proposed policy (``obj``); [] when it is not a valid PlacementPolicy (refused anyway)."""
        try:
            PlacementPolicy.model_validate(obj)
        except ValidationError:
            return []
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._analyse, obj), timeout=self.timeout_seconds)
        except TimeoutError:
            why = f"the analysis took longer than {self.timeout_seconds:g}s"
        except Exception as exc:  # the change is judged by its signature, never by whether this could run
            log.warning("policy what-if failed: %s", exc)
            why = f"the cluster could not be read ({type(exc).__name__})"
        return [f"what-if skipped: {why}; run `mlplacement whatif --live --policy FILE` before signing"]

    def _state(self) -> LiveState:
        now = self.monotonic()
        if self._cached is None or now - self._cached[0] > CACHE_SECONDS:
            self._cached = (now, self.read())
        return self._cached[1]

    def _analyse(self, obj: Mapping[str, Any]) -> list[str]:
        proposed = PlacementPolicy.model_validate(obj)
        name = proposed.metadata.name
        state = self._state()
        snapshot = build_snapshot(
            now=self.clock(),
            nodes=state.nodes,
            pods=state.pods,
            edge_clusters=state.edge_clusters,
            databricks_workspaces=state.workspaces,
            signals_configmap=state.signals_configmap,
            pool_label_keys=self.pool_label_keys,
        )
        policies: dict[str, Mapping[str, Any]] = {str((p.get("metadata") or {}).get("name")): p for p in state.policies}
        policies[name] = obj  # as it would be: a new default label counts

        def under(workload: MLWorkload) -> bool:
            resolved = resolve_policy(workload, policies)
            return isinstance(resolved, tuple) and resolved[0] == name

        workloads = live_workloads(state.workloads, snapshot, under)
        changes, totals = whatif_live(workloads, snapshot, proposed.spec)
        return impact_warnings(name, changes, totals)


__all__ = ["PolicyImpact"]
