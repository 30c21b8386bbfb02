"""The placement engine: filters, scores and decisions over a fleet snapshot."""

from mlplacement.core.placement.engine import Decision, ScoredCandidate, decide, decide_many
from mlplacement.core.placement.request import PlacementRequest, request_from_workload

__all__ = ["Decision", "PlacementRequest", "ScoredCandidate", "decide", "decide_many", "request_from_workload"]
