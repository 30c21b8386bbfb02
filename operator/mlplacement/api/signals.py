"""The signals document: facts no Kubernetes object carries, kept in a ConfigMap in the operator namespace.

The ConfigMap holds this document as YAML under the data key ``signals.yaml``. Whoever feeds it (a
cron job, a price exporter) rewrites ``updatedAt``; past ``updatedAt + ttlSeconds`` the operator stops
trusting it and says so in status and metrics.
"""

from typing import Annotated

from pydantic import AwareDatetime, Field
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mlplacement.api.base import Region, WireModel

SIGNALS_DATA_KEY = "signals.yaml"

NonNegative = Annotated[float, Field(ge=0)]


class PoolSignal(WireModel):
    """Live price and risk of one GPU pool, keyed by pool name."""

    gpu_hour_usd: NonNegative | None = None
    preemption_probability: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="Probability that a spot node of the pool is reclaimed within the hour."
    )


class DatasetSignal(WireModel):
    """A dataset's readiness as its producer reports it (pipeline stages gate on it)."""

    updated_at: AwareDatetime
    validated: bool = False
    schema_version: Annotated[str | None, Field(max_length=64)] = None


# A cross-region copy rarely sustains more than a few Gbit/s per transfer (object storage to object storage); 1 is
# the conservative default a deadline is judged with when the signals say nothing.
DEFAULT_BANDWIDTH_GBPS = 1.0


class Signals(WireModel):
    updated_at: AwareDatetime
    ttl_seconds: Annotated[int, Field(ge=1, le=7 * 86_400)] = 900
    latency_ms: dict[Region, dict[Region, NonNegative]] = Field(
        default={}, description="Round-trip time between regions; one direction given is taken for both."
    )
    intra_region_latency_ms: NonNegative = 2.0
    egress_usd_per_gb: NonNegative = 0.09
    egress_usd_per_gb_overrides: dict[Region, dict[Region, NonNegative]] = Field(default={})
    bandwidth_gbps: Annotated[float, Field(gt=0, le=10_000)] = Field(
        default=DEFAULT_BANDWIDTH_GBPS,
        description="Sustained transfer rate between two regions, in Gbit/s, where bandwidthGbpsOverrides names "
        "none: how long moving a run's data takes, which counts against its deadline.",
    )
    bandwidth_gbps_overrides: dict[Region, dict[Region, Annotated[float, Field(gt=0, le=10_000)]]] = Field(
        default={}, description="Per region pair (source -> destination; one direction given is taken for both)."
    )
    carbon_g_per_kwh: dict[Region, NonNegative] = {}
    gpu_hour_usd_by_product: dict[str, NonNegative] = Field(
        default={}, description="On-demand price of one GPU hour, by GPU product."
    )
    gpu_throughput_by_product: dict[Annotated[str, Field(max_length=128)], Annotated[float, Field(gt=0, le=100)]] = (
        Field(
            default={},
            description="Training throughput of one GPU relative to an A100 (1.0), by product or family name "
            "(H100, A100, L40S, A10G, L4, T4); overrides the built-in figures.",
        )
    )
    spot_discount: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.6, description="Fraction off the on-demand price for spot capacity without a pool signal."
    )
    pools: dict[str, PoolSignal] = {}
    datasets: dict[Annotated[str, Field(max_length=253)], DatasetSignal] = Field(
        default={}, description="Readiness of datasets by name: MLPipeline stages gate on freshness and schema."
    )


def parse_signals(text: str) -> Signals:
    """Parse the ``signals.yaml`` document of the signals ConfigMap; raises ValueError naming the field."""
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ValueError(f"{SIGNALS_DATA_KEY} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{SIGNALS_DATA_KEY} must be a mapping")
    return Signals.model_validate(data)


__all__ = ["SIGNALS_DATA_KEY", "DatasetSignal", "PoolSignal", "Signals", "parse_signals"]
