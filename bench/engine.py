"""Placement engine benchmark (not a test): throughput against a naive first-fit, and cost against an exact MILP.

    .venv/bin/python bench/engine.py [--workloads 10000] [--runs 5]

1. Decisions/s of decide_many() for N queued workloads over 50 GPU pools + 100 edge clusters + 3 Databricks
   workspaces, against a naive first-fit baseline (every filter on every target, one workload at a time)
   measured in the same run on the same inputs. Prints the median of several runs and the ratio.
2. On five small instances (200 workloads x 30 targets), decide_many()'s total hourly cost under a cost-only
   policy against the optimum of scipy.optimize.milp under the same hard constraints (every filter but
   capacity decides which pairs are allowed; capacity is a constraint) for the same placed workloads, with
   the priority-order greedy alone (rebalance_batch=False) alongside.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
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


def optimality_instance(seed: int, workloads: int, pools: int, edges: int, workspaces: int) -> dict[str, float]:
    """One instance: decide_many's cost (with and without the batch step) against the MILP optimum."""
    snapshot = make_snapshot(pools, edges, workspaces, seed=seed)

    # Halve capacity so the instance is a real packing problem, not "everyone gets the cheapest".
    def tightened(target: Target) -> Target:
        return replace(target, capacity=20 if target.kind is TargetKind.DATABRICKS else max(1, target.capacity // 2))

    snapshot = Snapshot(now=snapshot.now, targets=tuple(map(tightened, snapshot.targets)), signals=snapshot.signals)
    requests = make_requests(workloads, seed=seed + 8)
    policy = PlacementPolicySpec.model_validate(
        {"weights": {"cost": 100, "latency": 0, "dataGravity": 0, "carbon": 0, "preemption": 0}}
    )
    elapsed, decisions = timed(decide_many, requests, {None: policy}, snapshot)
    greedy = decide_many(requests, {None: policy}, snapshot, rebalance_batch=False)
    engine_cost = sum(d.chosen.hourly_cost_usd for d in decisions if d.chosen is not None)  # type: ignore[attr-defined]
    greedy_cost = sum(d.chosen.hourly_cost_usd for d in greedy if d.chosen is not None)
    placed_set = {w for w, d in enumerate(decisions_in_input_order(requests, decisions)) if d.placed}  # type: ignore[arg-type]

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
    rows_t = np.zeros((len(snapshot.targets), n))
    for j, (_, t, _, need) in enumerate(pairs):
        rows_t[t, j] = need
    costs = np.array([c for _, _, c, _ in pairs])
    room = LinearConstraint(rows_t, 0, [t.capacity for t in snapshot.targets])
    # The workloads decide_many placed (chosen by priority), each exactly once, assigned as cheaply as possible.
    must = np.array([[1.0 if pairs[j][0] == w else 0.0 for j in range(n)] for w in sorted(placed_set)])
    optimum = milp(
        costs,
        constraints=[room, LinearConstraint(must, 1, 1)],
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": 120},
    )
    return {
        "placed": len(placed_set),
        "pairs": n,
        "engine": engine_cost,
        "greedy": greedy_cost,
        "optimum": optimum.fun,
        "seconds": elapsed,
    }


def optimality(seeds: tuple[int, ...] = (5, 1, 2, 3, 4), workloads: int = 200) -> None:
    print(
        f"\nOptimality: {workloads} workloads x 30 targets (20 pools, 8 edge, 2 workspaces, capacity halved), "
        "cost-only policy; MILP = scipy.optimize.milp placing the same workloads as cheaply as possible"
    )
    print("  seed  placed  pairs   decide_many $/h   (priority greedy alone)   MILP $/h   ratio   greedy ratio   ms")
    ratios, greedy_ratios = [], []
    for seed in seeds:
        r = optimality_instance(seed, workloads, 20, 8, 2)
        ratio, greedy_ratio = r["engine"] / r["optimum"], r["greedy"] / r["optimum"]
        ratios.append(ratio)
        greedy_ratios.append(greedy_ratio)
        print(
            f"  {seed:4d}  {r['placed']:6.0f}  {r['pairs']:5.0f}   {r['engine']:15.2f}   ({r['greedy']:21.2f})   "
            f"{r['optimum']:8.2f}   {ratio:5.3f}   {greedy_ratio:12.3f}   {r['seconds'] * 1000:4.0f}"
        )
    median, worst, greedy_median = statistics.median(ratios), max(ratios), statistics.median(greedy_ratios)
    print(
        f"  cost ratio decide_many / optimum: median {median:.3f}, worst {worst:.3f} (target <= 1.05: "
        f"{'met' if median <= 1.05 else 'NOT met'}); priority greedy alone: median {greedy_median:.3f}"
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
