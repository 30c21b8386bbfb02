"""Edge clusters, pure: what a probe found, the EdgeCluster status it leads to, and when that is worth writing.

A probe runs every few seconds per cluster; writing its timestamp each time would be heartbeat churn on the
API server and in Argo CD. Status is written when something a person or the placer cares about changes
(conditions, node and GPU counts, failures, a large RTT move) and otherwise refreshed rarely. The snapshot
reads the live result from memory, so placement never waits for a status write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlplacement.api.constants import GPU_RESOURCE, ConditionType
from mlplacement.core.snapshot import gpu_count, gpus_used_by_node, node_health_problem
from mlplacement.core.status import set_condition

# Reasons on EdgeCluster conditions (stable: alerts match on them).
PROBE_SUCCEEDED = "ProbeSucceeded"
PROBE_FAILED = "ProbeFailed"
NOT_READY = "ApiServerNotReady"
NO_READY_NODES = "NoReadyNodes"
CREDENTIALS_INVALID = "CredentialsInvalid"
# An RTT move smaller than both of these is noise, not news.
RTT_CHANGE_MS = 20.0
RTT_CHANGE_RATIO = 0.5
# A status with nothing new is still refreshed after this many probe intervals, so lastProbeTime says
# "alive" to a human without a write per probe.
REFRESH_INTERVALS = 10
# The fields whose change is always written.
# Node shapes in status for at most this many GPU nodes (an edge cluster is small; the status stays small too).
MAX_NODES_REPORTED = 256
MEANINGFUL_FIELDS = (
    "readyNodes",
    "gpusAllocatable",
    "gpusFree",
    "gpusByNode",
    "freeGPUsByNode",
    "consecutiveFailures",
    "message",
)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one edge cluster. ``error`` names what failed, never a credential or a response body."""

    reachable: bool
    api_ready: bool = False
    rtt_ms: float | None = None
    ready_nodes: int = 0
    gpus_allocatable: int = 0
    gpus_free: int = 0
    # Per ready node, smallest first: its GPUs, and its free GPUs (a pod's GPUs must fit one node).
    gpus_by_node: tuple[int, ...] = ()
    free_gpus_by_node: tuple[int, ...] = ()
    error: str = ""
    # GPUs of bound, running pods per workload uid (our children's): the part of a commitment they now hold.
    bound_by_workload: Mapping[str, int] = field(default_factory=dict)

    @property
    def placeable(self) -> bool:
        return self.reachable and self.api_ready and self.ready_nodes > 0


@dataclass(frozen=True, slots=True)
class EdgeCapacity:
    """What an edge cluster's ready nodes have: how many, their GPUs and free GPUs, in all and node by node."""

    ready_nodes: int
    gpus_by_node: tuple[int, ...]  # smallest first
    free_gpus_by_node: tuple[int, ...]  # smallest first


