"""Placement engine benchmark (not a test): throughput against a naive first-fit, and cost against an exact MILP.

    .venv/bin/python bench/engine.py [--workloads 10000] [--runs 5]

1. Decisions/s of decide_many() for N queued workloads over 50 GPU pools + 100 edge clusters + 3 Databricks
   workspaces, against a naive first-fit baseline (every filter on every target, one workload at a time)
   measured in the same run on the same inputs. Prints the median of several runs and the ratio.
2. On a small instance (200 workloads x 30 targets), decide_many()'s total hourly cost under a cost-only
   policy against the optimum of scipy.optimize.milp under the same hard constraints (every filter but
   capacity decides which pairs are allowed; capacity is a constraint), both placing as many as possible.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # As a script, bench/ is first on sys.path, where operator.py would shadow the standard library's `operator`.
    sys.path.pop(0)

import argparse
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.signals import Signals
from mlplacement.api.workload import MLWorkload, TargetKind
from mlplacement.core.placement import Decision, PlacementRequest, decide_many, request_from_workload
from mlplacement.core.placement.engine import claim_amount, first_rejection, make_context, placement_order
from mlplacement.core.placement.filters import (
    capacity,
    hourly_cost_usd,
)
from mlplacement.core.samples import generate_workloads
from mlplacement.core.snapshot import Snapshot, Target

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REGIONS = ("eu-west-1", "eu-central-1", "eu-north-1", "us-east-1", "us-west-2", "ap-south-1")
PRODUCTS = ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A10G", "NVIDIA-L4", "NVIDIA-H100-80GB-HBM3")


def make_signals() -> Signals:
    rng = random.Random(11)
    latency = {a: {b: float(rng.randint(10, 120)) for b in REGIONS if b > a} for a in REGIONS}
    return Signals.model_validate(
        {
            "updatedAt": NOW - timedelta(minutes=2),
            "latencyMs": latency,
            "carbonGPerKWh": {r: rng.randint(50, 600) for r in REGIONS},
        }
    )


def make_snapshot(pools: int, edges: int, workspaces: int, seed: int = 3) -> Snapshot:
    rng = random.Random(seed)
    targets = []
    for i in range(pools):
        spot = rng.random() < 0.4
        targets.append(
            Target(
                kind=TargetKind.GPU_POOL,
                name=f"pool-{i:03d}",
                region=rng.choice(REGIONS),
                capacity=rng.choice((8, 16, 32, 64)),
                gpus_total=64,
                gpu_products=frozenset({rng.choice(PRODUCTS)}),
                gpu_hour_usd=round(rng.uniform(0.4, 1.5) if spot else rng.uniform(1.0, 6.0), 2),
                spot=spot,
                preemption_probability=round(rng.uniform(0.02, 0.4), 2) if spot else 0.0,
                healthy=rng.random() > 0.05,
            )
        )
    for i in range(edges):
        targets.append(
            Target(
                kind=TargetKind.EDGE,
                name=f"edge-{i:03d}",
                region=rng.choice(REGIONS),
                capacity=rng.choice((1, 2, 4)),
                gpus_total=4,
                gpu_products=frozenset({"NVIDIA-L4"}),
                max_model_size_gb=rng.choice((1.0, 2.0, 4.0)),
                gpu_hour_usd=round(rng.uniform(0.2, 0.6), 2),
                base_hour_usd=0.05,
                healthy=rng.random() > 0.1,
            )
        )
    for i in range(workspaces):
        targets.append(
            Target(
                kind=TargetKind.DATABRICKS,
                name=f"dbx-{i}",
                region=REGIONS[i % len(REGIONS)],
                capacity=200,
                gpu_hour_usd=round(rng.uniform(2.0, 3.5), 2),
                base_hour_usd=1.0,
            )
        )
    return Snapshot(now=NOW, targets=tuple(targets), signals=make_signals())


def make_requests(count: int, seed: int = 7) -> list[PlacementRequest]:
    return [request_from_workload(MLWorkload.model_validate(m)) for m in generate_workloads(count, seed, REGIONS)]


def first_fit(requests: list[PlacementRequest], policy: PlacementPolicySpec, snapshot: Snapshot) -> int:
    """The naive baseline: every filter on every target for each workload, first fit wins."""
    claims: dict[tuple[str, str], int] = {}
    placed = 0
    for request in sorted(requests, key=placement_order):
        context = make_context(request, policy, snapshot)
        for target in snapshot.targets:
            free = target.capacity - claims.get(target.key, 0)
            if first_rejection(request, target, free, context) is None:
                claims[target.key] = claims.get(target.key, 0) + claim_amount(request, target)
                placed += 1
                break
    return placed


def timed(fn, *args) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def throughput(workloads: int, runs: int) -> None:
    snapshot = make_snapshot(50, 100, 3)
    requests = make_requests(workloads)
    policy = PlacementPolicySpec()
    engine_times, baseline_times = [], []
    for _ in range(runs):
        elapsed, decisions = timed(decide_many, requests, {None: policy}, snapshot)
        engine_times.append(elapsed)
        elapsed, baseline_placed = timed(first_fit, requests, policy, snapshot)
        baseline_times.append(elapsed)
    placed = sum(d.placed for d in decisions)  # type: ignore[attr-defined]
    engine_rate = workloads / statistics.median(engine_times)
    baseline_rate = workloads / statistics.median(baseline_times)
    print(
        f"Throughput: {workloads} workloads over {len(snapshot.targets)} targets "
        f"(50 pools, 100 edge clusters, 3 workspaces), median of {runs} runs, one process"
    )
    print(f"  decide_many (filter + score + explain): {engine_rate:10,.0f} decisions/s   placed {placed}")
    print(f"  naive first-fit (filter only):          {baseline_rate:10,.0f} decisions/s   placed {baseline_placed}")
    print(
        f"  ratio decide_many / first-fit: {engine_rate / baseline_rate:.2f}x   target >= 5,000 decisions/s: "
        f"{'met' if engine_rate >= 5000 else 'NOT met'}"
    )


def optimality(workloads: int = 200, pools: int = 20, edges: int = 8, workspaces: int = 2) -> None:
    snapshot = make_snapshot(pools, edges, workspaces, seed=5)

    # Halve capacity so the instance is a real packing problem, not "everyone gets the cheapest".
    def tightened(target: Target) -> Target:
        return replace(target, capacity=20 if target.kind is TargetKind.DATABRICKS else max(1, target.capacity // 2))

    snapshot = Snapshot(now=snapshot.now, targets=tuple(map(tightened, snapshot.targets)), signals=snapshot.signals)
    requests = make_requests(workloads, seed=13)
    policy = PlacementPolicySpec.model_validate(
        {"weights": {"cost": 100, "latency": 0, "dataGravity": 0, "carbon": 0, "preemption": 0}}
    )
    decisions = decide_many(requests, {None: policy}, snapshot)
    greedy_cost = sum(d.chosen.hourly_cost_usd for d in decisions if d.chosen is not None)
    greedy_placed = sum(d.placed for d in decisions)

    pairs = []
    for w, request in enumerate(requests):
        context = make_context(request, policy, snapshot)
        for t, target in enumerate(snapshot.targets):
            if (
                first_rejection(request, target, 10**9, context, skip=frozenset({capacity})) is None
                and claim_amount(request, target) <= target.capacity
            ):
                pairs.append((w, t, hourly_cost_usd(request, target), claim_amount(request, target)))
    n = len(pairs)
    rows_w = np.zeros((len(requests), n))
    rows_t = np.zeros((len(snapshot.targets), n))
    for j, (w, t, _, need) in enumerate(pairs):
        rows_w[w, j] = 1
        rows_t[t, j] = need
    costs = np.array([c for _, _, c, _ in pairs])
    constraints = [LinearConstraint(rows_w, 0, 1), LinearConstraint(rows_t, 0, [t.capacity for t in snapshot.targets])]
    integrality = np.ones(n)
    everyone = np.ones((1, n))
    # Most workloads placed, then the cheapest way to place that many.
    most = milp(-np.ones(n), constraints=constraints, integrality=integrality, bounds=Bounds(0, 1))
    max_placed = round(-most.fun)
    cheapest = milp(
        costs,
        constraints=[*constraints, LinearConstraint(everyone, max_placed, max_placed)],
        integrality=integrality,
        bounds=Bounds(0, 1),
        options={"time_limit": 120},
    )
    # The workloads decide_many placed (chosen by priority), assigned as cheaply as possible.
    placed_set = {w for w, d in enumerate(decisions_in_input_order(requests, decisions)) if d.placed}
    must = np.array([[1.0 if pairs[j][0] == w else 0.0 for j in range(n)] for w in sorted(placed_set)])
    same_set = milp(
        costs,
        constraints=[*constraints, LinearConstraint(must, 1, 1)],
        integrality=integrality,
        bounds=Bounds(0, 1),
        options={"time_limit": 120},
    )
    print(
        f"\nOptimality: {workloads} workloads x {len(snapshot.targets)} targets, cost-only policy, "
        f"{n} feasible pairs, capacity halved"
    )
    print(f"  decide_many (priority order):      placed {greedy_placed:4d}   ${greedy_cost:9.2f}/h")
    print(f"  MILP, same workloads, cheapest:     placed {greedy_placed:4d}   ${same_set.fun:9.2f}/h")
    print(f"  MILP, most workloads, cheapest:     placed {max_placed:4d}   ${cheapest.fun:9.2f}/h")
    print(
        f"  cost ratio decide_many / optimum for the same workloads: {greedy_cost / same_set.fun:.3f} (target <= 1.05)"
    )
    print(
        f"  placed ratio decide_many / max placeable: {greedy_placed / max_placed:.3f} "
        "(decide_many places by priority, the MILP by count)"
    )


def decisions_in_input_order(requests: list[PlacementRequest], decisions: list[Decision]) -> list[Decision]:
    by_key = {d.request.key: d for d in decisions}
    return [by_key[r.key] for r in requests]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-milp", action="store_true")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    throughput(args.workloads, args.runs)
    if not args.skip_milp:
        optimality()


if __name__ == "__main__":
    main()
