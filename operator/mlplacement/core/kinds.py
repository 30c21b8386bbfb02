"""What differs between target kinds, in one table: core and controller read it instead of branching on the kind.

A new kind of target is a new row here (and a Runtime in the controller), not a hunt for ``if kind is ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mlplacement.api.workload import TargetKind


@dataclass(frozen=True)
class KindFacts:
    """The facts of one target kind that placement and the controller act on."""

    # What a workload claims there: its GPUs (pools and edges hold GPUs), or one run slot (a Databricks workspace
    # brings its own cluster per run, so its capacity is runs at once, not GPUs).
    claims_gpus: bool
    # Added to the network round trip for an inference request served there (request handling, cold paths).
    serving_overhead_ms: float
    # A running workload is placed again elsewhere when its target dies, its pods cannot be scheduled or what
    # its target is changed. A Databricks run lives on in Databricks: moving it would run it twice.
    fails_over: bool
    # Its children live in this cluster (a Job or Deployment the watch sees go); elsewhere a probe reads them.
    home: bool
    # What deletion says when the remote cleanup is given up ("" where nothing runs outside this cluster).
    cleanup_abandoned: str = ""

    def claim(self, gpus: int) -> int:
        """What a workload needing ``gpus`` claims on a target of this kind."""
        return gpus if self.claims_gpus else 1


KINDS: Mapping[TargetKind, KindFacts] = MappingProxyType(
    {
        TargetKind.GPU_POOL: KindFacts(claims_gpus=True, serving_overhead_ms=8.0, fails_over=True, home=True),
        TargetKind.EDGE: KindFacts(
            claims_gpus=True,
            serving_overhead_ms=1.0,
            fails_over=True,
            home=False,
            cleanup_abandoned="edge cluster unreachable; its copy is removed on return",
        ),
        TargetKind.DATABRICKS: KindFacts(
            claims_gpus=False,
            serving_overhead_ms=250.0,
            fails_over=False,
            home=False,
            cleanup_abandoned="Databricks run not confirmed cancelled; it may still be running",
        ),
    }
)


def claim_of(kind: TargetKind | str, gpus: int) -> int:
    """What a workload needing ``gpus`` claims on a target of ``kind`` (GPUs, or one run slot)."""
    return KINDS[TargetKind(kind)].claim(gpus)
