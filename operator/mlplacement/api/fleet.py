"""The fleet file: a declared snapshot of targets and signals for `explain`, `demo` and the simulator.

Versioned contract (``apiVersion: mlplacement.io/fleet/v1``, ``kind: Fleet``): platform teams write these
to ask "where would this go?" without a cluster. The operator builds the same snapshot from live objects.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from mlplacement.api.base import Name, Region, WireModel
from mlplacement.api.signals import Signals

FLEET_API_VERSION = "mlplacement.io/fleet/v1"

Count = Annotated[int, Field(ge=0, le=1_000_000)]
Price = Annotated[float, Field(ge=0, le=100_000)]


class CapacityType(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"


class FleetPool(WireModel):
    """A GPU node pool as the operator derives it from Nodes."""

    name: Name
    region: Region
    gpu_product: Annotated[str, Field(max_length=128)] = ""
    gpus_total: Count
    gpus_free: Count | None = Field(default=None, description="Default: gpusTotal.")
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    gpu_hour_usd: Price | None = Field(default=None, description="Default: the signals' price for the product.")
    preemption_probability: Annotated[float, Field(ge=0, le=1)] | None = None
    healthy: bool = True


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

    def decision_time(self, fallback: datetime) -> datetime:
        if self.now is not None:
            return self.now
        return self.signals.updated_at if self.signals is not None else fallback


__all__ = ["FLEET_API_VERSION", "CapacityType", "Fleet", "FleetEdge", "FleetPool", "FleetWorkspace"]
