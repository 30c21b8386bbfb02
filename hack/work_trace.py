"""Writes examples/work/trace.yaml: a day of training runs that say how much work they are (A100 GPU-hours),
half with a deadline, most checkpointing, on a fleet of H100, A100, spot A100 and L4 pools whose spot pool
is reclaimed every few hours. Deterministic: rerun to regenerate the committed file."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ruamel.yaml import YAML

OUT = Path(__file__).resolve().parent.parent / "examples" / "work" / "trace.yaml"
START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)  # the fleet's `now`: the replay starts there
HEADER = """# The work scenario (examples/work/README.md). Made with: python hack/work_trace.py
"""


def run(name: str, gpus: int, gpu_hours: float, checkpoint: int | None, deadline: datetime | None) -> dict[str, object]:
    intent: dict[str, object] = {
        "priority": 100,
        "dataRegion": "eu-west-1",
        "expectedGPUHours": gpu_hours,
        "referenceGPUProduct": "NVIDIA-A100",
        "spot": "Allowed",
    }
    if checkpoint is not None:
        intent["checkpointIntervalMinutes"] = checkpoint
    if deadline is not None:
        intent["deadline"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": name, "namespace": "team-research"},
        "spec": {
            "type": "Training",
            "image": "registry.example.com/team-research/train:1",
            "resources": {"gpus": gpus},
            "intent": intent,
            "targets": {"allowed": ["GPUPool"]},
        },
    }


def main() -> None:
    rng = random.Random(19)
    events: list[dict[str, object]] = []
    for index in range(80):
        at = round(rng.uniform(0, 20 * 3600), 1)
        gpus = rng.choice((1, 2, 4, 8))
        gpu_hours = float(rng.choice((4, 8, 16, 32, 64)))
        checkpoint = rng.choice((10, 30, None))
        deadline = None
        if rng.random() < 0.5:
            # Due a little after a run on A100s would end, had it started on arrival.
            slack = rng.uniform(1.5, 3.0)
            deadline = START + timedelta(seconds=at) + timedelta(hours=gpu_hours / gpus * slack)
        events.append(
            {"at": at, "type": "arrive", "workload": run(f"train-{index:02d}", gpus, gpu_hours, checkpoint, deadline)}
        )
    for hour in (3, 7, 11, 14, 18, 22):
        events.append({"at": hour * 3600.0 + round(rng.uniform(0, 1800), 1), "type": "preempt", "target": "a100-spot"})
    events.sort(key=lambda e: (e["at"], e["type"]))  # type: ignore[arg-type]
    yaml = YAML()
    yaml.default_flow_style = False
    with OUT.open("w") as handle:
        handle.write(HEADER)
        yaml.dump({"apiVersion": "mlplacement.io/trace/v1", "kind": "Trace", "seed": 19, "events": events}, handle)
    sys.stdout.write(f"wrote {OUT} ({len(events)} events)\n")


if __name__ == "__main__":
    main()
