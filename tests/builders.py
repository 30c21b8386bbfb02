"""Fluent-ish builders for test objects: make_workload(...), make_policy(...), keys."""

from __future__ import annotations

import copy
from typing import Any

from mlplacement.core import keyring as keyring_core


def make_workload(name: str = "fraud-scorer", namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    base_spec: dict[str, Any] = {
        "type": "Batch",
        "image": "registry.example.com/team-a/job:1",
        "resources": {"gpus": 1, "cpu": 2, "memory": "8Gi"},
        "intent": {"dataRegion": "eu-west-1", "dataSizeGB": 2.0, "priority": 10},
        "args": ["--epochs", "3"],
    }
    base_spec.update(spec)
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": name, "namespace": namespace, "labels": {"team": "a"}},
        "spec": base_spec,
    }


def make_pipeline(*stages: dict[str, Any], name: str = "recsys", namespace: str = "team-a") -> dict[str, Any]:
    """An MLPipeline; by default prepare -> train -> serve, each passing one artifact on."""
    if not stages:
        stages = (
            make_stage("prepare", outputs=[{"name": "features", "uri": "s3://data/features/"}]),
            make_stage(
                "train",
                depends_on=["prepare"],
                inputs=[{"name": "features", "fromStage": "prepare"}],
                outputs=[{"name": "model", "uri": "s3://models/recsys/"}],
            ),
            make_stage("serve", depends_on=["train"], inputs=[{"name": "model", "fromStage": "train"}]),
        )
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLPipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"stages": list(stages)},
    }


def make_stage(
    name: str,
    depends_on: list[str] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    template = make_workload(name)["spec"]
    template.update(extra.pop("template", {}))
    stage: dict[str, Any] = {"name": name, "template": template, **extra}
    for key, value in (("dependsOn", depends_on), ("inputs", inputs), ("outputs", outputs)):
        if value:
            stage[key] = value
    return stage


def make_policy(name: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "PlacementPolicy",
        "metadata": {"name": name, "labels": {"mlplacement.io/default-policy": "true"}},
        "spec": spec,
    }


def with_annotations(obj: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("annotations", {}).update(annotations)
    return out


def keyring_of(*keys: tuple[str, keyring_core.PrivateKey], **validity: str) -> keyring_core.Keyring:
    """A keyring trusting the public halves of ``keys``; validity like platform_notAfter='2026-01-01T00:00:00Z'."""
    data: dict[str, str | bytes] = {f"{key_id}.pem": keyring_core.public_pem(key) for key_id, key in keys}
    for entry, value in validity.items():
        key_id, bound = entry.rsplit("_", 1)
        data[f"{key_id}.{bound}"] = value
    return keyring_core.parse_keyring(data)


def make_request(**overrides: Any) -> Any:
    """A PlacementRequest with sensible defaults (a 1-GPU batch job with data in eu-west-1)."""
    from mlplacement.api.workload import (
        CostTolerance,
        LatencyClass,
        SpotPreference,
        TargetKind,
        TrainingFrequency,
        WorkloadType,
    )
    from mlplacement.core.placement import PlacementRequest

    fields: dict[str, Any] = {
        "key": "team-a/job",
        "type": WorkloadType.BATCH,
        "gpus": 1,
        "replicas": 1,
        "gpu_product": None,
        "model_size_gb": 0.5,
        "latency_class": LatencyClass.BATCH,
        "latency_target_ms": None,
        "data_region": "eu-west-1",
        "data_size_gb": 10.0,
        "cost_tolerance": CostTolerance.MEDIUM,
        "max_hourly_cost_usd": None,
        "spot": SpotPreference.ALLOWED,
        "training_frequency": TrainingFrequency.ONCE,
        "priority": 100,
        "allowed": frozenset(TargetKind),
        "pinned": None,
        "policy": None,
        "databricks_task": True,
    }
    fields.update(overrides)
    return PlacementRequest(**fields)


def pool(name: str, region: str = "eu-west-1", free: int = 8, **overrides: Any) -> Any:
    from mlplacement.api.workload import TargetKind
    from mlplacement.core.snapshot import Target

    fields: dict[str, Any] = {
        "kind": TargetKind.GPU_POOL,
        "name": name,
        "region": region,
        "capacity": free,
        "gpus_total": free,
        "gpu_products": frozenset({"NVIDIA-A100"}),
        "gpu_hour_usd": 3.0,
    }
    fields.update(overrides)
    return Target(**fields)


def edge(name: str, region: str = "eu-central-1", free: int = 2, **overrides: Any) -> Any:
    from mlplacement.api.workload import TargetKind
    from mlplacement.core.snapshot import Target

    fields: dict[str, Any] = {
        "kind": TargetKind.EDGE,
        "name": name,
        "region": region,
        "capacity": free,
        "gpus_total": free,
        "gpu_products": frozenset({"NVIDIA-L4"}),
        "max_model_size_gb": 2.0,
        "gpu_hour_usd": 0.4,
        "base_hour_usd": 0.05,
    }
    fields.update(overrides)
    return Target(**fields)


def workspace(name: str, region: str = "eu-west-1", slots: int = 5, **overrides: Any) -> Any:
    from mlplacement.api.workload import TargetKind
    from mlplacement.core.snapshot import Target

    fields: dict[str, Any] = {
        "kind": TargetKind.DATABRICKS,
        "name": name,
        "region": region,
        "capacity": slots,
        "gpu_hour_usd": 2.5,
        "base_hour_usd": 1.0,
    }
    fields.update(overrides)
    return Target(**fields)


def make_signals(**overrides: Any) -> Any:
    from datetime import UTC, datetime

    from mlplacement.api.signals import Signals

    data: dict[str, Any] = {
        "updatedAt": datetime(2026, 11, 22, 11, 55, tzinfo=UTC),
        "ttlSeconds": 900,
        "latencyMs": {"eu-west-1": {"eu-central-1": 24, "us-east-1": 76}, "eu-central-1": {"us-east-1": 92}},
        "carbonGPerKWh": {"eu-west-1": 280, "eu-central-1": 360, "us-east-1": 410},
    }
    data.update(overrides)
    return Signals.model_validate(data)


def make_fleet(*targets: Any, signals: Any = "default", now: Any = None) -> Any:
    """A Snapshot of ``targets`` at 2026-11-22T12:00Z with fresh default signals."""
    from datetime import UTC, datetime

    from mlplacement.core.snapshot import Snapshot

    return Snapshot(
        now=now or datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        targets=tuple(targets),
        signals=make_signals() if signals == "default" else signals,
    )


def edge_kubeconfig(server: str, ca_pem: bytes, **user: Any) -> str:
    """An EdgeCluster kubeconfig (JSON is YAML) with inline CA data and, by default, an inline token."""
    import base64
    import json

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "edge",
            "clusters": [
                {
                    "name": "edge",
                    "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
                }
            ],
            "users": [{"name": "op", "user": user}],
            "contexts": [{"name": "edge", "context": {"cluster": "edge", "user": "op"}}],
        }
    )
