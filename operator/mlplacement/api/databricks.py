"""DatabricksWorkspace: a workspace that runs batch and training workloads as one-time job runs."""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from mlplacement.api.base import Conditions, Region, Resource, SecretKeyRef, StatusModel, WireModel


class TokenRef(SecretKeyRef):
    """A Secret in the operator namespace holding a Databricks token. The token is never logged."""

    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = "token"


class DatabricksCost(WireModel):
    gpu_hour_usd: Annotated[float, Field(ge=0, le=10_000)] = Field(
        default=0.0, description="All-in cost of one GPU hour (DBUs plus cloud)."
    )
    base_hour_usd: Annotated[float, Field(ge=0, le=10_000)] = Field(
        default=0.0, description="Fixed cost of a run's driver per hour."
    )


class DatabricksWorkspaceSpec(WireModel):
    host: Annotated[str, Field(min_length=8, max_length=512, pattern=r"^https://[^\s/]+(/.*)?$")]
    region: Region
    token_secret_ref: TokenRef
    cost: DatabricksCost = DatabricksCost()
    max_concurrent_runs: Annotated[int, Field(ge=1, le=10_000)] = 10
    probe_interval_seconds: Annotated[int, Field(ge=10, le=3600)] = 60


class DatabricksWorkspaceStatus(StatusModel):
    observed_generation: int | None = None
    conditions: Conditions = []
    last_probe_time: datetime | None = None
    active_runs: int | None = None
    message: Annotated[str, Field(max_length=4096)] = ""


class DatabricksWorkspace(Resource):
    kind: Literal["DatabricksWorkspace"] = "DatabricksWorkspace"
    spec: DatabricksWorkspaceSpec
    status: DatabricksWorkspaceStatus | None = None


__all__ = [
    "DatabricksCost",
    "DatabricksWorkspace",
    "DatabricksWorkspaceSpec",
    "DatabricksWorkspaceStatus",
    "TokenRef",
    "Workspace",
]


@dataclass(frozen=True)
class Workspace:
    """Where to reach a workspace; ``token`` comes from its Secret and stays in memory only."""

    name: str
    host: str
    token: str

    def __repr__(self) -> str:  # keep the token out of any repr that reaches a log or traceback
        return f"Workspace(name={self.name!r}, host={self.host!r})"
