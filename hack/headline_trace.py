"""Writes examples/headline/trace.yaml: a day of latency-class inference that declares its load (requests a
second, from several regions) next to batch work, on the embedded sample fleet: what the seeds' headline
(tail latency and egress against centralizing everything) is measured on. Deterministic: rerun to regenerate."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ruamel.yaml import YAML

OUT = Path(__file__).resolve().parent.parent / "examples" / "headline" / "trace.yaml"
HEADER = '# The headline scenario (README, "The seeds\' headline"). Made with: python hack/headline_trace.py\n'
# Callers by the data's region: most near it, some in the neighbouring region, a few (0.5 %, under the 1 % a p99
# ignores) across the Atlantic.
CALLERS = {
    "eu-west-1": {"eu-west-1": 0.795, "eu-central-1": 0.2, "us-east-1": 0.005},
    "eu-central-1": {"eu-central-1": 0.795, "eu-west-1": 0.2, "us-east-1": 0.005},
    "us-east-1": {"us-east-1": 0.995, "eu-west-1": 0.005},
}


def inference(rng: random.Random, index: int) -> dict[str, object]:
    region = rng.choice(sorted(CALLERS))
    team = rng.choice(["team-payments", "team-search", "team-recsys"])
    replicas = rng.choice([2, 2, 3, 4])
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": f"serve-{index:03d}", "namespace": team},
        "spec": {
            "type": "Inference",
            "image": f"registry.example.com/{team}/serve:1",
            "replicas": replicas,
            "resources": {"gpus": 1},
            "model": {"uri": f"s3://{team}/models/{index}/", "sizeGB": rng.choice([1.0, 1.5, 4.0, 7.0])},
            "intent": {
                "latencyClass": "Realtime",
                "latencyTargetMs": rng.choice([60, 80, 100, 120]),
                "dataRegion": region,
                "dataSizeGB": 5,
                "priority": 600,
                "requestsPerSecond": round(rng.uniform(10, 25) * replicas, 1),
                "requestsFrom": CALLERS[region],
                "serviceTimeMs": rng.choice([15, 20, 30]),
            },
        },
    }


def batch(rng: random.Random, index: int) -> dict[str, object]:
    region = rng.choice(sorted(CALLERS))
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": f"batch-{index:03d}", "namespace": "team-analytics"},
        "spec": {
            "type": "Batch",
            "image": "registry.example.com/team-analytics/job:1",
            "resources": {"gpus": rng.choice([1, 2, 4])},
            "intent": {"dataRegion": region, "dataSizeGB": rng.choice([50, 200, 800]), "priority": 100},
            "targets": {"allowed": ["GPUPool"]},
        },
    }


def main() -> None:
    rng = random.Random(33)
    events = []
    for index in range(30):
        at = round(rng.uniform(0, 18 * 3600), 1)
        events.append(
            {"at": at, "type": "arrive", "durationMinutes": rng.randint(120, 480), "workload": inference(rng, index)}
        )
    for index in range(40):
        at = round(rng.uniform(0, 20 * 3600), 1)
        events.append(
            {"at": at, "type": "arrive", "durationMinutes": rng.randint(30, 240), "workload": batch(rng, index)}
        )
    events.sort(key=lambda e: e["at"])
    trace = {"apiVersion": "mlplacement.io/trace/v1", "kind": "Trace", "seed": 33, "events": events}
    yaml = YAML()
    yaml.default_flow_style = False
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as handle:
        handle.write(HEADER)
        yaml.dump(trace, handle)
    print(f"wrote {OUT} ({len(events)} events)", file=sys.stderr)


if __name__ == "__main__":
    main()
