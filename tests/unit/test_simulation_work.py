"""The replay knows the work of a run: it lasts its GPU-hours at the placed GPUs' speed, an interruption
loses the work since the last checkpoint, and a deadline is met or missed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ruamel.yaml import YAML

from mlplacement.api.fleet import Fleet
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.trace import Trace
from mlplacement.core.simulation import engine_strategy, iter_reports, knows_work, simulate, strategies_for
from tests.builders import make_workload
from tests.conftest import REPO

START = datetime(2026, 11, 22, 8, tzinfo=UTC)


def fleet(*pools: dict[str, Any]) -> Fleet:
    return Fleet.model_validate(
        {
            "apiVersion": "mlplacement.io/fleet/v1",
            "kind": "Fleet",
            "now": START.isoformat(),
            "pools": list(pools),
            "signals": {"updatedAt": START.isoformat(), "ttlSeconds": 86400},
        }
    )


def training(name: str = "run", **intent: Any) -> dict[str, Any]:
    return make_workload(
        name=name,
        namespace="team-a",
        type="Training",
        resources={"gpus": 8},
        intent={"dataRegion": "eu-west-1", "expectedGPUHours": 64, "spot": "Allowed", **intent},
        targets={"allowed": ["GPUPool"]},
    )


def trace_of(*events: dict[str, Any]) -> Trace:
    return Trace.model_validate({"apiVersion": "mlplacement.io/trace/v1", "kind": "Trace", "events": list(events)})


def replay(pools: Fleet, *events: dict[str, Any]) -> dict[str, Any]:
    return simulate(pools, trace_of(*events), engine_strategy(PlacementPolicySpec()), "engine", START).summary()


H100 = {"name": "h100", "region": "eu-west-1", "gpuProduct": "NVIDIA-H100", "gpusTotal": 8, "gpuHourUSD": 10.0}
SPOT = {
    "name": "spot",
    "region": "eu-west-1",
    "gpuProduct": "NVIDIA-A100",
    "gpusTotal": 8,
    "gpuHourUSD": 1.0,
    "capacityType": "spot",
    "preemptionProbability": 0.05,
}


def test_a_run_lasts_its_gpu_hours_at_the_placed_gpus_speed() -> None:
    # 64 A100 GPU-hours on eight H100s (2.5 times as fast): 3.2 h at $80/h.
    summary = replay(fleet(H100), {"at": 0, "type": "arrive", "workload": training()})
    assert summary["finished"] == 1
    assert summary["totalCostUSD"] == pytest.approx(3.2 * 80, abs=0.01)
    assert summary["reworkHours"] == 0


@pytest.mark.parametrize(
    ("checkpoint", "rework_hours", "cost"),
    [
        # Reclaimed 3 h 25 min in: 25 min of work since the 3 h checkpoint is lost, plus 5 min to restart.
        pytest.param(30, 30 / 60, (8 + 30 / 60) * 8, id="with 30-minute checkpoints 25 minutes are redone"),
        pytest.param(None, 210 / 60, (8 + 210 / 60) * 8, id="without checkpoints the whole run so far is"),
    ],
)
def test_a_reclaimed_run_redoes_the_work_since_its_last_checkpoint(
    checkpoint: int | None, rework_hours: float, cost: float
) -> None:
    intent = {} if checkpoint is None else {"checkpointIntervalMinutes": checkpoint}
    summary = replay(
        fleet(SPOT),
        {"at": 0, "type": "arrive", "workload": training(**intent)},
        {"at": 205 * 60, "type": "preempt", "target": "spot"},
    )
    assert summary["finished"] == 1
    assert summary["reworkHours"] == pytest.approx(rework_hours, abs=0.05)
    assert summary["totalCostUSD"] == pytest.approx(cost, abs=0.05)


def test_deadlines_are_judged_met_missed_and_never_finishing() -> None:
    in_time = training("in-time", deadline="2026-11-22T12:00:00Z")  # 3.2 h on H100s: done at 11:12
    late = training("late", deadline="2026-11-22T14:00:00Z")  # waits for the first: done at 14:24
    summary = replay(
        fleet(H100),
        {"at": 0, "type": "arrive", "workload": in_time},
        {"at": 1, "type": "arrive", "workload": late},
    )
    assert (summary["deadlinesJudged"], summary["deadlineMisses"]) == (2, 1)


def test_work_scenario_pays_less_per_finished_run_and_misses_fewer_deadlines() -> None:
    """examples/work: 80 training runs on H100, A100, spot A100 and L4 pools, the spot pool reclaimed 6 times."""
    yaml = YAML(typ="safe", pure=True)
    folder = REPO / "examples" / "work"
    pools = Fleet.model_validate(yaml.load((folder / "fleet.yaml").read_text()))
    trace = Trace.model_validate(yaml.load((folder / "trace.yaml").read_text()))
    assert knows_work(trace)
    strategies = strategies_for([("defaults", PlacementPolicySpec())], per_hour=True)
    outcome = {r.name: r.summary() for r in iter_reports(pools, trace, strategies, START)}
    engine, per_hour, central = outcome["engine:defaults"], outcome["engine:defaults:per-hour"], outcome["centralize"]
    for baseline in (per_hour, central):
        assert engine["costPerFinishedUSD"] < baseline["costPerFinishedUSD"] * 0.95
        assert engine["deadlineMisses"] * 5 < baseline["deadlineMisses"]
        assert engine["reworkHours"] < baseline["reworkHours"]
    assert engine["deadlinesJudged"] == per_hour["deadlinesJudged"] == central["deadlinesJudged"]
