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
