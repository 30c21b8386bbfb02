"""The simulator is deterministic, conserves workloads and capacity, and sees failover; whatif is exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlplacement.adapters.files import load_fleet
from mlplacement.api.fleet import Fleet
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.trace import Trace
from mlplacement.api.workload import MLWorkload
from mlplacement.core import simulation
from mlplacement.core.placement import request_from_workload
from mlplacement.core.simulation import generate_trace, iter_reports, simulate, strategies_for
from mlplacement.core.snapshot import snapshot_from_fleet
from mlplacement.core.whatif import whatif
from tests.builders import make_workload
from tests.conftest import run_cli

START = datetime(2026, 11, 22, tzinfo=UTC)
FLEET = load_fleet(None)
STRATEGIES = strategies_for([("defaults", PlacementPolicySpec())])


def reports(trace: Trace, fleet: Fleet = FLEET) -> dict[str, Any]:
    return {r.name: r for r in iter_reports(fleet, trace, STRATEGIES, START)}


def test_same_seed_same_report() -> None:
    first = [r.summary() for r in reports(generate_trace(FLEET, 80, seed=5)).values()]
    second = [r.summary() for r in reports(generate_trace(FLEET, 80, seed=5)).values()]
    assert first == second
    assert first != [r.summary() for r in reports(generate_trace(FLEET, 80, seed=6)).values()]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_arrival_is_accounted_for_and_capacity_never_overcommitted(seed: int) -> None:
    trace = generate_trace(FLEET, 120, seed=seed, hours=6)
    for report in reports(trace).values():
        summary = report.summary()
        assert summary["placed"] + summary["waitingAtEnd"] + summary["refused"] == summary["arrivals"], report.name
        assert summary["finished"] + summary["runningAtEnd"] == summary["placed"], report.name
        assert report.overcommits == 0, report.name


def arrival(at: float, name: str, minutes: float = 120, **spec: Any) -> dict[str, Any]:
    return {
        "at": at,
        "type": "arrive",
        "durationMinutes": minutes,
        "workload": make_workload(name=name, namespace="team-a", **spec),
    }


def trace_of(*events: dict[str, Any]) -> Trace:
    return Trace.model_validate({"apiVersion": "mlplacement.io/trace/v1", "kind": "Trace", "events": list(events)})


REALTIME = {
    "type": "Inference",
    "resources": {"gpus": 1, "gpuProduct": "NVIDIA-L4"},
    "intent": {"latencyClass": "Realtime", "latencyTargetMs": 30, "dataRegion": "eu-central-1", "spot": "Never"},
    "model": {"uri": "s3://m", "sizeGB": 0.5},
    "targets": {"allowed": ["Edge", "GPUPool"]},
}


def test_an_edge_outage_in_the_trace_fails_over() -> None:
    trace = trace_of(
        arrival(0, "scorer", minutes=600, **REALTIME), {"at": 1800, "type": "outage", "target": "edge-fra-store-01"}
    )
    report = simulate(FLEET, trace, STRATEGIES[0][1](), "engine", START)
    assert report.failovers == 1
    assert report.summary()["finished"] == 1
    running_kinds = [set(by_kind) for _, by_kind in report.kind_series]
    assert {"Edge"} in running_kinds
    assert running_kinds[-1] == set() or "GPUPool" in set().union(*running_kinds)


def test_a_preemption_requeues_spot_work() -> None:
    batch = {
        "type": "Batch",
        "resources": {"gpus": 2, "gpuProduct": "NVIDIA-A10G"},
        "intent": {"spot": "Preferred", "dataRegion": "us-east-1"},
        "targets": {"allowed": ["GPUPool"]},
    }
    trace = trace_of(
        arrival(0, "backfill", minutes=120, **batch), {"at": 600, "type": "preempt", "target": "a10g-spot-use1"}
    )
    report = simulate(FLEET, trace, STRATEGIES[0][1](), "engine", START)
    assert report.preemptions == 1
    assert report.summary()["finished"] == 1


def test_invalid_workload_in_a_trace_is_refused_not_fatal() -> None:
    trace = trace_of(arrival(0, "bad", intent={"priority": -1}), arrival(0, "good"))
    summary = simulate(FLEET, trace, STRATEGIES[0][1](), "engine", START).summary()
    assert (summary["refused"], summary["placed"]) == (1, 1)


def test_whatif_reports_exactly_the_workloads_whose_decision_changes() -> None:
    snapshot = snapshot_from_fleet(FLEET, START)
    eu = make_workload(
        name="eu-job",
        namespace="ns",
        resources={"gpus": 2, "gpuProduct": "NVIDIA-A100-SXM4-80GB"},
        intent={"dataRegion": "eu-west-1", "dataSizeGB": 1},
        targets={"allowed": ["GPUPool"]},
    )
    us = make_workload(
        name="us-job",
        namespace="ns",
        resources={"gpus": 2, "gpuProduct": "NVIDIA-A10G"},
        intent={"dataRegion": "us-east-1"},
        targets={"allowed": ["GPUPool"]},
    )
    scorer = make_workload(name="scorer", namespace="ns", **REALTIME)
    requests = [request_from_workload(MLWorkload.model_validate(w)) for w in (eu, us, scorer)]
    eu_only = PlacementPolicySpec.model_validate({"residency": {"allowedRegions": ["eu-west-1", "eu-central-1"]}})
    changes, totals = whatif(requests, snapshot, PlacementPolicySpec(), eu_only)
    assert [(c.key, c.kind) for c in changes] == [("ns/us-job", "becomes infeasible")]
    assert totals["becomeInfeasible"] == 1
    assert totals["moves"] == 0


def test_shipped_traces_load_and_simulate(repo: Path, tmp_path: Path) -> None:
    for trace_file in sorted((repo / "examples" / "traces").glob("*.yaml")):
        result = run_cli("simulate", "--trace", str(trace_file), "--out", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "engine:defaults" in result.stdout
        report = json.loads((tmp_path / "report.json").read_text())
        assert [s["strategy"] for s in report["strategies"]] == [
            "engine:defaults",
            "centralize",
            "central-region",
            "cheapest-first",
            "round-robin",
        ]
        assert {p.name for p in tmp_path.glob("*.png")} == {
            "cost-over-time.png",
            "latency-distribution.png",
            "placements-by-target.png",
        }


def test_bad_trace_file_names_the_field(tmp_path: Path, repo: Path) -> None:
    path = tmp_path / "trace.yaml"
    path.write_text("apiVersion: mlplacement.io/trace/v1\nkind: Trace\nevents:\n- {at: -5, type: arrive}\n")
    result = run_cli("simulate", "--trace", str(path))
    assert result.returncode != 0
    assert "events[0].at" in result.stderr


def test_module_exposes_baselines() -> None:
    assert {name for name, _ in STRATEGIES} == {
        "engine:defaults",
        "centralize",
        "central-region",
        "cheapest-first",
        "round-robin",
    }
    assert simulation.RESTART_OVERHEAD > 0


def test_jsonl_trace_is_one_event_per_line(tmp_path: Path, repo: Path) -> None:
    path = tmp_path / "trace.jsonl"
    events = [arrival(0, "a"), arrival(60, "b"), {"at": 120, "type": "outage", "target": "edge-dub-plant-01"}]
    path.write_text("\n".join(json.dumps(event) for event in events) + "\n")
    result = run_cli("simulate", "--trace", str(path))
    assert result.returncode == 0, result.stderr
    assert "2/2" in result.stdout


@pytest.mark.parametrize("strategy", ["cheapest-first", "round-robin"])
def test_no_baseline_puts_a_workload_without_a_task_on_databricks(strategy: str) -> None:
    from mlplacement.api.workload import TargetKind
    from tests.builders import make_request

    snapshot = snapshot_from_fleet(FLEET, START)
    baseline = dict(strategies_for(PlacementPolicySpec()))[strategy]()
    requests = [make_request(key=f"team-a/job-{i}", databricks_task=False) for i in range(20)]
    placed = [p.target for p in baseline(requests, snapshot, ()) if p.target is not None]
    assert placed
    assert all(target.kind is not TargetKind.DATABRICKS for target in placed)


NODE_FLEET = Fleet.model_validate(
    {
        "apiVersion": "mlplacement.io/fleet/v1",
        "kind": "Fleet",
        "pools": [
            {"name": "frag", "region": "eu-west-1", "gpusTotal": 8, "gpuHourUSD": 1.0, "nodes": [{"gpus": 2}] * 4},
            {"name": "whole", "region": "eu-west-1", "gpusTotal": 16, "gpuHourUSD": 3.0, "gpusPerNode": 8},
        ],
    }
)


def test_the_replay_binds_pods_node_by_node_and_reports_what_naive_placement_strands() -> None:
    """cheapest-first counts GPUs per pool: it sends a 4-GPU training to the fragmented pool, where no node
    holds its pod; it waits there (Pending) while frag's 8 GPUs sit stranded in blocks of 2. The engine places it
    on whole at once, beside a 2x4 gang."""
    gang = {"type": "Training", "resources": {"gpus": 4, "workers": 2}, "targets": {"allowed": ["GPUPool"]}}
    trace = trace_of(
        arrival(0, "four", 60, type="Training", resources={"gpus": 4}, targets={"allowed": ["GPUPool"]}),
        arrival(0, "gang", 60, **gang),
    )
    by_name = {r.name: r.summary() for r in reports(trace, NODE_FLEET).values()}
    engine, naive = by_name["engine:defaults"], by_name["cheapest-first"]
    assert (engine["placed"], engine["unschedulablePlacements"], engine["strandedGPUHours"]) == (2, 0, 0.0)
    assert naive["unschedulablePlacements"] == 1
    assert naive["placed"] == 1  # the gang, on whole: frag never has a node that holds the 4-GPU pod
    assert naive["strandedGPUsPeak"] == 8
    assert naive["strandedGPUHours"] > 0


# --- work conservation and the workloads that never started (#32) ---

SAMPLE_TRACES = {
    "steady-day": ("examples/traces/steady-day.yaml", None),
    "busy-shift": ("examples/traces/busy-shift.yaml", None),
    "work": ("examples/work/trace.yaml", "examples/work/fleet.yaml"),
    "scarcity": ("examples/scarcity/trace.yaml", "examples/scarcity/fleet.yaml"),
}


@pytest.mark.parametrize(("trace_file", "fleet_file"), SAMPLE_TRACES.values(), ids=SAMPLE_TRACES.keys())
def test_the_engine_leaves_no_work_idle_that_its_own_rules_would_place(trace_file: str, fleet_file: str | None) -> None:
    from mlplacement.cli.simulation import _load_trace
    from tests.conftest import REPO

    fleet = load_fleet(REPO / fleet_file) if fleet_file else FLEET
    trace = _load_trace(REPO / trace_file)
    report = simulate(fleet, trace, simulation.engine_strategy(PlacementPolicySpec()), "engine", START)
    summary = report.summary()
    assert summary["workConservingViolations"] == []
    assert len(summary["neverStarted"]) <= summary["waitingAtEnd"]  # some waiting at the end had run before
    assert all(n["why"].startswith("0/") for n in summary["neverStarted"]), "each says why, target by target"


class LeavesEverythingIdle(simulation.EngineStrategy):
    def __call__(self, requests: Any, snapshot: Any, running: Any) -> Any:
        return []


def test_the_check_catches_a_strategy_that_leaves_work_idle() -> None:
    trace = generate_trace(FLEET, 5, seed=3, hours=1)
    report = simulate(FLEET, trace, LeavesEverythingIdle(PlacementPolicySpec()), "idle", START)
    assert report.idle_violations
    assert report.idle_violations[0].startswith("at ")
