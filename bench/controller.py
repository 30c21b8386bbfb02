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
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def one(size: int, traced: bool) -> dict[str, Any]:
    """Runs in a child process so that each measurement starts from the same empty heap. Timed runs are not
    traced (tracemalloc slows everything down); traced runs give memory and nothing else."""
    sys.path[0] = str(REPO)
    import mlplacement.handlers.operator  # noqa: F401  (what `mlplacement run` imports)

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from tests.component.test_economy import drain

    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    result, controller = drain(size, rounds=20, idle_rounds=20, validate_statuses=False)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "placed": result.placed,
        "per_placement": result.per_placement,
        "idle_calls": sum(result.calls_while_idle.values()),
        "by_call": {k: v / max(1, result.placed) for k, v in result.calls_while_placing.items()},
        "rate": result.placed / seconds,
        "baseline_rss_mb": baseline_rss,
    }
    if traced:
        fake = controller.cluster  # what the apiserver would hold is not the operator's memory
        for store in (fake.children, fake.status_patches, fake.statuses, fake.owned, fake.owned_types):
            store.clear()
        fake.policy_patches.clear()
        held, _peak = tracemalloc.get_traced_memory()
        top = tracemalloc.take_snapshot().statistics("filename")[:6]
        out["kb_per_workload"] = held / 1024 / size
        out["top"] = [f"{s.traceback[0].filename.rsplit('/', 2)[-1]} {s.size / 1024 / size:.1f}" for s in top]
    return out


def child(size: int, traced: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--one", str(size)] + (["--traced"] if traced else [])
    return dict(json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.traced)))
        return
    header = ("workloads", 10), ("calls/placement", 17), ("idle calls", 12), ("placements/s", 14)
    print("".join(f"{name:>{width}}" for name, width in (*header, ("KB/workload", 13), ("import RSS", 12))))
    for size in args.sizes:
        timed = [child(size, traced=False) for _ in range(args.runs)]
        traced = child(size, traced=True)
        median = {key: statistics.median(r[key] for r in timed) for key in ("per_placement", "idle_calls", "rate")}
        print(
            f"{size:>10}{median['per_placement']:>17.4f}{median['idle_calls']:>12.0f}{median['rate']:>14.0f}"
            f"{traced['kb_per_workload']:>13.1f}{timed[0]['baseline_rss_mb']:>10.1f}MB"
        )
        print(
            "           calls per placement: "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(timed[0]["by_call"].items()))
        )
        print("           KB per workload, by the file that allocated it: " + "; ".join(traced["top"]))
    print(
        f"placements/s: median of {args.runs} untraced runs (the controller and the counting fake, signing of the "
        "test workloads included); KB/workload: what the controller keeps after the drain (one traced run); "
        "import RSS: the process after importing what `mlplacement run` imports, before any workload"
    )


if __name__ == "__main__":
    main()
