"""Seeded generators of realistic workload manifests, for the demo, benchmarks and property tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from mlplacement.api.constants import API_VERSION

REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")
TEAMS = ("payments", "recsys", "search", "vision", "speech", "ads")


def _realtime(rng: random.Random) -> dict[str, Any]:
    return {
        "type": "Inference",
        "resources": {"gpus": 1, "gpuProduct": "NVIDIA-L4", "cpu": 2, "memory": "8Gi"},
        "replicas": rng.choice((1, 1, 2)),
        "model": {"uri": "s3://models/realtime", "sizeGB": round(rng.uniform(0.1, 1.9), 1)},
        "intent": {"latencyClass": "Realtime", "latencyTargetMs": rng.choice((20, 30, 40, 45)), "spot": "Never"},
    }


def _interactive(rng: random.Random) -> dict[str, Any]:
    return {
        "type": "Inference",
        "resources": {"gpus": 1, "cpu": 4, "memory": "16Gi"},
        "replicas": rng.choice((1, 2, 3)),
        "model": {"uri": "s3://models/interactive", "sizeGB": round(rng.uniform(1, 12), 1)},
        "intent": {"latencyClass": "Interactive", "latencyTargetMs": rng.choice((150, 300, 800))},
    }


def _daily_training(rng: random.Random) -> dict[str, Any]:
    return {
        "type": "Training",
        "resources": {"gpus": rng.choice((4, 8)), "cpu": 16, "memory": "64Gi"},
        "model": {"uri": "s3://models/train", "sizeGB": round(rng.uniform(3, 20), 1)},
        "intent": {
            "dataSizeGB": rng.choice((50, 200, 800)),
            "trainingFrequency": rng.choice(("Daily", "Weekly")),
            "costTolerance": "Low",
        },
        "targets": {"allowed": ["Databricks", "GPUPool"]},
        "databricks": {"task": {"spark_python_task": {"python_file": "dbfs:/jobs/train.py"}}},
    }


def _spot_batch(rng: random.Random) -> dict[str, Any]:
    return {
        "type": "Batch",
        "resources": {"gpus": rng.choice((1, 2, 4)), "gpuProduct": "NVIDIA-A10G"},
        "intent": {"dataSizeGB": rng.choice((5, 20, 120)), "spot": "Preferred", "costTolerance": "Low"},
        "targets": {"allowed": ["GPUPool"]},
    }


def _once_training(rng: random.Random) -> dict[str, Any]:
    return {
        "type": "Training",
        "resources": {"gpus": rng.choice((2, 4, 8))},
        "model": {"uri": "s3://models/experiment", "sizeGB": round(rng.uniform(0.5, 8), 1)},
        "intent": {"dataSizeGB": rng.choice((10, 100)), "costTolerance": rng.choice(("Low", "Medium", "High"))},
    }


Template = tuple[str, Callable[[random.Random], dict[str, Any]], int]

TEMPLATES: tuple[Template, ...] = (
    ("realtime", _realtime, 3),
    ("interactive", _interactive, 2),
    ("train", _daily_training, 2),
    ("batch", _spot_batch, 3),
    ("experiment", _once_training, 2),
)


def generate_workloads(count: int, seed: int = 7, regions: tuple[str, ...] = REGIONS) -> list[dict[str, Any]]:
    """``count`` MLWorkload manifests (plain dicts) from a weighted mix of realistic shapes."""
    rng = random.Random(seed)
    weights = [weight for _, _, weight in TEMPLATES]
    manifests = []
    for index in range(count):
        name, make, _ = rng.choices(TEMPLATES, weights=weights)[0]
        spec = make(rng)
        team = rng.choice(TEAMS)
        spec["image"] = f"registry.example.com/{team}/{name}:1"
        spec["intent"] = {**spec["intent"], "dataRegion": rng.choice(regions), "priority": rng.randrange(0, 1000)}
        spec["costTags"] = {"team": team}
        manifests.append(
            {
                "apiVersion": API_VERSION,
                "kind": "MLWorkload",
                "metadata": {"name": f"{name}-{index:05d}", "namespace": f"team-{team}"},
                "spec": spec,
            }
        )
    return manifests
