"""The fleet file: a declared snapshot of targets and signals for `explain`, `demo` and the simulator.

Versioned contract (``apiVersion: mlplacement.io/fleet/v1``, ``kind: Fleet``): platform teams write these
to ask "where would this go?" without a cluster. The operator builds the same snapshot from live objects.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from mlplacement.api.base import Name, Region, WireModel
from mlplacement.api.signals import Signals

FLEET_API_VERSION = "mlplacement.io/fleet/v1"

Count = Annotated[int, Field(ge=0, le=1_000_000)]
Price = Annotated[float, Field(ge=0, le=100_000)]


class CapacityType(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"


class FleetNode(WireModel):
    """One node of a pool: a pod's GPUs must all sit on one node."""

    gpus: Count
    free: Count | None = Field(default=None, description="Default: all of its GPUs.")

    @model_validator(mode="after")
    def _free_within_gpus(self) -> "FleetNode":
        if self.free is not None and self.free > self.gpus:
            raise ValueError(f"free ({self.free}) is more than the node's gpus ({self.gpus})")
        return self


class FleetPool(WireModel):
    """A GPU node pool as the operator derives it from Nodes. Without ``nodes`` or ``gpusPerNode`` the pool is
    one bucket of GPUs (any pod fits while enough are free); with them a pod's GPUs must fit on one node."""

    name: Name
    region: Region
    gpu_product: Annotated[str, Field(max_length=128)] = ""
    gpus_total: Count
    gpus_free: Count | None = Field(default=None, description="Default: gpusTotal.")
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    gpu_hour_usd: Price | None = Field(default=None, description="Default: the signals' price for the product.")
    preemption_probability: Annotated[float, Field(ge=0, le=1)] | None = None
    healthy: bool = True
    gpus_per_node: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        default=None, description="Every node has this many GPUs; the free ones fill whole nodes first."
    )
    nodes: Annotated[list[FleetNode], Field(max_length=100_000)] | None = Field(
        default=None, description="Node by node (gpus, free): their sums must be gpusTotal and gpusFree."
    )

    @model_validator(mode="after")
    def _nodes_agree(self) -> "FleetPool":
        if self.gpus_free is not None and self.gpus_free > self.gpus_total:
            raise ValueError(f"gpusFree ({self.gpus_free}) is more than gpusTotal ({self.gpus_total})")
        if self.nodes is not None and self.gpus_per_node is not None:
            raise ValueError("give nodes or gpusPerNode, not both")
        if self.nodes is not None:
            total = sum(node.gpus for node in self.nodes)
            if total != self.gpus_total:
                raise ValueError(f"the nodes' gpus add up to {total}, not gpusTotal {self.gpus_total}")
            free = sum(node.gpus if node.free is None else node.free for node in self.nodes)
            if self.gpus_free is not None and free != self.gpus_free:
                raise ValueError(f"the nodes' free GPUs add up to {free}, not gpusFree {self.gpus_free}")
        if self.gpus_per_node is not None and self.gpus_total % self.gpus_per_node:
            raise ValueError(f"gpusTotal {self.gpus_total} is not a whole number of {self.gpus_per_node}-GPU nodes")
        return self

    def node_blocks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(free GPUs per node, GPUs per node), each smallest first, or ((), ()) when not given."""
        free_total = self.gpus_total if self.gpus_free is None else min(self.gpus_free, self.gpus_total)
        if self.nodes is not None:
            blocks = [node.gpus if node.free is None else node.free for node in self.nodes]
            return tuple(sorted(blocks)), tuple(sorted(node.gpus for node in self.nodes))
        if self.gpus_per_node is not None:
            per = self.gpus_per_node
            count = self.gpus_total // per
            whole, rest = divmod(free_total, per)
            blocks = [per] * whole + ([rest] if rest else [])
            return tuple(sorted(blocks + [0] * (count - len(blocks)))), (per,) * count
        return (), ()


class FleetEdge(WireModel):
    name: Name
    region: Region
    gpus_free: Count = 0
    gpu_products: list[str] = []
    max_model_size_gb: Price = 2.0
    gpu_hour_usd: Price = 0.0
    base_hour_usd: Price = 0.0
    rtt_ms: Price | None = None
    last_probe_age_seconds: Annotated[float, Field(ge=0)] = 0.0
    healthy: bool = True


class FleetWorkspace(WireModel):
    name: Name
    region: Region
    gpu_hour_usd: Price = 0.0
    base_hour_usd: Price = 0.0
    free_run_slots: Count = 10
    healthy: bool = True


class Fleet(WireModel):
    api_version: Literal["mlplacement.io/fleet/v1"] = Field(alias="apiVersion")
    kind: Literal["Fleet"]
    now: AwareDatetime | None = Field(default=None, description="Instant to decide at; default: signals.updatedAt.")
    pools: Annotated[list[FleetPool], Field(max_length=10_000)] = []
    edge_clusters: Annotated[list[FleetEdge], Field(max_length=10_000)] = []
    databricks_workspaces: Annotated[list[FleetWorkspace], Field(max_length=1_000)] = []
    signals: Signals | None = None

    @model_validator(mode="after")
    def _names_unique(self) -> "Fleet":
        # Targets are keyed by (kind, name): a second pool of the same name would silently replace the first.
        for field, items in (
            ("pools", self.pools),
            ("edgeClusters", self.edge_clusters),
            ("databricksWorkspaces", self.databricks_workspaces),
        ):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{field}: the name {item.name!r} is used twice")
                seen.add(item.name)
        return self

    def decision_time(self, fallback: datetime) -> datetime:
        if self.now is not None:
            return self.now
        return self.signals.updated_at if self.signals is not None else fallback


__all__ = ["FLEET_API_VERSION", "CapacityType", "Fleet", "FleetEdge", "FleetPool", "FleetWorkspace"]