def capacity_of(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> EdgeCapacity:
    """The edge cluster's ready nodes, their GPUs and free GPUs, from its Nodes and Pods."""
    used = gpus_used_by_node(pods)
    ready = 0
    sizes: list[int] = []
    free: list[int] = []
    for node in nodes:
        if node_health_problem(node) is not None:
            continue
        gpus = gpu_count(((node.get("status") or {}).get("allocatable") or {}).get(GPU_RESOURCE))
        name = (node.get("metadata") or {}).get("name", "")
        ready += 1
        if gpus > 0:
            sizes.append(gpus)
            free.append(max(0, gpus - used.get(name, 0)))
    return EdgeCapacity(ready, tuple(sorted(sizes)), tuple(sorted(free)))


def edge_status(
    current: Mapping[str, Any] | None,
    result: ProbeResult | None,
    failures: int,
    now: datetime,
    generation: int | None,
    credentials_error: str = "",
) -> dict[str, Any]:
    """The EdgeCluster status after a probe (``result``) or a credentials problem (``result`` None).

    Counts from the last good probe are kept through failures: they say what the cluster had, and the
    Ready condition already says it cannot take work now.
    """
    current = current or {}
    conditions = list(current.get("conditions") or [])
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "lastProbeTime": now.isoformat().replace("+00:00", "Z"),
        "consecutiveFailures": failures,
        "rttMs": current.get("rttMs"),
        "readyNodes": current.get("readyNodes"),
        "gpusAllocatable": current.get("gpusAllocatable"),
        "gpusFree": current.get("gpusFree"),
        "gpusByNode": current.get("gpusByNode"),
        "freeGPUsByNode": current.get("freeGPUsByNode"),
    }
    if result is None:
        message = f"credentials rejected: {credentials_error}"
        conditions = set_condition(
            conditions, ConditionType.REACHABLE, False, CREDENTIALS_INVALID, message, generation, now
        )
        conditions = set_condition(
            conditions, ConditionType.READY, False, CREDENTIALS_INVALID, message, generation, now
        )
    elif not result.reachable:
        message = f"probe failed ({failures} in a row): {result.error}"
        conditions = set_condition(conditions, ConditionType.REACHABLE, False, PROBE_FAILED, message, generation, now)
        conditions = set_condition(conditions, ConditionType.READY, False, PROBE_FAILED, message, generation, now)
    else:
        status.update(
            rttMs=None if result.rtt_ms is None else round(result.rtt_ms, 1),
            readyNodes=result.ready_nodes,
            gpusAllocatable=result.gpus_allocatable,
            gpusFree=result.gpus_free,
            gpusByNode=list(result.gpus_by_node[:MAX_NODES_REPORTED]),
            freeGPUsByNode=list(result.free_gpus_by_node[:MAX_NODES_REPORTED]),
        )
        conditions = set_condition(
            conditions, ConditionType.REACHABLE, True, PROBE_SUCCEEDED, "API server answered", generation, now
        )
        if not result.api_ready:
            message = "API server answers but /readyz is not ok"
            conditions = set_condition(conditions, ConditionType.READY, False, NOT_READY, message, generation, now)
        elif result.ready_nodes == 0:
            message = "no Ready, schedulable node"
            conditions = set_condition(conditions, ConditionType.READY, False, NO_READY_NODES, message, generation, now)
        else:
            message = f"{result.ready_nodes} ready nodes, {result.gpus_free}/{result.gpus_allocatable} GPUs free"
            conditions = set_condition(conditions, ConditionType.READY, True, PROBE_SUCCEEDED, message, generation, now)
    status["conditions"] = conditions
    status["message"] = message
    return status


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def worth_writing(current: Mapping[str, Any] | None, desired: Mapping[str, Any], interval_seconds: float) -> bool:
    """Whether ``desired`` differs from the written ``current`` in a way worth an API write."""
    current = current or {}
    if desired.get("observedGeneration") != current.get("observedGeneration"):
        return True
    if any(desired.get(name) != current.get(name) for name in MEANINGFUL_FIELDS):
        return True
    have = {c.get("type"): (c.get("status"), c.get("reason")) for c in current.get("conditions") or []}
    want = {c.get("type"): (c.get("status"), c.get("reason")) for c in desired.get("conditions") or []}
    if have != want:
        return True
    old_rtt, new_rtt = current.get("rttMs"), desired.get("rttMs")
    if (old_rtt is None) != (new_rtt is None):
        return True
    if old_rtt is not None and new_rtt is not None:
        change = abs(new_rtt - old_rtt)
        if change > RTT_CHANGE_MS and change > RTT_CHANGE_RATIO * max(old_rtt, 1.0):
            return True
    written, probed = _parse_time(current.get("lastProbeTime")), _parse_time(desired.get("lastProbeTime"))
    if written is None or probed is None:
        return True
    return (probed - written).total_seconds() >= REFRESH_INTERVALS * interval_seconds
