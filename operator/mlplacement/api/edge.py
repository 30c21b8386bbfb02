"""EdgeCluster: a remote Kubernetes cluster that can run workloads; its status carries probed health."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from mlplacement.api.base import Conditions, Name, Region, Resource, SecretKeyRef, StatusModel, WireModel


class KubeconfigRef(SecretKeyRef):
    """A Secret in the operator namespace holding a kubeconfig (inline token or client certificate only)."""

    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = "kubeconfig"


class EdgeCapabilities(WireModel):
    gpu_products: Annotated[
        list[Annotated[str, Field(max_length=128)]],
        Field(max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = []
    max_model_size_gb: Annotated[float, Field(ge=0, le=100_000)] = Field(
        default=2.0, description="Largest model the site can hold."
    )


class EdgeCost(WireModel):
    gpu_hour_usd: Annotated[float, Field(ge=0, le=10_000)] = 0.0
    base_hour_usd: Annotated[float, Field(ge=0, le=10_000)] = 0.0


class ProbeSettings(WireModel):
    interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    failure_grace_seconds: Annotated[int, Field(ge=0, le=86_400)] = Field(
        default=90, description="How long a cluster may fail probes before its workloads fail over."
    )


class EdgeClusterSpec(WireModel):
    region: Region
    zone: Annotated[str | None, Field(max_length=63)] = None
    site: Annotated[str | None, Field(max_length=128)] = None
    credentials_secret_ref: KubeconfigRef
    namespace: Name = Field(default="mlplacement-workloads", description="Namespace on the edge cluster.")
    capabilities: EdgeCapabilities = EdgeCapabilities()
    cost: EdgeCost = EdgeCost()
    probe: ProbeSettings = ProbeSettings()


class EdgeClusterStatus(StatusModel):
    observed_generation: int | None = None
    conditions: Conditions = []
    last_probe_time: datetime | None = None
    rtt_ms: float | None = None
    ready_nodes: int | None = None
    gpus_allocatable: int | None = None
    gpus_free: int | None = None
    gpus_by_node: Annotated[list[int], Field(max_length=256)] | None = Field(
        default=None, description="GPUs of each ready GPU node, smallest first (at most 256 nodes)."
    )
    free_gpus_by_node: Annotated[list[int], Field(max_length=256)] | None = Field(
        default=None,
        description="Free GPUs of each ready GPU node, smallest first: a pod's GPUs, and a gang's worker, need one "
        "node that holds them.",
    )
    consecutive_failures: int | None = None
    message: Annotated[str, Field(max_length=4096)] = ""


class EdgeCluster(Resource):
    kind: Literal["EdgeCluster"] = "EdgeCluster"
    spec: EdgeClusterSpec
    status: EdgeClusterStatus | None = None


__all__ = [
    "EdgeCapabilities",
    "EdgeCluster",
    "EdgeClusterSpec",
    "EdgeClusterStatus",
    "EdgeCost",
    "KubeconfigRef",
    "Name",
]
