"""The GPU-pool runtime: a Job, or a Deployment and its Service, in the workload's namespace, owned by it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from mlplacement.api.constants import REVISION_ANNOTATIONS
from mlplacement.api.workload import MLWorkload, TargetKind
from mlplacement.config import OperatorConfig
from mlplacement.controller.ports import ApplyError, Cluster
from mlplacement.controller.slots import WriteSlots
from mlplacement.controller.state import FleetCache
from mlplacement.core.ledger import child_commitment
from mlplacement.core.manifests import build_children, child_name, revision_annotations
from mlplacement.core.snapshot import Target

Obj = Mapping[str, Any]
CHILD_KINDS = ("Job", "Deployment", "Service")  # whatever build_children may have made for a workload


class PoolRuntime:
    """Children on this cluster's GPU pools; the child watch (FleetCache.children) says which revision exists."""

    kind = TargetKind.GPU_POOL
    remote_cleanup = False  # children go with their owner (owner references)

    def __init__(
        self,
        config: OperatorConfig,
        cache: FleetCache,
        cluster: Cluster,
        writes: WriteSlots,
        held_back: Callable[[str], ApplyError | None] = lambda namespace: None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.cluster = cluster
        self.writes = writes
        # Asked once a write slot is ours: a namespace that refused a child a moment ago refuses this one too.
        self.held_back = held_back
        # Workload uid -> (target, children) built by reserve, written by the run that follows it.
        self._built: dict[str, tuple[tuple[str, str], list[dict[str, Any]]]] = {}

    def adopt(self, key: str, obj: Obj, workload: MLWorkload, status: Obj) -> bool:
        return False  # the child watch says what exists: a missing child is applied again

    def failover_grace(self, name: str) -> float:
        return self.config.pool_grace_seconds

    def unhealthy(self, name: str, seconds: float) -> str:
        return f"{self.kind.value} {name} has had no ready node for {seconds:.0f}s"

    def reserve(self, obj: Obj, workload: MLWorkload, target: Target) -> None:
        """Commit ``target``'s capacity to the workload now, before its children are written: a round planned
        while they are (an overlapping plan) must not count it free. Released if the write fails."""
        children = self._children(obj, workload, target)
        self._built[workload.metadata.uid or ""] = (target.key, children)
        self.cache.ledger.commit(workload.metadata.uid or "", child_commitment(children[0]))

    def _children(self, obj: Obj, workload: MLWorkload, target: Target) -> list[dict[str, Any]]:
        generation = (obj.get("metadata") or {}).get("generation")
        return build_children(
            obj,
            workload.spec,
            target,
            pool_label_key=self.pool_label_key(target.name),
            extra_annotations=revision_annotations(generation, target),
        )

    async def run(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> None:
        built = self._built.pop(workload.metadata.uid or "", None)
        children = built[1] if built is not None and built[0] == target.key else self._children(obj, workload, target)
        async with self.writes:
            refusal = self.held_back(str((obj.get("metadata") or {}).get("namespace") or ""))
            if refusal is not None:
                raise refusal
            for child in children:
                await asyncio.to_thread(self.cluster.apply_child, child)
        # Held from now until the child's pods are bound, it finishes or it is gone (core.ledger).
        self.cache.ledger.commit(workload.metadata.uid or "", child_commitment(children[0]))

    def is_current(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> bool:
        wanted = revision_annotations((obj.get("metadata") or {}).get("generation"), target)
        seen = self.cache.children.get(workload.metadata.uid or "")
        return seen == tuple(wanted[name] for name in REVISION_ANNOTATIONS)

    async def clean_up(self, key: str, uid: str, status: Obj) -> bool:
        return True

    async def stop(self, key: str, uid: str, status: Obj) -> bool:
        namespace, name = key.split("/", 1)
        async with self.writes:
            for kind in CHILD_KINDS:
                await asyncio.to_thread(self.cluster.delete_child, kind, namespace, child_name(name))
        return True

    def pool_label_key(self, pool: str) -> str:
        """The node label that names ``pool`` on this cluster's nodes (the first configured key that does)."""
        for node in self.cache.nodes.values():
            labels = (node.get("metadata") or {}).get("labels") or {}
            for key in self.config.pool_label_keys:
                if labels.get(key) == pool:
                    return key
        return self.config.pool_label_keys[0]
