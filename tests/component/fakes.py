"""Fakes at the adapter boundary only: the home cluster's writes and the Event sink."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any


class FakeCluster:
    def __init__(self) -> None:
        self.status_patches: list[tuple[str, dict[str, Any]]] = []
        self.policy_patches: list[tuple[str, dict[str, Any]]] = []
        self.workspace_patches: list[tuple[str, dict[str, Any]]] = []
        self.edge_patches: list[tuple[str, dict[str, Any]]] = []
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.fail_status_writes = False
        self.children: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applies = 0

    def patch_workload_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        if self.fail_status_writes:
            raise ConnectionError("apiserver unreachable (the operator is going down)")
        self.status_patches.append((f"{namespace}/{name}", copy.deepcopy(dict(status))))

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.policy_patches.append((name, copy.deepcopy(dict(status))))

    def patch_workspace_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.workspace_patches.append((name, copy.deepcopy(dict(status))))

    def patch_edge_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.edge_patches.append((name, copy.deepcopy(dict(status))))

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get((namespace, name))

    def put_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """Store a Secret as the API returns it: values base64-encoded."""
        self.secrets[(namespace, name)] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}

    def apply_child(self, obj: Mapping[str, Any]) -> str:
        self.applies += 1
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        existed = key in self.children
        self.children[key] = copy.deepcopy(dict(obj))
        return "updated" if existed else "created"


class Events(list[tuple[str, str, str]]):
    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.append((type_, reason, message))


class Clock:
    """A monotonic clock the test moves by hand: grace periods and poll intervals pass without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
