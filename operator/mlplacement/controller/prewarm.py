"""Pre-warming placeholders ahead of recurring runs: core.forecast decides, this applies and measures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from mlplacement.api.constants import ACTIVE_PHASES, Phase
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import MLWorkload, TargetKind, TrainingFrequency
from mlplacement.controller.ports import Cluster, EventSink, Metrics
from mlplacement.core.forecast import Expected, Recurring, expected_runs
from mlplacement.core.manifests import build_placeholder, placeholder_name
from mlplacement.core.snapshot import Snapshot

log = logging.getLogger("mlplacement.prewarm")
Obj = Mapping[str, Any]
ACTIVE = (Phase.PENDING.value, Phase.WAITING.value, *ACTIVE_PHASES)  # queued or running: it has arrived


class Prewarmer:
    """Holds the placeholders core.forecast asks for, removes the rest, counts forecast runs and arrivals.

    ``held`` is what this process created (a restart forgets it: a placeholder then lives until its workload
    is deleted, or is replaced by the next one of the same name; the owner reference collects it in the end).
    """

    def __init__(self, cluster: Cluster, events: EventSink, metrics: Metrics) -> None:
        self.cluster = cluster
        self.events = events
        self.metrics = metrics
        self.held: dict[str, str] = {}  # workload key -> expected run it holds for (ISO)
        # Workload key -> (expected run, when its window opened), from entering the window until judged.
        self.forecast: dict[str, tuple[datetime, datetime]] = {}

    async def round(
        self,
        now: datetime,
        snapshot: Snapshot,
        statuses: Mapping[str, Obj],
        objects: Mapping[str, Obj],
        workload_of: Callable[[str], MLWorkload | None],
        policy_of: Callable[[str], PlacementPolicySpec | None],
        queued: Collection[str] = (),
    ) -> list[Expected]:
        """One round: the placeholders the forecast wants exist, no others; ``queued`` workloads (a new run
        waiting for its decision) count as arrived."""
        pools = {t.name: t for t in snapshot.targets if t.kind is TargetKind.GPU_POOL}
        by_policy: dict[int, tuple[PlacementPolicySpec, list[Recurring]]] = {}
        for key, status in statuses.items():
            workload = workload_of(key)
            policy = policy_of(key)
            if workload is None or policy is None or not policy.prewarming.enabled:
                continue
            intent = workload.spec.intent
            if intent.schedule is None or intent.training_frequency is TrainingFrequency.ONCE:
                continue
            placement = status.get("placement") or {}
            target = placement.get("target") or {}
            pool = pools.get(str(target.get("name"))) if target.get("kind") == TargetKind.GPU_POOL.value else None
            decided = placement.get("decidedAt")
            recurring = Recurring(
                key=key,
                uid=str(workload.metadata.uid or ""),
                frequency=intent.training_frequency,
                schedule=intent.schedule,
                gpus=workload.spec.resources.gpus,
                pods=workload.spec.pods,
                pool=pool,
                active=status.get("phase") in ACTIVE or key in queued,
                last_placed=datetime.fromisoformat(str(decided)) if decided else None,
            )
            by_policy.setdefault(id(policy), (policy, []))[1].append(recurring)
        expected = [e for policy, group in by_policy.values() for e in expected_runs(group, now, policy.prewarming)]
        self._judge(expected, statuses, queued)
        wanted = {e.workload.key: e for e in expected if e.held}
        for key in sorted(set(self.held) - set(wanted)):
            await self._remove(key)
        for key, item in sorted(wanted.items()):
            at = item.at.isoformat()
            if self.held.get(key) == at or key not in objects:
                continue
            policy = policy_of(key)
            if policy is None or item.workload.pool is None:
                continue
            obj = objects[key]
            placeholder = build_placeholder(
                obj, item.workload.pool, item.workload.gpus, item.workload.pods, at, policy.prewarming
            )
            try:
                await asyncio.to_thread(self.cluster.apply_child, placeholder)
            except Exception as exc:  # the run still comes; it only starts colder
                log.warning("could not create placeholder for %s: %s", key, exc)
                continue
            self.held[key] = at
            self.events(
                obj,
                "Normal",
                "Prewarming",
                f"holding {item.gpus} GPUs on GPUPool {item.workload.pool.name} for the run expected at "
                f"{item.at:%Y-%m-%dT%H:%MZ} (placeholder pods any real work preempts)",
            )
        self.metrics.prewarm_gpus(forecast=sum(e.gpus for e in expected), held=sum(e.gpus for e in expected if e.held))
        return expected

    def _judge(self, expected: list[Expected], statuses: Mapping[str, Obj], queued: Collection[str]) -> None:
        """A forecast run arrived when its workload was placed again after its window opened (or waits for a
        place now); it was missed when the window closed first."""
        inside = {e.workload.key: e for e in expected}
        for key, (at, opened) in list(self.forecast.items()):
            status = statuses.get(key) or {}
            decided = (status.get("placement") or {}).get("decidedAt")
            arrived = status.get("phase") in ACTIVE or key in queued
            if arrived or (decided and datetime.fromisoformat(str(decided)) >= opened):
                self.metrics.prewarm_run("arrived")
                del self.forecast[key]
            elif key not in inside or inside[key].at != at:
                self.metrics.prewarm_run("missed")
                del self.forecast[key]
        for key, item in inside.items():
            self.forecast.setdefault(key, (item.at, item.opened))

    async def _remove(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        try:
            await asyncio.to_thread(self.cluster.delete_child, "Deployment", namespace, placeholder_name(name))
        except Exception as exc:  # retried next round
            log.warning("could not delete placeholder for %s: %s", key, exc)
            return
        del self.held[key]
