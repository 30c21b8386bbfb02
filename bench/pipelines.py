"""The pipeline controller at the cluster port (no apiserver): API calls per stage, and what a round costs
when one pipeline has news against the periodic sweep of all of them.

    .venv/bin/python bench/pipelines.py [--pipelines 100 1000] [--stages 5] [--runs 5]

For each size: that many signed pipelines of a chain of stages are planned; their first stages created; then
one stage's workload reports success. Printed, medians over the runs: creates and status writes per stage
released, API calls in an idle sweep (expected 0), the time of the round after one stage event (only that
pipeline is planned) and of a full sweep, and their ratio. The sweep is the baseline in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def measure(pipelines: int, stages: int) -> dict[str, float]:
    sys.path[0] = str(REPO)
    from tests.builders import make_pipeline, make_stage
    from tests.component.fakes import Clock, Events, FakeCluster
    from tests.component.test_workload_controller import KEY, signed

    from mlplacement.config import OperatorConfig
    from mlplacement.controller.pipelines import PipelineController
    from mlplacement.controller.state import FleetCache
    from mlplacement.core import keyring as keyring_core

    config = OperatorConfig()
    cache = FleetCache(config=config)
    cache.keyring = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
    cluster = FakeCluster()
    cluster.validate_statuses = False

    async def readmit(keys: Any) -> None:
        return None

    controller = PipelineController(config, cache, cluster, Events(), readmit, monotonic=Clock())

    async def scenario() -> dict[str, float]:
        for index in range(pipelines):
            chain = [make_stage("s0")] + [make_stage(f"s{i}", depends_on=[f"s{i - 1}"]) for i in range(1, stages)]
            obj = make_pipeline(*chain, name=f"p{index}")
            obj["metadata"].update(uid=f"uid-p{index}", generation=1)
            await controller.on_pipeline_event("ADDED", signed(obj))
        await controller.round()
        released = len(cluster.stage_creates)
        writes = cluster.pipeline_status_writes
        before = (len(cluster.stage_creates), cluster.pipeline_status_writes)
        started = time.perf_counter()
        await controller.round()  # nothing changed: the periodic sweep
        sweep = time.perf_counter() - started
        idle_calls = len(cluster.stage_creates) + cluster.pipeline_status_writes - sum(before)
        stage = dict(cluster.workloads["team-a/p0-s0-1"])
        stage["status"] = {"phase": "Succeeded"}
        await controller.on_stage_event("MODIFIED", stage)
        started = time.perf_counter()
        await controller.round(set(controller._dirty))  # what the loop does on news: the dirty pipelines
        news = time.perf_counter() - started
        return {
            "creates_per_stage": released / pipelines,
            "status_writes_per_stage": writes / released,
            "idle_calls": float(idle_calls),
            "round_after_one_event_ms": news * 1000,
            "sweep_ms": sweep * 1000,
        }

    return asyncio.run(scenario())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--stages", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'pipelines':>9}  {'creates/stage':>13}  {'writes/stage':>12}  {'idle calls':>10}  "
        f"{'1 event ms':>10}  {'sweep ms':>9}  {'ratio':>6}"
    )
    for size in args.pipelines:
        results = [measure(size, args.stages) for _ in range(args.runs)]
        median = {key: statistics.median(r[key] for r in results) for key in results[0]}
        ratio = median["round_after_one_event_ms"] / median["sweep_ms"]
        print(
            f"{size:>9}  {median['creates_per_stage']:>13.2f}  {median['status_writes_per_stage']:>12.2f}  "
            f"{median['idle_calls']:>10.0f}  {median['round_after_one_event_ms']:>10.2f}  "
            f"{median['sweep_ms']:>9.1f}  {ratio:>6.3f}"
        )


if __name__ == "__main__":
    main()
