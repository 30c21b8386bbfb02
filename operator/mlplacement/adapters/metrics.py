"""Prometheus metrics, all prefixed mlplacement_. Labels never carry secrets or free text."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mlplacement.api.constants import LeaderState


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._targets: set[tuple[str, str]] = set()
        r = self.registry
        self.decisions = Counter(
            "mlplacement_decisions",
            "Placement decisions by target kind and result",
            ["target_kind", "result"],
            registry=r,
        )
        self.refusals = Counter("mlplacement_refusals", "Workloads refused, by reason", ["reason"], registry=r)
        self.rounds = Histogram(
            "mlplacement_round_seconds",
            "Duration of one placement round (snapshot, decisions for the whole batch, children and status)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.round_planning = Histogram(
            "mlplacement_round_planning_seconds",
            "The part of a placement round that decides: snapshot and plan, before any write",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.round_size = Histogram(
            "mlplacement_round_workloads",
            "Workloads decided in one placement round",
            buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000),
            registry=r,
        )
        self.phases = Gauge("mlplacement_workloads", "MLWorkloads by phase", ["phase"], registry=r)
        self.stage_phases = Gauge(
            "mlplacement_pipeline_stages", "MLPipeline stages by phase, over every pipeline", ["phase"], registry=r
        )
        self.health = Gauge(
            "mlplacement_target_healthy", "1 if the target is placeable", ["target_kind", "target"], registry=r
        )
        self.cost = Gauge(
            "mlplacement_estimated_hourly_cost_usd",
            "Estimated hourly cost of a placed workload",
            ["namespace", "name"],
            registry=r,
        )
        self.signals = Gauge(
            "mlplacement_signals_age_seconds",
            "Age of the signals document (NaN while there is none: see mlplacement_signals_present)",
            registry=r,
        )
        self.signals_present = Gauge(
            "mlplacement_signals_present", "1 while a valid signals document is loaded", registry=r
        )

        self.apply_failures = Counter(
            "mlplacement_apply_failures",
            "Children the cluster refused to create or update, by reason (Forbidden, NamespaceTerminating, ...)",
            ["reason"],
            registry=r,
        )

        self.compliance_actions = Counter(
            "mlplacement_compliance_violations",
            "Running workloads a changed policy or target no longer allows where they run, by the policy's "
            "enforcement (Move, Stop, Warn)",
            ["action"],
            registry=r,
        )
        self.prewarm_gpu_gauge = Gauge(
            "mlplacement_prewarm_gpus",
            "GPUs of recurring runs expected within the pre-warming window (forecast), and held by placeholders",
            ["state"],
            registry=r,
        )
        self.prewarm_runs = Counter(
            "mlplacement_prewarm_runs",
            "Forecast recurring runs, by outcome: arrived within the window, or missed it",
            ["outcome"],
            registry=r,
        )
        self.interruptions = Counter(
            "mlplacement_interruptions",
            "Workloads whose pods ran on a node about to be reclaimed (spot interruption, node removal), by pool",
            ["target_kind", "target"],
            registry=r,
        )
        self.preemptions = Counter(
            "mlplacement_preemptions",
            "Workloads preempted, by reason (Priority, or ReclaimQuota: a team taking back its nominal quota)",
            ["reason"],
            registry=r,
        )
        self.quota_used = Gauge(
            "mlplacement_quota_used",
            "What a quota team uses now, by resource (gpus, hourly_cost_usd)",
            ["team", "resource"],
            registry=r,
        )
        self.quota_nominal = Gauge(
            "mlplacement_quota_nominal", "A quota team's nominal quota, by resource", ["team", "resource"], registry=r
        )
        self.leader = Gauge(
            "mlplacement_leader",
            "1 for this replica's role: leading (holds the Lease, places and writes), standby, or lease-error "
            "(the Lease cannot be read or written, so this replica can never lead)",
            ["state"],
            registry=r,
        )

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)

    def preemption(self, reason: str) -> None:
        self.preemptions.labels(reason).inc()

    def interruption(self, target_kind: str, target: str) -> None:
        self.interruptions.labels(target_kind, target).inc()

    def prewarm_gpus(self, forecast: int, held: int) -> None:
        self.prewarm_gpu_gauge.labels("forecast").set(forecast)
        self.prewarm_gpu_gauge.labels("held").set(held)

    def prewarm_run(self, outcome: str) -> None:
        self.prewarm_runs.labels(outcome).inc()

    def compliance(self, action: str) -> None:
        self.compliance_actions.labels(action).inc()

    def quota_usage(self, team: str, resource: str, used: float, nominal: float | None) -> None:
        self.quota_used.labels(team, resource).set(used)
        if nominal is not None:
            self.quota_nominal.labels(team, resource).set(nominal)

    def leader_state(self, state: str) -> None:
        for each in LeaderState:  # every state always present: 1 for this replica's, 0 for the others
            self.leader.labels(each.value).set(1 if each == state else 0)

    def decision(self, target_kind: str, result: str) -> None:
        self.decisions.labels(target_kind, result).inc()

    def round_finished(self, seconds: float, workloads: int, planning_seconds: float = 0.0) -> None:
        self.rounds.observe(seconds)
        self.round_planning.observe(planning_seconds)
        self.round_size.observe(workloads)

    def refusal(self, reason: str) -> None:
        self.refusals.labels(reason).inc()

    def workloads_by_phase(self, counts: Mapping[str, int]) -> None:
        for phase, count in counts.items():
            self.phases.labels(phase).set(count)

    def pipeline_stages(self, counts: Mapping[str, int]) -> None:
        """Stages by phase now; every phase is set, 0 when none is in it (a dashboard sums them)."""
        from mlplacement.api.pipeline import StagePhase

        for phase in StagePhase:
            self.stage_phases.labels(phase.value).set(counts.get(phase.value, 0))

    def target_health(self, targets: Mapping[tuple[str, str], bool]) -> None:
        """Every target's health now; series of targets that are gone are removed, not left at their last value."""
        for labels in set(self._targets) - set(targets):
            self.health.remove(*labels)
        for (kind, name), healthy in targets.items():
            self.health.labels(kind, name).set(1 if healthy else 0)
        self._targets = set(targets)

    def hourly_cost(self, namespace: str, name: str, usd: float | None) -> None:
        if usd is None:
            with contextlib.suppress(KeyError):  # never set, or removed already
                self.cost.remove(namespace, name)
        else:
            self.cost.labels(namespace, name).set(usd)

    def signals_age(self, seconds: float | None) -> None:
        self.signals.set(math.nan if seconds is None else seconds)
        self.signals_present.set(0 if seconds is None else 1)

    def apply_failure(self, reason: str) -> None:
        self.apply_failures.labels(reason).inc()
