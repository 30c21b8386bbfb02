"""A pipeline dry run, pure: where each stage would run, what a run costs, the data moved between stages and
what that egress costs, and the critical path. Each stage is decided on its own (stages run at different
times), by the same engine the operator uses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlplacement.api.dag import critical_path
from mlplacement.api.pipeline import MLPipeline
from mlplacement.core.explain import table
from mlplacement.core.pipeline import estimated_hours
from mlplacement.core.placement import Decision
from mlplacement.core.snapshot import Snapshot


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    decision: Decision
    hours: float  # one run, at the chosen target's speed when the work is known; 0 when unknown
    run_cost_usd: float | None  # one run; None when unplaced or the run's length is unknown


@dataclass(frozen=True)
class DataMove:
    """One artifact crossing a stage boundary."""

    artifact: str
    from_stage: str
    to_stage: str
    size_gb: float
    from_region: str | None
    to_region: str | None
    egress_usd: float


@dataclass(frozen=True)
class PipelineEstimate:
    key: str
    stages: list[StageEstimate]
    moves: list[DataMove]
    critical_path: list[str]
    critical_hours: float

    @property
    def unplaced(self) -> list[str]:
        return [s.stage for s in self.stages if s.decision.chosen is None]

    @property
    def total_usd(self) -> float:
        return round(sum(s.run_cost_usd or 0.0 for s in self.stages) + sum(m.egress_usd for m in self.moves), 2)


def stage_workloads(obj: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The MLWorkloads a pipeline's stages become (named <pipeline>-<stage> for a dry run), as objects."""
    meta = obj.get("metadata") or {}
    found = []
    for stage in (obj.get("spec") or {}).get("stages") or []:
        workload = {
            "apiVersion": obj.get("apiVersion"),
            "kind": "MLWorkload",
            "metadata": {"name": f"{meta.get('name')}-{stage.get('name')}", "namespace": meta.get("namespace")},
            "spec": stage.get("template") or {},
        }
        found.append((str(stage.get("name")), workload))
    return found


def estimate_pipeline(pipeline: MLPipeline, decisions: Mapping[str, Decision], snapshot: Snapshot) -> PipelineEstimate:
    """What running ``pipeline`` once would take, given each stage's decision (by stage name)."""
    estimates: list[StageEstimate] = []
    region: dict[str, str | None] = {}
    for stage in pipeline.spec.stages:
        decision = decisions[stage.name]
        chosen = decision.chosen
        hours = estimated_hours(stage.template)
        cost = None
        if chosen is not None:
            region[stage.name] = chosen.target.region
            if chosen.runtime_hours is not None:
                hours = chosen.runtime_hours
            if chosen.job_cost_usd is not None:
                cost = chosen.job_cost_usd
            elif hours:
                cost = chosen.hourly_cost_usd * hours
        estimates.append(StageEstimate(stage.name, decision, hours, None if cost is None else round(cost, 2)))
    moves = []
    for stage in pipeline.spec.stages:
        for item in stage.inputs:
            if item.from_stage is None:
                continue
            upstream = pipeline.spec.stage(item.from_stage)
            output = next((o for o in upstream.outputs if o.name == item.upstream_output), None) if upstream else None
            size = output.size_gb if output is not None else 0.0
            source, destination = region.get(item.from_stage), region.get(stage.name)
            rate = snapshot.egress_usd_per_gb(source, destination) if destination is not None else 0.0
            moves.append(
                DataMove(item.name, item.from_stage, stage.name, size, source, destination, round(size * rate, 2))
            )
    path, hours = critical_path(pipeline.spec.stages, {s.stage: s.hours for s in estimates})
    meta = pipeline.metadata
    return PipelineEstimate(f"{meta.namespace}/{meta.name}", estimates, moves, path, round(hours, 2))


def render_pipeline_estimate(estimate: PipelineEstimate) -> str:
    rows = []
    for stage in estimate.stages:
        chosen = stage.decision.chosen
        where = "-" if chosen is None else f"{chosen.target.kind.value} {chosen.target.name} ({chosen.target.region})"
        rows.append(
            [
                stage.stage,
                where if chosen is not None else f"not placed: {stage.decision.reason.value}",
                "-" if chosen is None else f"{chosen.hourly_cost_usd:g}",
                f"{stage.hours:.1f}" if stage.hours else "?",
                "-" if stage.run_cost_usd is None else f"{stage.run_cost_usd:.2f}",
                stage.decision.message[:90],
            ]
        )
    lines = [f"MLPipeline {estimate.key}", table(["STAGE", "TARGET", "$/H", "HOURS", "$/RUN", "WHY"], rows)]
    if estimate.moves:
        move_rows = [
            [
                f"{m.from_stage} -> {m.to_stage}",
                m.artifact,
                f"{m.size_gb:g}",
                f"{m.from_region or '?'} -> {m.to_region or '?'}",
                f"{m.egress_usd:.2f}",
            ]
            for m in estimate.moves
        ]
        lines += ["", "data moved between stages:", table(["EDGE", "ARTIFACT", "GB", "REGIONS", "EGRESS $"], move_rows)]
    lines.append("")
    lines.append(f"critical path: {' -> '.join(estimate.critical_path)} ({estimate.critical_hours:g} h)")
    lines.append(f"estimated cost of one run: ${estimate.total_usd:.2f} (stages with a known run length, plus egress)")
    if estimate.unplaced:
        lines.append(f"not placeable now: {', '.join(estimate.unplaced)}")
    return "\n".join(lines)


def estimate_json(estimate: PipelineEstimate) -> dict[str, Any]:
    """The estimate as explain -o json prints it (a stable shape for scripts)."""
    return {
        "pipeline": estimate.key,
        "stages": [
            {
                "stage": s.stage,
                "placed": s.decision.chosen is not None,
                "reason": s.decision.reason.value,
                "target": None
                if s.decision.chosen is None
                else {
                    "kind": s.decision.chosen.target.kind.value,
                    "name": s.decision.chosen.target.name,
                    "region": s.decision.chosen.target.region,
                },
                "hourlyCostUSD": None if s.decision.chosen is None else s.decision.chosen.hourly_cost_usd,
                "hours": s.hours,
                "runCostUSD": s.run_cost_usd,
                "message": s.decision.message,
            }
            for s in estimate.stages
        ],
        "dataMoved": [
            {
                "artifact": m.artifact,
                "fromStage": m.from_stage,
                "toStage": m.to_stage,
                "sizeGB": m.size_gb,
                "fromRegion": m.from_region,
                "toRegion": m.to_region,
                "egressUSD": m.egress_usd,
            }
            for m in estimate.moves
        ],
        "criticalPath": estimate.critical_path,
        "criticalPathHours": estimate.critical_hours,
        "estimatedCostUSD": estimate.total_usd,
        "unplaced": estimate.unplaced,
    }


__all__ = [
    "DataMove",
    "PipelineEstimate",
    "StageEstimate",
    "estimate_json",
    "estimate_pipeline",
    "render_pipeline_estimate",
    "stage_workloads",
]
