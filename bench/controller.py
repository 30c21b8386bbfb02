"""The controller in one process, at the cluster port (no apiserver): calls, time and memory per workload.

    .venv/bin/python bench/controller.py [--sizes 1000 10000] [--runs 3]

For each size, a fresh process drains that many signed 1-GPU workloads over 20 rounds, then runs 20 idle
rounds (tests/component/test_economy.py's scenario, with the counting fake cluster). Printed per size,
medians over the runs: API calls per placement (by verb and resource) and in the idle rounds, placements/s of
the controller alone, and memory per workload the controller keeps (tracemalloc, and the process's peak RSS).
The baseline in the same run is the process before any workload: its RSS after importing what
`mlplacement run` imports. bench/drain.py measures the same on a real control plane.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one(size: int) -> dict[str, float]:
    """Runs in a child process so that each measurement starts from the same empty heap."""
    sys.path[0] = str(REPO)
    from tests.component.test_economy import drain

    import mlplacement.handlers.operator  # noqa: F401  (what `mlplacement run` imports)

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    started = time.perf_counter()
    result, controller = drain(size, rounds=20, idle_rounds=20, validate_statuses=False)
    seconds = time.perf_counter() - started
    fake = controller.cluster  # what the apiserver would hold is not the operator's memory
    fake.children.clear(), fake.status_patches.clear(), fake.statuses.clear(), fake.owned.clear()
    fake.owned_types.clear(), fake.policy_patches.clear()
    held, _peak = tracemalloc.get_traced_memory()
    top = tracemalloc.take_snapshot().statistics("filename")[:6]
    tracemalloc.stop()
    del controller
    return {
        "placed": result.placed,
        "per_placement": result.per_placement,
        "idle_calls": sum(result.calls_while_idle.values()),
        "by_call": {k: v / max(1, result.placed) for k, v in result.calls_while_placing.items()},
        "rate": result.placed / seconds,
        "kb_per_workload": held / 1024 / size,
        "baseline_rss_mb": baseline_rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "top": [
            f"{stat.traceback[0].filename.rsplit('site-packages/', 1)[-1]} {stat.size / 1024 / size:.1f}"
            for stat in top
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    print(
        f"{'workloads':>10}{'calls/placement':>17}{'idle calls':>12}{'placements/s':>14}{'KB/workload':>13}"
        f"{'baseline RSS':>14}{'peak RSS':>10}"
    )
    for size in args.sizes:
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--one", str(size)], capture_output=True, text=True, check=True
                ).stdout
            )
            for _ in range(args.runs)
        ]
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key not in ("by_call", "top")}
        print(
            f"{size:>10}{median['per_placement']:>17.4f}{median['idle_calls']:>12.0f}{median['rate']:>14.0f}"
            f"{median['kb_per_workload']:>13.1f}{median['baseline_rss_mb']:>12.1f}MB{median['peak_rss_mb']:>8.1f}MB"
        )
        print("           " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(runs[0]["by_call"].items())))
        print("           KB/workload by where it was allocated: " + "; ".join(runs[0]["top"]))
    print("(medians of", args.runs, "runs; peak RSS / baseline RSS is the cost of the workloads in this process)")


if __name__ == "__main__":
    main()
