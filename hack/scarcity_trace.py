"""Writes examples/scarcity/trace.yaml: a burst of 500 one-GPU jobs from team-burst in its first ten minutes,
a steady trickle from team-trickle (one job every five minutes for four hours), and one high-priority
two-GPU service arriving an hour in. Deterministic: rerun to regenerate the committed file."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ruamel.yaml import YAML

OUT = Path(__file__).resolve().parent.parent / "examples" / "scarcity" / "trace.yaml"
HEADER = """# The scarcity scenario (examples/scarcity/README.md). Made with: python hack/scarcity_trace.py
"""


def job(name: str, namespace: str, priority: int, gpus: int = 1) -> dict[str, object]:
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "type": "Batch",
            "image": f"registry.example.com/{namespace}/job:1",
            "resources": {"gpus": gpus, "gpuProduct": "NVIDIA-A100"},
            "intent": {"priority": priority, "dataRegion": "eu-west-1"},
            "targets": {"allowed": ["GPUPool"]},
        },
    }


def main() -> None:
    rng = random.Random(16)
    events: list[dict[str, object]] = []
    for index in range(500):
        at = round(rng.uniform(0, 600), 1)
        events.append(
            {
                "at": at,
                "type": "arrive",
                "durationMinutes": 30,
                "workload": job(f"burst-{index:03d}", "team-burst", 100),
            }
        )
    for index in range(48):
        at = 300.0 + index * 300
        events.append(
            {
                "at": at,
                "type": "arrive",
                "durationMinutes": 20,
                "workload": job(f"trickle-{index:02d}", "team-trickle", 100),
            }
        )
    events.append(
        {
            "at": 3600.0,
            "type": "arrive",
            "durationMinutes": 240,
            "workload": job("fraud-scoring", "team-serving", 1000, gpus=2),
        }
    )
    events.sort(key=lambda e: (e["at"], str(e["workload"]["metadata"]["name"])))  # type: ignore[index]
    yaml = YAML()
    yaml.default_flow_style = False
    with OUT.open("w") as handle:
        handle.write(HEADER)
        yaml.dump({"apiVersion": "mlplacement.io/trace/v1", "kind": "Trace", "seed": 16, "events": events}, handle)
    sys.stdout.write(f"wrote {OUT} ({len(events)} events)\n")


if __name__ == "__main__":
    main()
