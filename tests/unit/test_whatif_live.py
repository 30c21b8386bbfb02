"""Policy change control: a proposed policy against what runs now, with a gate a CI job can use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.core.whatif import whatif_live
from tests.builders import make_fleet, make_request, pool
from tests.conftest import run_cli

FLEET = make_fleet(pool("us-pool", "us-east-1"), pool("eu-pool", "eu-west-1"))
EU_ONLY = PlacementPolicySpec.model_validate({"residency": {"allowedRegions": ["eu-west-1"]}})
GPU_POOLS_GONE = PlacementPolicySpec.model_validate({"allowedTargets": ["Edge"]})


def test_a_running_workload_the_rules_still_allow_stays_even_if_another_target_is_cheaper() -> None:
    running = make_request(key="ns/us", data_region="us-east-1")
    changes, totals = whatif_live([(running, "GPUPool/us-pool", 3.0)], FLEET, PlacementPolicySpec())
    assert changes == []
    assert totals["hourlyCostBeforeUSD"] == totals["hourlyCostAfterUSD"] == 3.0


def test_tightened_residency_moves_what_runs_in_the_forbidden_region_and_says_why() -> None:
    running = make_request(key="ns/us", data_region="us-east-1")
    waiting = make_request(key="ns/eu", data_region="eu-west-1")
    changes, totals = whatif_live([(running, "GPUPool/us-pool", 3.0), (waiting, None, 0.0)], FLEET, EU_ONLY)
    by_key = {c.key: c for c in changes}
    assert (by_key["ns/us"].kind, by_key["ns/us"].after) == ("moves", "GPUPool/eu-pool")
    assert by_key["ns/us"].why.startswith(
        "GPUPool/us-pool: outside allowed regions [eu-west-1]; placed on GPUPool eu-pool"
    )
    assert (by_key["ns/eu"].kind, by_key["ns/eu"].after) == ("becomes placeable", "GPUPool/eu-pool")
    assert (totals["moves"], totals["becomeInfeasible"], totals["becomePlaceable"]) == (1, 0, 1)


def test_a_policy_no_target_satisfies_makes_running_work_infeasible() -> None:
    running = make_request(key="ns/us", data_region="us-east-1")
    changes, totals = whatif_live([(running, "GPUPool/us-pool", 3.0)], FLEET, GPU_POOLS_GONE)
    assert [c.kind for c in changes] == ["becomes infeasible"]
    assert totals["hourlyCostAfterUSD"] == 0.0


def write(tmp_path: Path, name: str, obj: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_the_gate_exits_3_so_ci_can_refuse_the_policy_pull_request(tmp_path: Path, repo: Path) -> None:
    policy = write(
        tmp_path,
        "policy.yaml",
        {
            "apiVersion": "mlplacement.io/v1alpha1",
            "kind": "PlacementPolicy",
            "metadata": {"name": "p"},
            "spec": {"allowedTargets": ["Edge"]},
        },
    )
    result = run_cli("whatif", "--policy", policy, "--workloads", repo / "examples", "-o", "json")
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["becomeInfeasible"] > 0
    assert "gate failed" in result.stderr
    fine = run_cli(
        "whatif",
        "--policy",
        repo / "examples" / "policy-default.yaml",
        "-f",
        repo / "examples",
        "--max-moves",
        "100",
        "-o",
        "json",
    )
    assert fine.returncode == 0, fine.stderr


def test_admission_warnings_list_the_infeasible_first_then_moves_and_stay_short() -> None:
    from mlplacement.core.whatif import WARNING_CHARS, LiveChange, impact_warnings

    changes = [
        LiveChange("team-a/a", "GPUPool/us", "GPUPool/eu", 1.0, None, "outside allowed regions [eu-west-1]"),
        LiveChange("team-a/b", "GPUPool/us", None, -2.0, None, "x" * 300),
        LiveChange("team-a/c", None, "GPUPool/eu", 1.0, None, ""),
        LiveChange("team-a/d", "GPUPool/us", "GPUPool/eu", 1.0, None, ""),
    ]
    totals = {
        "workloads": 9,
        "moves": 2,
        "becomeInfeasible": 1,
        "becomePlaceable": 1,
        "slaLost": 0,
        "hourlyCostBeforeUSD": 10.0,
        "hourlyCostAfterUSD": 11.0,
    }
    warnings = impact_warnings("default", changes, totals)
    assert warnings[0] == (
        "what-if for PlacementPolicy default: 2 move, 1 become infeasible, 1 become placeable, 0 lose their latency "
        "target; hourly cost $10.0 -> $11.0"
    )
    assert [w.split(":")[1].strip().split()[0] for w in warnings[1:4]] == ["team-a/b", "team-a/a", "team-a/d"]
    assert warnings[-1] == "what-if: 1 more; `mlplacement whatif --live` lists them all"
    assert all(len(w) <= WARNING_CHARS for w in warnings)
