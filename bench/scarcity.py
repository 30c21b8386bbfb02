"""What scarcity costs decide_many (not a test): fair-share order, team quotas and preemption, against plain
arrival order, measured in the same run on the same inputs (bench/engine.py's fleet and workloads).

    .venv/bin/python bench/scarcity.py [--workloads 5000] [--running 500] [--runs 5]

Variants, run in turn (A B C D A B C D ...) so drift hits all alike; medians of decisions/s and each one's
ratio to A:
  A  arrival order: fairSharing off, no quotas, nothing running (the engine before scarcity)
  B  fair share (the default), nothing running
  C  fair share + a quota per team + ``--running`` workloads holding capacity (quota usage counts them)
  D  C + preemption on (every workload that fits nowhere looks for victims)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import make_requests, make_snapshot
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import TargetKind
from mlplacement.core.placement import decide_many
from mlplacement.core.scarcity import Running


def running_on(snapshot, namespaces: list[str], count: int, seed: int = 11) -> list[Running]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    pools = [t for t in snapshot.targets if t.kind is TargetKind.GPU_POOL]
    out = []
    for index in range(count):
        pool = rng.choice(pools)
        gpus = rng.choice((1, 1, 2, 4))
        namespace = rng.choice(namespaces)
        out.append(
            Running(
                key=f"{namespace}/running-{index}",
                namespace=namespace,
                priority=rng.randint(0, 1000),
                target=pool.key,
                claim=gpus,
                gpus=gpus,
                product=min(pool.gpu_products) if pool.gpu_products else None,
                hourly_usd=gpus * pool.gpu_hour_usd,
                started=float(index),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=5000)
    parser.add_argument("--running", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    snapshot = make_snapshot(50, 100, 3)
    requests = make_requests(args.workloads)
    namespaces = sorted({r.key.partition("/")[0] for r in requests})
    now = running_on(snapshot, namespaces, args.running)
    # Each team's nominal share of the pools' GPUs, so quotas bind for some and leave room to borrow for others.
    total = sum(t.gpus_total for t in snapshot.targets if t.kind is TargetKind.GPU_POOL)
    share = total // len(namespaces)
    quotas = [{"name": ns, "namespaces": [ns], "nominal": {"gpus": share}} for ns in namespaces]
    variants = {
        "A arrival order": (PlacementPolicySpec.model_validate({"fairSharing": False}), []),
        "B fair share": (PlacementPolicySpec(), []),
        "C + quotas, running": (PlacementPolicySpec.model_validate({"quotas": quotas}), now),
        "D + preemption": (
            PlacementPolicySpec.model_validate({"quotas": quotas, "preemption": {"enabled": True}}),
            now,
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    placed: dict[str, int] = {}
    preempted: dict[str, int] = {}
    for policy, running in variants.values():  # warm-up, not counted
        decide_many(requests, {None: policy}, snapshot, running=running)
    for _ in range(args.runs):
        for name, (policy, running) in variants.items():
            started = time.perf_counter()
            decisions = decide_many(requests, {None: policy}, snapshot, running=running)
            times[name].append(time.perf_counter() - started)
            placed[name] = sum(d.placed for d in decisions)
            preempted[name] = sum(len(d.preempts) for d in decisions)
    print(
        f"Python {sys.version.split()[0]}; {args.workloads} workloads, {len(namespaces)} teams, "
        f"{len(snapshot.targets)} targets, {args.running} running; median of {args.runs} runs"
    )
    base = args.workloads / statistics.median(times["A arrival order"])
    for name, samples in times.items():
        rate = args.workloads / statistics.median(samples)
        print(
            f"  {name:22} {rate:9,.0f} decisions/s  ratio to A {rate / base:5.2f}  "
            f"placed {placed[name]:5}  preempted {preempted[name]}"
        )


if __name__ == "__main__":
    main()
