"""The mlplacement API: pydantic models of the CRDs and the names that are contract."""

from mlplacement.api.databricks import DatabricksWorkspace, DatabricksWorkspaceSpec
from mlplacement.api.edge import EdgeCluster, EdgeClusterSpec
from mlplacement.api.policy import PlacementPolicy, PlacementPolicySpec
from mlplacement.api.signals import Signals
from mlplacement.api.workload import MLWorkload, MLWorkloadSpec, TargetKind, WorkloadType

__all__ = [
    "DatabricksWorkspace",
    "DatabricksWorkspaceSpec",
    "EdgeCluster",
    "EdgeClusterSpec",
    "MLWorkload",
    "MLWorkloadSpec",
    "PlacementPolicy",
    "PlacementPolicySpec",
    "Signals",
    "TargetKind",
    "WorkloadType",
]
