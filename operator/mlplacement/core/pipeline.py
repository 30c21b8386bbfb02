"""Pipeline planning, pure: from a verified MLPipeline, its last status, what its stages' workloads report and
what the world says of its gates, the next status and what to do (start a stage's run, delete a superseded one).

Rules: a stage runs once every gate is open (upstream stages succeeded with their outputs recorded, datasets
fresh and valid, named objects' conditions); completed stages never rerun; a failed stage retries alone; a
changed template re-runs its stage and the stages downstream of it, nothing else. Lineage is checked at every
boundary: a stage whose expected input digest differs from what its upstream recorded does not run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import rfc8785

from mlplacement.api.base import LONG_TEXT_MAX
from mlplacement.api.constants import Reason
from mlplacement.api.dag import critical_path, descendants, topological_order
from mlplacement.api.pipeline import (
    ArtifactRecord,
    MLPipeline,
    ObjectGate,
    PipelinePhase,
    PipelineStage,
    StagePhase,
    StageStatus,
)
from mlplacement.api.signals import DatasetSignal
from mlplacement.api.workload import MLWorkloadSpec, WorkloadType

# A stage workload's name carries the pipeline's name in a label value: at most 63 characters.
PIPELINE_NAME_MAX = 63
ObjectKey = tuple[str, str, str, str]  # apiVersion, kind, namespace, name
REASON_MAX = 64  # StageStatus.reason
IN_FLIGHT = (StagePhase.SCHEDULED, StagePhase.RUNNING, StagePhase.RETRYING)
BROKEN = (StagePhase.FAILED, StagePhase.REFUSED)


@dataclass(frozen=True)
class StageRun:
    """What one stage workload reports: its phase and reason, where it runs, and the outputs it recorded."""

    phase: str | None = None
    reason: str = ""
    message: str = ""
    target: str = ""
    hourly_cost_usd: float | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)
    outputs_problem: str = ""
    owned: bool = True  # made by this pipeline (its owner reference), not labelled so by someone else


@dataclass(frozen=True)
class ObjectFact:
    """A gate object as last read: its conditions (type -> status), or why it could not be read."""

    conditions: Mapping[str, str] = field(default_factory=dict)
    problem: str = ""


@dataclass(frozen=True)
class GateFacts:
    now: datetime
    datasets: Mapping[str, DatasetSignal] | None = None  # None: there is no signals document
    objects: Mapping[ObjectKey, ObjectFact] = field(default_factory=dict)


@dataclass(frozen=True)
class Launch:
    """Create this stage workload: ``spec`` is the signed template exactly as written in the pipeline."""

    stage: str
    workload: str
    spec: Mapping[str, Any]
    inputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # input -> {uri, digest}


@dataclass
class PipelinePlan:
    stages: list[StageStatus]
    phase: PipelinePhase
    launches: list[Launch] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    critical_path: list[str] = field(default_factory=list)
    hourly_cost_usd: float | None = None
    next_check: datetime | None = None  # the earliest retry: plan again then even if nothing happens

    serving: list[str] = field(default_factory=list)  # inference stages up and serving: their work is to run

    @property
    def done(self) -> int:
        return sum(1 for stage in self.stages if stage.phase is StagePhase.SUCCEEDED or stage.name in self.serving)

    @property
    def ready(self) -> bool:
        """Every stage succeeded, or serves (an inference stage's goal is to keep running)."""
        return self.done == len(self.stages)


def pipeline_name_problem(name: str) -> str | None:
    if len(name) > PIPELINE_NAME_MAX:
        return f"metadata.name: at most {PIPELINE_NAME_MAX} characters (stage workloads carry it in a label)"
    return None


def stage_workload_name(pipeline: str, stage: str, run: int) -> str:
    """Deterministic: the same pipeline, stage and run always name the same MLWorkload."""
    return f"{pipeline}-{stage}-{run}"


def inputs_of(consumed: Sequence[ArtifactRecord]) -> dict[str, dict[str, str]]:
    """What a stage consumes, as its workload's inputs annotation carries it."""
    return {artifact.name: {"uri": artifact.uri, "digest": artifact.digest} for artifact in consumed}


def parse_inputs(text: str | None) -> dict[str, dict[str, str]] | None:
    """The inputs annotation, or None when it is not the shape inputs_of writes."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ("uri", "digest")) for v in data.values()
    ):
        return None
    return {str(name): {"uri": v["uri"], "digest": v["digest"]} for name, v in data.items()}


def canonical_digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps(value)).hexdigest()


def template_digest(raw_stage: Mapping[str, Any]) -> str:
    """What decides a stage's work: its template, inputs and outputs (gates and retries do not re-run it)."""
    return canonical_digest(
        {
            "template": raw_stage.get("template") or {},
            "inputs": raw_stage.get("inputs") or [],
            "outputs": raw_stage.get("outputs") or [],
        }
    )


def same_spec(spec: Any, template: Any) -> bool:
    """True when a stage workload's spec is exactly the signed template (compared canonically)."""
    try:
        return bool(rfc8785.dumps(spec) == rfc8785.dumps(template))
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return False


def object_key(gate: ObjectGate, namespace: str) -> ObjectKey:
    return (gate.api_version, gate.kind, gate.namespace or namespace, gate.name)


def parse_outputs(text: str | None) -> tuple[dict[str, str], str]:
    """The mlplacement.io/outputs annotation: ({output: digest}, problem). Never raises."""
    if not text:
        return {}, ""
    try:
        data = json.loads(text)
    except ValueError:
        return {}, "mlplacement.io/outputs is not JSON"
    if not isinstance(data, dict):
        return {}, 'mlplacement.io/outputs must be a JSON object {"<output>": "sha256:<64 hex>"}'
    found: dict[str, str] = {}
    for name, digest in data.items():
        value = digest.get("digest") if isinstance(digest, dict) else digest
        if not isinstance(value, str) or not value.startswith("sha256:") or len(value) != 71:
            return {}, f"mlplacement.io/outputs[{name!r}] is not a sha256:<64 hex> digest"
        found[str(name)] = value
    return found, ""


def estimated_hours(template: MLWorkloadSpec) -> float:
    """How long one run takes at the reference GPU: expectedGPUHours over the GPUs it uses; 0 when unknown."""
    work = template.intent.expected_gpu_hours
    if not work:
        return 0.0
    gpus = max(1, template.resources.gpus) * template.pods
    return work / gpus


def plan_pipeline(
    pipeline: MLPipeline,
    raw_stages: Mapping[str, Mapping[str, Any]],
    previous: Mapping[str, StageStatus],
    runs: Mapping[str, StageRun],
    facts: GateFacts,
    rerun_asked: Collection[str] = (),
    digests: Mapping[str, str] | None = None,
) -> PipelinePlan:
    """The next status of every stage and the actions that get there. ``raw_stages`` are the stages as
    written (what is signed), ``previous`` the last status by stage name, ``runs`` the stage workloads by name;
    ``rerun_asked`` stages run again (with what depends on them) whatever state they are in; ``digests`` are
    the stages' template_digest when the caller keeps them (they change only with the spec)."""
    spec = pipeline.spec
    if digests is None:
        digests = {name: template_digest(raw) for name, raw in raw_stages.items()}
    changed = {name for name, old in previous.items() if name in digests and old.template_digest != digests[name]}
    asked = {name for name in rerun_asked if name in digests and name in previous}
    rerun = descendants(spec.stages, changed | asked)
    planner = _Planner(pipeline, raw_stages, runs, facts)
    for name in topological_order(spec.stages):
        stage = spec.stage(name)
        assert stage is not None
        old = previous.get(name)
        if old is None:
            record = StageStatus(name=name, template_digest=digests[name])
        elif name in rerun:
            record = StageStatus(name=name, run=old.run, template_digest=digests[name])
            if old.workload:
                planner.plan.superseded.append(old.workload)
            why = (
                "its template changed"
                if name in changed
                else ("a rerun was asked for" if name in asked else "a stage it depends on runs again")
            )
            planner.plan.events.append(("Normal", "StageReset", f"stage {name} runs again: {why}"))
        else:
            record = old
        planner.advance(stage, record, old)
    for name, gone in sorted(previous.items()):
        if name not in digests:
            planner.plan.events.append(("Normal", "StageRemoved", f"stage {name} is no longer in the pipeline"))
            if gone.workload:
                planner.plan.superseded.append(gone.workload)
    plan = planner.finish()
    # Runs of ours nothing points at any more (a removed stage, a delete that failed, a crash between a new run
    # and the old one's delete) go too; a workload someone else labelled as a stage is left to them.
    current = {record.workload for record in plan.stages} | {launch.workload for launch in plan.launches}
    for name, run in sorted(runs.items()):
        if run.owned and name not in current and name not in plan.superseded:
            plan.superseded.append(name)
    return plan


class _Planner:
    def __init__(
        self,
        pipeline: MLPipeline,
        raw_stages: Mapping[str, Mapping[str, Any]],
        runs: Mapping[str, StageRun],
        facts: GateFacts,
    ) -> None:
        self.pipeline = pipeline
        self.namespace = pipeline.metadata.namespace or ""
        self.raw_stages = raw_stages
        self.runs = runs
        self.facts = facts
        self.now = facts.now
        self.done: dict[str, StageStatus] = {}
        self.plan = PipelinePlan(stages=[], phase=PipelinePhase.PENDING)

    def advance(self, stage: PipelineStage, record: StageStatus, old: StageStatus | None) -> None:
        if record.phase is StagePhase.RETRYING and record.retry_at is not None and self.now < record.retry_at:
            self._wake_at(record.retry_at)
        elif self._running_a_run(record):
            record = self._follow(stage, record)
        else:
            record = self._release(stage, record)
        self._announce(record, old)
        self.done[stage.name] = record

    @staticmethod
    def _running_a_run(record: StageStatus) -> bool:
        """The record follows a released run; otherwise its gates decide (not released yet, a retry due, or held
        by a gate: then it names the gate, and ``workload`` is at most the failed run a retry replaces)."""
        waiting = record.phase in (StagePhase.RETRYING, StagePhase.WAITING_FOR_DATA) or bool(record.gate)
        return bool(record.workload) and not waiting

    # --- a run in flight or finished ---

    def _follow(self, stage: PipelineStage, record: StageStatus) -> StageStatus:
        run = self.runs.get(record.workload)
        if record.phase is StagePhase.FAILED:
            return record  # out of attempts, or produced other than it declared: a rerun or a change restarts it
        if run is None:
            if record.phase is StagePhase.SUCCEEDED:
                return record  # its workload may be gone; what it produced is in status
            # Released but not there (just created, or deleted by hand): created again under the same name.
            launch = Launch(stage.name, record.workload, self._template(stage), inputs_of(record.consumed))
            self.plan.launches.append(launch)
            return record
        if run.phase is None:
            return record  # created, not admitted yet: nothing new to say
        update: dict[str, Any] = {"target": run.target or record.target}
        if run.hourly_cost_usd is not None:
            update["estimated_hourly_cost_usd"] = run.hourly_cost_usd
        if run.phase == "Succeeded":
            return self._succeeded(stage, _with(record, **update), run)
        if run.phase == "Failed":
            return self._failed(stage, record, run)
        if run.phase == "Refused":
            return _with(record, phase=StagePhase.REFUSED, reason=run.reason, message=run.message, **update)
        running = run.phase == "Running"
        if running and stage.template.type is WorkloadType.INFERENCE:
            # A serving stage never succeeds; what it has recorded is what stages after it consume.
            update["produced"] = [
                ArtifactRecord(name=o.name, uri=o.uri, digest=run.outputs.get(o.name) or o.digest or "")
                for o in stage.outputs
            ]
        phase = StagePhase.RUNNING if running else StagePhase.SCHEDULED
        reason = run.reason or (run.phase or "Created")
        message = run.message or f"MLWorkload {record.workload} is {run.phase or 'being admitted'}"
        return _with(record, phase=phase, reason=reason, message=message, gate="", **update)

    def _succeeded(self, stage: PipelineStage, record: StageStatus, run: StageRun) -> StageStatus:
        produced: list[ArtifactRecord] = []
        for output in stage.outputs:
            reported = run.outputs.get(output.name, "")
            if output.digest and reported and reported != output.digest:
                message = (
                    f"output {output.name} was declared {output.digest} but the run recorded {reported}: "
                    "stages downstream do not run on it"
                )
                return _with(
                    record,
                    phase=StagePhase.FAILED,
                    reason=Reason.ARTIFACT_MISMATCH.value,
                    message=message,
                    finished_at=record.finished_at or self.now,
                )
            produced.append(ArtifactRecord(name=output.name, uri=output.uri, digest=reported or output.digest or ""))
        missing = [artifact.name for artifact in produced if not artifact.digest]
        if missing:
            message = (
                f"succeeded; outputs {', '.join(missing)} are not recorded yet (annotation mlplacement.io/outputs "
                f'on MLWorkload {record.workload}: {{"<output>": "sha256:..."}})'
            )
            if run.outputs_problem:
                message += f"; {run.outputs_problem}"
        else:
            message = "succeeded" + (f"; produced {', '.join(a.name for a in produced)}" if produced else "")
        return _with(
            record,
            phase=StagePhase.SUCCEEDED,
            reason=Reason.SUCCEEDED.value,
            message=message,
            produced=produced,
            finished_at=record.finished_at or self.now,
            estimated_hourly_cost_usd=None,
        )

    def _failed(self, stage: PipelineStage, record: StageStatus, run: StageRun) -> StageStatus:
        attempts = record.attempts + 1
        why = run.message or run.reason or "its workload failed"
        if attempts < stage.retry.max_attempts:
            retry_at = self.now + timedelta(seconds=stage.retry.backoff_seconds)
            self._wake_at(retry_at)
            return _with(
                record,
                phase=StagePhase.RETRYING,
                reason=Reason.RETRYING.value,
                message=f"run {record.run} failed ({why}); attempt {attempts + 1}/{stage.retry.max_attempts} "
                f"at {retry_at:%Y-%m-%dT%H:%M:%SZ}",
                attempts=attempts,
                retry_at=retry_at,
                estimated_hourly_cost_usd=None,
            )
        return _with(
            record,
            phase=StagePhase.FAILED,
            reason=Reason.FAILED.value,
            message=f"failed {attempts} of {stage.retry.max_attempts} attempts; last: {why}",
            attempts=attempts,
            finished_at=self.now,
            estimated_hourly_cost_usd=None,
        )

    # --- a stage not running: its gates ---

    def _release(self, stage: PipelineStage, record: StageStatus) -> StageStatus:
        consumed, blocked = self._gates(stage)
        if blocked is not None:
            gate, reason, message = blocked
            phase = StagePhase.REFUSED if reason is Reason.ARTIFACT_MISMATCH else StagePhase.WAITING_FOR_DATA
            return _with(record, phase=phase, reason=reason.value, message=message, gate=gate)
        if record.workload:
            self.plan.superseded.append(record.workload)  # the failed run a retry replaces
        run = record.run + 1
        workload = stage_workload_name(self.pipeline.metadata.name, stage.name, run)
        self.plan.launches.append(Launch(stage.name, workload, self._template(stage), inputs_of(consumed)))
        return _with(
            record,
            phase=StagePhase.SCHEDULED,
            reason="Created",
            message=f"gates open; MLWorkload {workload} created",
            gate="",
            workload=workload,
            run=run,
            consumed=consumed,
            produced=[],
            target="",
            started_at=self.now,
            finished_at=None,
            retry_at=None,
        )

    def _gates(self, stage: PipelineStage) -> tuple[list[ArtifactRecord], tuple[str, Reason, str] | None]:
        """What the stage would consume, and the first closed gate (or None when all are open)."""
        for upstream in stage.depends_on:
            done = self.done[upstream]
            if done.phase is not StagePhase.SUCCEEDED and not self._serves(upstream, done):
                state = done.phase.value + (f" ({done.reason})" if done.reason else "")
                return [], (
                    f"stage {upstream}",
                    Reason.WAITING_FOR_DATA,
                    f"stage {upstream} has not succeeded: {state}",
                )
            missing = [artifact.name for artifact in done.produced if not artifact.digest]
            if missing:
                state = "succeeded" if done.phase is StagePhase.SUCCEEDED else "serves"
                message = f"stage {upstream} {state} but has not recorded {', '.join(missing)}"
                return [], (f"stage {upstream}", Reason.WAITING_FOR_DATA, message)
        consumed: list[ArtifactRecord] = []
        for item in stage.inputs:
            if item.from_stage is None:
                consumed.append(ArtifactRecord(name=item.name, uri=item.uri or "", digest=item.digest or ""))
                continue
            produced = {a.name: a for a in self.done[item.from_stage].produced}
            recorded = produced.get(item.upstream_output)
            if recorded is None or not recorded.digest:  # a serving stage records its outputs when it has them
                message = f"stage {item.from_stage} has not recorded {item.upstream_output}"
                return [], (f"stage {item.from_stage}", Reason.WAITING_FOR_DATA, message)
            if item.digest and item.digest != recorded.digest:
                message = (
                    f"input {item.name} expects {item.digest} but stage {item.from_stage} recorded "
                    f"{recorded.digest} for {item.upstream_output}"
                )
                return [], (f"input {item.name}", Reason.ARTIFACT_MISMATCH, message)
            consumed.append(
                ArtifactRecord(name=item.name, uri=recorded.uri, digest=recorded.digest, from_stage=item.from_stage)
            )
        for dataset_gate in stage.gates.datasets:
            problem = self._dataset_problem(
                dataset_gate.dataset, dataset_gate.max_age_minutes, dataset_gate.schema_version
            )
            if problem:
                return consumed, (f"dataset {dataset_gate.dataset}", Reason.WAITING_FOR_DATA, problem)
        for object_gate in stage.gates.objects:
            key = object_key(object_gate, self.namespace)
            where = f"{object_gate.kind} {key[2]}/{object_gate.name}"
            fact = self.facts.objects.get(key)
            if fact is None:
                problem = f"{where} has not been read yet"
            elif fact.problem:
                problem = f"{where}: {fact.problem}"
            elif fact.conditions.get(object_gate.condition) != object_gate.status:
                actual = fact.conditions.get(object_gate.condition)
                problem = (
                    f"{where}: condition {object_gate.condition} is {actual or 'not set'}, "
                    f"the gate wants {object_gate.status}"
                )
            else:
                continue
            return consumed, (f"object {where}", Reason.WAITING_FOR_DATA, problem)
        return consumed, None

    def _dataset_problem(self, name: str, max_age_minutes: int, schema_version: str | None) -> str:
        if self.facts.datasets is None:
            return f"dataset {name}: no signals document (or it has expired)"
        signal = self.facts.datasets.get(name)
        if signal is None:
            return f"dataset {name} is not in the signals document's datasets"
        if not signal.validated:
            return f"dataset {name} is not validated"
        age = self.now - signal.updated_at
        if age > timedelta(minutes=max_age_minutes):
            return f"dataset {name} was updated {_minutes(age)} ago; the gate allows {max_age_minutes}m"
        if schema_version is not None and signal.schema_version != schema_version:
            return (
                f"dataset {name} has schemaVersion {signal.schema_version or 'unset'}; the gate wants {schema_version}"
            )
        return ""

    # --- bookkeeping ---

    def _template(self, stage: PipelineStage) -> Mapping[str, Any]:
        return self.raw_stages[stage.name].get("template") or {}

    def _wake_at(self, moment: datetime) -> None:
        if self.plan.next_check is None or moment < self.plan.next_check:
            self.plan.next_check = moment

    def _announce(self, record: StageStatus, old: StageStatus | None) -> None:
        """One Event per transition a person would want to see; none for a round that changes nothing."""
        if old is not None and (old.phase, old.gate, old.run) == (record.phase, record.gate, record.run):
            return
        name = record.name
        if record.phase is StagePhase.SCHEDULED and (old is None or old.run != record.run):
            self.plan.events.append(("Normal", "StageStarted", f"stage {name}: run {record.run} ({record.workload})"))
        elif record.phase is StagePhase.WAITING_FOR_DATA:
            self.plan.events.append(("Normal", Reason.WAITING_FOR_DATA.value, f"stage {name}: {record.message}"))
        elif record.phase is StagePhase.SUCCEEDED:
            self.plan.events.append(("Normal", "StageSucceeded", f"stage {name}: {record.message}"))
        elif record.phase is StagePhase.RETRYING:
            self.plan.events.append(("Warning", Reason.RETRYING.value, f"stage {name}: {record.message}"))
        elif record.phase in BROKEN:
            self.plan.events.append(("Warning", record.reason or "StageFailed", f"stage {name}: {record.message}"))

    def _serves(self, name: str, record: StageStatus) -> bool:
        stage = self.pipeline.spec.stage(name)
        running = record.phase is StagePhase.RUNNING
        return running and stage is not None and stage.template.type is WorkloadType.INFERENCE

    def finish(self) -> PipelinePlan:
        stages = self.pipeline.spec.stages
        records = [_fits(self.done[stage.name]) for stage in stages]
        self.plan.stages = records
        self.plan.serving = [record.name for record in records if self._serves(record.name, record)]
        broken = {record.name for record in records if record.phase in BROKEN}
        stuck = descendants(stages, broken)
        active = any(record.phase in IN_FLIGHT for record in records)
        waiting = any(r.phase is StagePhase.WAITING_FOR_DATA and r.name not in stuck for r in records)
        if all(record.phase is StagePhase.SUCCEEDED for record in records):
            phase = PipelinePhase.SUCCEEDED
        elif active:
            phase = PipelinePhase.RUNNING
        elif broken:
            phase = PipelinePhase.FAILED if not waiting else PipelinePhase.WAITING
        elif waiting:
            phase = PipelinePhase.WAITING
        else:
            phase = PipelinePhase.PENDING
        self.plan.phase = phase
        costs = [r.estimated_hourly_cost_usd for r in records if r.phase in IN_FLIGHT and r.estimated_hourly_cost_usd]
        self.plan.hourly_cost_usd = round(sum(c for c in costs if c is not None), 4) if costs else None
        self.plan.critical_path, _ = critical_path(stages, self._hours(records))
        return self.plan

    def _hours(self, records: Sequence[StageStatus]) -> dict[str, float]:
        """Finished stages by what they took, running ones by what they took so far or their estimate."""
        hours: dict[str, float] = {}
        by_name = {stage.name: stage for stage in self.pipeline.spec.stages}
        for record in records:
            estimate = estimated_hours(by_name[record.name].template)
            if record.started_at is not None and record.phase is StagePhase.SUCCEEDED and record.finished_at:
                hours[record.name] = (record.finished_at - record.started_at).total_seconds() / 3600
            elif record.started_at is not None:
                hours[record.name] = max(estimate, (self.now - record.started_at).total_seconds() / 3600)
            else:
                hours[record.name] = estimate
        return hours


def _fits(record: StageStatus) -> StageStatus:
    """The record within its schema's bounds: a workload's words (a long placement message) are cut, never
    refused by the API server with the whole status."""
    if len(record.message) <= LONG_TEXT_MAX and len(record.reason) <= REASON_MAX:
        return record
    return _with(record, message=record.message[: LONG_TEXT_MAX - 3] + "...", reason=record.reason[:REASON_MAX])


def _with(record: StageStatus, **changes: Any) -> StageStatus:
    return record.model_copy(update=changes)


def _minutes(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


__all__ = [
    "GateFacts",
    "Launch",
    "ObjectFact",
    "PipelinePlan",
    "StageRun",
    "canonical_digest",
    "estimated_hours",
    "object_key",
    "parse_outputs",
    "pipeline_name_problem",
    "plan_pipeline",
    "same_spec",
    "stage_workload_name",
    "template_digest",
]
