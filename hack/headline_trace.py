"""Writes examples/headline/trace.yaml: a day of latency-class inference that declares its load (requests a
second at its peak, from several regions, following a day's curve) next to batch work, on the embedded sample
fleet: what the seeds' headline (tail latency and egress against centralizing everything) is measured on.

Each service's p99 target is what its own replicas can serve on its reference GPU (the M/M/c tail of
core.latency at its peak load, no network) plus a network budget its team picked: a target a team could set,
not one no placement can meet. Deterministic: rerun to regenerate."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))
from mlplacement.core.latency import Queue, Served

OUT = Path(__file__).resolve().parent.parent / "examples" / "headline" / "trace.yaml"
HEADER = '# The headline scenario (README, "The seeds\' headline"). Made with: python hack/headline_trace.py\n'
# Callers by the data's region: most near it, some in the neighbouring region, a few (0.5 %, under the 1 % a p99
# ignores) across the Atlantic.
CALLERS = {
    "eu-west-1": {"eu-west-1": 0.795, "eu-central-1": 0.2, "us-east-1": 0.005},
    "eu-central-1": {"eu-central-1": 0.795, "eu-west-1": 0.2, "us-east-1": 0.005},
    "us-east-1": {"us-east-1": 0.995, "eu-west-1": 0.005},
}
# Callers' local time against UTC, by region; the day's load is lowest at 04:00 and highest at 16:00 local.
UTC_OFFSET_HOURS = {"eu-west-1": 0, "eu-central-1": 1, "us-east-1": -5}
NIGHT_SHARE = 0.3  # the load at 04:00 local, as a share of the peak


def day_curve(region: str) -> list[float]:
    """Share of the peak request rate in each UTC hour for callers in ``region``."""
    curve = []
    for hour in range(24):
        local = (hour + UTC_OFFSET_HOURS[region]) % 24
        curve.append(round(NIGHT_SHARE + (1 - NIGHT_SHARE) * (0.5 - 0.5 * math.cos(2 * math.pi * (local - 4) / 24)), 3))
    return curve


def own_p99_ms(replicas: int, rate: float, service_ms: float) -> float:
    """The p99 its replicas give on the reference GPU at the peak rate, with no network in front."""
    return Served(Queue(replicas, rate, service_ms), {"here": 0.0}, {"here": 1.0}).percentile_ms(0.99)


def inference(rng: random.Random, index: int) -> dict[str, object]:
    region = rng.choice(sorted(CALLERS))
    team = rng.choice(["team-payments", "team-search", "team-recsys"])
    replicas = rng.choice([2, 2, 3, 4])
    service_ms = rng.choice([15, 20, 30])
    rate = round(rng.uniform(10, 25) * replicas, 1)
    budget_ms = rng.choice([25, 40, 60])  # the network and headroom its team allows above its own p99
    target_ms = 5 * math.ceil((own_p99_ms(replicas, rate, service_ms) + budget_ms) / 5)
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
                "latencyTargetMs": target_ms,
                "dataRegion": region,
                "dataSizeGB": 5,
                "priority": 600,
                "requestsPerSecond": rate,
                "requestsFrom": CALLERS[region],
                "serviceTimeMs": service_ms,
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
        service = inference(rng, index)
        region = service["spec"]["intent"]["dataRegion"]  # type: ignore[index]
        minutes = rng.randint(120, 480)
        events.append(
            {
                "at": at,
                "type": "arrive",
                "durationMinutes": minutes,
                "workload": service,
                "requestCurve": day_curve(region),
            }
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
