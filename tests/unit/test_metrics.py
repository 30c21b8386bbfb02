"""Metrics tell the truth: no sentinel values, no series left behind, one observation per round."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from mlplacement.adapters.metrics import PrometheusMetrics


def value(registry: CollectorRegistry, metric: str, **labels: str) -> float | None:
    return registry.get_sample_value(metric, labels)


def test_a_gone_targets_health_series_is_removed_not_frozen() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.target_health({("GPUPool", "a"): True, ("Edge", "e"): False})
    assert value(registry, "mlplacement_target_healthy", target_kind="Edge", target="e") == 0
    metrics.target_health({("GPUPool", "a"): True})
    assert value(registry, "mlplacement_target_healthy", target_kind="Edge", target="e") is None
    assert value(registry, "mlplacement_target_healthy", target_kind="GPUPool", target="a") == 1


def test_missing_signals_are_not_a_negative_age() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.signals_age(None)
    age = value(registry, "mlplacement_signals_age_seconds")
    assert age is not None
    assert math.isnan(age)
    assert value(registry, "mlplacement_signals_present") == 0
    metrics.signals_age(42.0)
    assert value(registry, "mlplacement_signals_age_seconds") == 42.0
    assert value(registry, "mlplacement_signals_present") == 1


def test_a_workloads_cost_series_goes_when_it_stops_and_removing_twice_is_fine() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.hourly_cost("team-a", "w", 8.0)
    metrics.hourly_cost("team-a", "w", None)
    metrics.hourly_cost("team-a", "w", None)
    metrics.hourly_cost("team-a", "never-placed", None)
    assert value(registry, "mlplacement_estimated_hourly_cost_usd", namespace="team-a", name="w") is None


def test_a_round_is_one_observation_whatever_its_size() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.round_finished(0.2, 500, planning_seconds=0.05)
    metrics.round_finished(0.01, 1, planning_seconds=0.002)
    assert value(registry, "mlplacement_round_seconds_count") == 2
    assert value(registry, "mlplacement_round_seconds_sum") == pytest.approx(0.21)
    assert value(registry, "mlplacement_round_planning_seconds_sum") == pytest.approx(0.052)
    assert value(registry, "mlplacement_round_workloads_sum") == 501


def test_pipeline_stages_count_every_phase_and_drop_to_zero() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    metrics.pipeline_stages({"Running": 2, "WaitingForData": 1})
    assert value(registry, "mlplacement_pipeline_stages", phase="Running") == 2
    metrics.pipeline_stages({"Succeeded": 3})
    assert value(registry, "mlplacement_pipeline_stages", phase="Running") == 0
    assert value(registry, "mlplacement_pipeline_stages", phase="Succeeded") == 3
