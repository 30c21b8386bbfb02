"""One runtime per target kind, behind one interface: the controller never branches on the kind of target.

A runtime starts a workload on a target of its kind (or brings what runs there to the workload's new
revision), says whether that is already done, and cleans up what lives outside this cluster when the
workload is deleted. GPU pools (controller.pool), edge clusters (controller.edges) and Databricks
workspaces (controller.databricks) implement it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mlplacement.api.workload import MLWorkload, TargetKind
from mlplacement.core.snapshot import Target

Obj = Mapping[str, Any]


class Runtime(Protocol):
    kind: TargetKind
    # Keeps something outside this cluster (a run, a remote copy): deletion waits for clean_up.
    remote_cleanup: bool

    async def run(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> None:
        """Start the workload on ``target``, or bring what runs there to its revision; raises when refused."""
        ...

    def is_current(self, key: str, obj: Obj, workload: MLWorkload, target: Target, status: Obj) -> bool:
        """Whether what runs on ``target`` is already at this workload's revision (nothing to do)."""
        ...

    def adopt(self, key: str, obj: Obj, workload: MLWorkload, status: Obj) -> bool:
        """After a restart: follow what ``status`` records as running instead of starting it again; True when
        adopted (the workload is then not placed)."""
        ...

    def failover_grace(self, name: str) -> float:
        """Seconds target ``name`` may be unhealthy before its workloads move (when its kind fails over)."""
        ...

    def unhealthy(self, name: str, seconds: float) -> str:
        """Why the workloads on target ``name`` move, unhealthy for ``seconds``: an Event's words."""
        ...

    async def clean_up(self, key: str, uid: str, status: Obj) -> bool:
        """The workload is deleted: remove what it left outside this cluster; True when nothing is left."""
        ...

    async def stop(self, key: str, uid: str, status: Obj) -> bool:
        """The workload was preempted: stop what runs for it on its target; True when nothing runs any more."""
        ...
