"""The pipeline controller: each MLPipeline's stages become MLWorkloads as their gates open.

Watch events only update what it knows and mark their pipeline; a round plans the marked pipelines (every
pipeline once per gate poll period: datasets age, gate objects change and retries come due without an event)
with core.pipeline (pure) and performs the plan: create the released stages' workloads, delete superseded
runs, write status when it changed, one Event and audit record per transition. It is also the signature
gate for stage workloads (``stage_verdict``): a stage runs only while its pipeline verifies, its spec is
exactly the signed template and the pipeline released it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mlplacement.api.audit import AuditAction
from mlplacement.api.constants import (
    ANNOTATION_INPUTS,
    ANNOTATION_OUTPUTS,
    ANNOTATION_RERUN,
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_PIPELINE,
    LABEL_STAGE,
    ConditionType,
    Kind,
    Phase,
    Reason,
)
from mlplacement.api.errors import ApplyError, describe_validation_error
from mlplacement.api.pipeline import MLPipeline, MLPipelineStatus, PipelinePhase, StagePhase, StageStatus
from mlplacement.api.workload import VerifiedStatus
from mlplacement.config import OperatorConfig
from mlplacement.controller.ports import AuditSink, EventSink, Metrics, NoMetrics, PipelineCluster
from mlplacement.controller.state import FleetCache, object_key
from mlplacement.controller.sync import CacheSync
from mlplacement.core.audit import audit_record
from mlplacement.core.pipeline import (
    GateFacts,
    ObjectFact,
    ObjectKey,
    PipelinePlan,
    StageRun,
    parse_inputs,
    parse_outputs,
    pipeline_name_problem,
    plan_pipeline,
    same_spec,
    template_digest,
)
from mlplacement.core.pipeline import object_key as gate_key
from mlplacement.core.reconcile import Refusal, SignatureCheck, admission_view, describe
from mlplacement.core.signing import Verdict
from mlplacement.core.snapshot import signals_from_configmap
from mlplacement.core.status import api_status, placement_target, set_condition

log = logging.getLogger("mlplacement.pipelines")
# Plan events that are audit records of their own kind; the rest (a stage's end, in whichever way) are
# StageFinished with the Event's reason.
_AUDITED = {
    "StageStarted": AuditAction.STAGE_STARTED,
    "StageReset": AuditAction.STAGE_RESET,
    "StageRemoved": AuditAction.STAGE_RESET,
    Reason.WAITING_FOR_DATA.value: AuditAction.WAITING,
}
Obj = Mapping[str, Any]
# A workload's condition that explains its phase best, in order of precedence.
_EXPLAINING_CONDITIONS = (ConditionType.VERIFIED.value, ConditionType.PLACED.value, ConditionType.READY.value)


def is_stage(obj: Obj) -> bool:
    return LABEL_PIPELINE in ((obj.get("metadata") or {}).get("labels") or {})


def stage_run(obj: Obj) -> StageRun:
    """What a stage workload's status and outputs annotation report; owned when a pipeline made it."""
    meta = obj.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    owned = any(o.get("kind") == Kind.ML_PIPELINE.value and o.get("controller") for o in owners)
    status = obj.get("status") or {}
    phase = status.get("phase")
    conditions: dict[str, Mapping[str, Any]] = {str(c.get("type")): c for c in status.get("conditions") or []}
    wanted = ConditionType.READY.value if phase in (Phase.RUNNING.value, Phase.SUCCEEDED.value) else None
    explaining = conditions.get(wanted) if wanted else None
    if explaining is None:
        explaining = next(
            (conditions[t] for t in _EXPLAINING_CONDITIONS if conditions.get(t, {}).get("status") == "False"), {}
        )
    target = placement_target(status) or {}
    outputs, problem = parse_outputs((meta.get("annotations") or {}).get(ANNOTATION_OUTPUTS))
    return StageRun(
        phase=phase,
        reason=str(explaining.get("reason") or ""),
        message=str(explaining.get("message") or ""),
        target=f"{target['kind']}/{target['name']}" if target.get("kind") else "",
        hourly_cost_usd=status.get("estimatedHourlyCostUSD"),
        outputs=outputs,
        outputs_problem=problem,
        owned=owned,
    )


def _object_fact(obj: Obj | None) -> ObjectFact:
    if obj is None:
        return ObjectFact(problem="not found")
    conditions = ((obj.get("status") or {}).get("conditions")) or []
    return ObjectFact(conditions={str(c.get("type")): str(c.get("status")) for c in conditions if isinstance(c, dict)})


@dataclass
class _Known:
    view: Obj  # what admission reads: identity, generation, signature annotations, spec
    status: dict[str, Any]  # the status as last written (by us) or seen
    parsed: MLPipeline | str | None = None  # the model, or why it is invalid; None until first planned
    digests: dict[str, str] | None = None  # each stage's template_digest (canonical JSON is not free)


class PipelineController:
    def __init__(
        self,
        config: OperatorConfig,
        cache: FleetCache,
        cluster: PipelineCluster,
        events: EventSink,
        readmit: Callable[[Iterable[str]], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        audit: AuditSink | None = None,
        metrics: Metrics | None = None,
        sync: CacheSync | None = None,
    ) -> None:
        self.config = config
        self.sync = sync or CacheSync.already()  # no round before every cache a plan reads has listed
        self.metrics = metrics or NoMetrics()
        self.audit: AuditSink = audit or (lambda record: None)
        self.actor = config.pod_name or socket.gethostname()
        self.cache = cache
        self.cluster = cluster
        self.events = events
        self.readmit = readmit
        self.clock = clock
        self.monotonic = monotonic
        self.pipelines: dict[str, _Known] = {}
        self.runs: dict[str, StageRun] = {}  # stage workload key -> what it reports
        self.stages_of: dict[str, set[str]] = {}  # pipeline key -> its stage workloads' keys
        self.gate_objects: dict[ObjectKey, tuple[float, ObjectFact]] = {}  # read at (monotonic), what it said
        self.wakeup = asyncio.Event()
        self._readmit_after_round: set[str] = set()
        self._due: dict[str, datetime] = {}  # pipeline key -> when a retry comes due or its verdict may change
        self._verified: dict[str, bool] = {}  # pipeline key -> whether it verified when last planned
        self._signatures = SignatureCheck()  # each pipeline's verdict, made again only when it could change
        # Pipelines with news since their last plan; every pipeline is planned again each gate poll period
        # (datasets age, gate objects change, retries come due without an event).
        self._dirty: set[str] = set()
        self._sweep_at = monotonic()
        self._stopping = False

    # --- events ---

    async def on_pipeline_event(self, event_type: str | None, obj: Obj) -> None:
        key = object_key(obj)
        if event_type == "DELETED":
            self.pipelines.pop(key, None)
            self._signatures.forget(key)
            self._due.pop(key, None)
            self._verified.pop(key, None)
            await self._remove_stages(key)
            return
        view = admission_view(obj)
        known = self.pipelines.get(key)
        if known is not None and known.view == view:
            return  # our own status write, or nothing admission reads
        if known is None or known.view.get("metadata", {}).get("uid") != view["metadata"].get("uid"):
            status = dict(obj.get("status") or {})
            status.pop("kopf", None)
        else:
            status = known.status
        self.pipelines[key] = _Known(view, status)
        # What its stages are judged by changed: once the next round has planned (superseded runs are then no
        # longer released), each is admitted again: a stage of a pipeline that no longer verifies is stopped,
        # stages waiting for their pipeline after a start are admitted.
        self._readmit_after_round.add(key)
        self._dirty.add(key)
        self.wakeup.set()

    async def on_stage_event(self, event_type: str | None, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key = object_key(obj)
        pipeline = f"{meta.get('namespace', '')}/{(meta.get('labels') or {}).get(LABEL_PIPELINE, '')}"
        if event_type == "DELETED":
            self.runs.pop(key, None)
            self.stages_of.get(pipeline, set()).discard(key)
        else:
            run = stage_run(obj)
            if self.runs.get(key) == run and key in self.stages_of.get(pipeline, ()):
                return
            self.runs[key] = run
            self.stages_of.setdefault(pipeline, set()).add(key)
        if pipeline in self.pipelines:
            self._dirty.add(pipeline)
            self.wakeup.set()

    def keys_changed(self) -> None:
        """The trusted keys changed: every pipeline's verdict is made again in the next round."""
        self._dirty |= set(self.pipelines)
        self.wakeup.set()

    # --- the stage gate ---

    def stage_verdict(self, obj: Obj) -> Verdict | Refusal | None:
        """The signature verdict of a stage workload: its pipeline's, if the stage is exactly what was signed and
        released. None: its pipeline is not known yet after a start (the workload waits, untouched)."""
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        pipeline_name, stage_name = labels.get(LABEL_PIPELINE, ""), labels.get(LABEL_STAGE, "")
        key = f"{namespace}/{pipeline_name}"
        known = self.pipelines.get(key)
        if known is None:
            if not self.sync.ready:
                return None
            return Refusal(
                ConditionType.PLACED,
                Reason.STAGE_NOT_RELEASED,
                f"MLPipeline {key} does not exist: a stage runs only as part of its pipeline",
                phase=Phase.WAITING,
            )
        verdict = self._verdict(known)
        if not verdict.ok:
            return Refusal(ConditionType.VERIFIED, verdict.reason, f"MLPipeline {pipeline_name}: {verdict.message}")
        stages = {s.get("name"): s for s in ((known.view.get("spec") or {}).get("stages") or [])}
        stage = stages.get(stage_name)
        if stage is None:
            return Refusal(
                ConditionType.VERIFIED, Reason.STAGE_MODIFIED, f"MLPipeline {pipeline_name} has no stage {stage_name!r}"
            )
        if not same_spec(obj.get("spec"), stage.get("template")):
            return Refusal(
                ConditionType.VERIFIED,
                Reason.STAGE_MODIFIED,
                f"spec differs from stage {stage_name!r} of the signed MLPipeline {pipeline_name}: a stage is "
                "changed through its pipeline (edit and re-sign it), never by hand",
            )
        record: Mapping[str, Any] = next(
            (s for s in known.status.get("stages") or [] if s.get("name") == stage_name), {}
        )
        consumed = {
            str(a.get("name")): {"uri": str(a.get("uri") or ""), "digest": str(a.get("digest") or "")}
            for a in record.get("consumed") or []
        }
        told = parse_inputs((meta.get("annotations") or {}).get(ANNOTATION_INPUTS))
        if record.get("workload") == name and told != consumed:
            return Refusal(
                ConditionType.VERIFIED,
                Reason.ARTIFACT_MISMATCH,
                f"its {ANNOTATION_INPUTS} annotation differs from what MLPipeline {pipeline_name} recorded for stage "
                f"{stage_name!r}: it would read other artifacts than its lineage says",
            )
        if record.get("workload") != name:
            why = record.get("message") or "its gates are not open"
            return Refusal(
                ConditionType.PLACED,
                Reason.STAGE_NOT_RELEASED,
                f"not released by MLPipeline {pipeline_name} (stage {stage_name}: {why})",
                phase=Phase.WAITING,
            )
        return Verdict(
            Reason.VERIFIED,
            f"stage {stage_name!r} of MLPipeline {pipeline_name} signed by {verdict.key_id!r}",
            verdict.key_id,
            verdict.digest,
        )

    def _verdict(self, known: _Known) -> Verdict:
        key = object_key(known.view)
        return self._signatures.verdict(key, known.view, self.cache.keyring, self.clock())

    # --- the loop ---

    async def run(self) -> None:
        await self.sync.wait()
        while not self._stopping:
            timeout = self.config.gate_poll_seconds
            if self._due:  # a retry's backoff may end before the next sweep
                until = (min(self._due.values()) - self.clock()).total_seconds()
                timeout = min(timeout, max(until, 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=timeout)
            self.wakeup.clear()
            if self._stopping:
                break
            now = self.clock()
            self._dirty |= {key for key, due in self._due.items() if due <= now}
            keys: set[str] | None = None
            if self.monotonic() < self._sweep_at:
                keys = set(self._dirty)
            else:
                self._sweep_at = self.monotonic() + self.config.gate_poll_seconds
            try:
                await self.round(keys)
            except Exception:
                log.exception("the pipeline round failed; the next one tries again")

    def stop(self) -> None:
        self._stopping = True
        self.wakeup.set()

    async def round(self, keys: set[str] | None = None) -> dict[str, PipelinePlan | Refusal]:
        """Plan and act on ``keys`` (every pipeline when None); returns what was decided per pipeline."""
        now = self.clock().replace(microsecond=0)  # status times to the second, like the API's own
        signals, _problem = signals_from_configmap(self.cache.signals_configmap)
        datasets = signals.datasets if signals is not None else None
        results: dict[str, PipelinePlan | Refusal] = {}
        for key in sorted(self.pipelines if keys is None else keys):
            self._dirty.discard(key)
            known = self.pipelines.get(key)
            if known is None:
                continue
            results[key] = outcome = await self._reconcile(key, known, now, datasets)
            # Planned again without an event when a retry comes due or its signature could stop holding.
            moments = [outcome.next_check if isinstance(outcome, PipelinePlan) else None, self._signatures.until(key)]
            found = [moment for moment in moments if moment is not None]
            if found:
                self._due[key] = min(found)
            else:
                self._due.pop(key, None)
            if key in self._readmit_after_round:
                self._readmit_after_round.discard(key)
                await self.readmit(sorted(self.stages_of.get(key, ())))
        counts: dict[str, int] = {}
        for known in self.pipelines.values():
            for stage in known.status.get("stages") or []:
                counts[str(stage.get("phase"))] = counts.get(str(stage.get("phase")), 0) + 1
        self.metrics.pipeline_stages(counts)  # refreshed every round, idle or not
        return results

    async def _reconcile(self, key: str, known: _Known, now: datetime, datasets: Any) -> PipelinePlan | Refusal:
        view = known.view
        meta = view.get("metadata") or {}
        generation = meta.get("generation")
        if known.parsed is None:  # once per version of the object: a sweep re-plans, it does not re-parse
            try:
                parsed = MLPipeline.model_validate(view)
                known.parsed = pipeline_name_problem(parsed.metadata.name) or parsed
            except ValidationError as exc:
                known.parsed = describe_validation_error(exc, f"{describe(view)}: ")
        pipeline, problem = (known.parsed, None) if isinstance(known.parsed, MLPipeline) else (None, known.parsed)
        if pipeline is None or problem:
            refusal = Refusal(ConditionType.READY, Reason.INVALID_SPEC, str(problem))
            await self._write_refusal(key, known, refusal, now)
            return refusal
        verdict = self._verdict(known)
        if self._verified.get(key, verdict.ok) != verdict.ok:
            # It expired (or its key's validity began or ended) with no event: its stages are judged again.
            self._readmit_after_round.add(key)
        self._verified[key] = verdict.ok
        if not verdict.ok:
            refusal = Refusal(ConditionType.VERIFIED, verdict.reason, verdict.message)
            await self._write_refusal(key, known, refusal, now)
            return refusal
        raw_stages = {str(s.get("name")): s for s in (view.get("spec") or {}).get("stages") or []}
        previous = {
            record.name: record
            for record in (_stage_status(s) for s in known.status.get("stages") or [])
            if record is not None
        }
        namespace = pipeline.metadata.namespace or ""
        runs = {
            workload_key.partition("/")[2]: run
            for workload_key in self.stages_of.get(key, ())
            if (run := self.runs.get(workload_key)) is not None
        }
        objects = await self._read_gate_objects(pipeline, previous, namespace)
        rerun, handled = self._rerun_asked(view, known, raw_stages)
        facts = GateFacts(now=now, datasets=datasets, objects=objects)
        if known.digests is None:
            known.digests = {name: template_digest(raw) for name, raw in raw_stages.items()}
        plan = plan_pipeline(pipeline, raw_stages, previous, runs, facts, rerun_asked=rerun, digests=known.digests)
        status = self._status(known, pipeline, plan, verdict, generation, now, handled)
        # Released in memory before the workloads exist: their first admission must find them released.
        await self._write_status(key, known, status)
        for launch in plan.launches:
            await self._create(view, pipeline, launch.stage, launch.workload, launch.spec, launch.inputs)
        for name in plan.superseded:
            await self._delete(namespace, name)
        for type_, reason, message in plan.events:
            self.events(view, type_, reason, message)
            action = _AUDITED.get(reason, AuditAction.STAGE_FINISHED)
            self._record(action, view, reason, message, verdict)
        return plan

    def _record(self, action: AuditAction, view: Obj, reason: str, message: str, verdict: Verdict | None) -> None:
        record = audit_record(
            now=self.clock(), actor=self.actor, action=action, obj=view, reason=reason, message=message
        )
        if verdict is not None and verdict.ok:
            record = record.model_copy(
                update={"workload_key_id": verdict.key_id or "", "workload_digest": verdict.digest or ""}
            )
        self.audit(record)

    def _rerun_asked(self, view: Obj, known: _Known, raw_stages: Mapping[str, Any]) -> tuple[list[str], str | None]:
        """The stages a new mlplacement.io/rerun annotation asks to run again (once per value), and the value
        status records as handled."""
        value = str(((view.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_RERUN) or "")
        handled = known.status.get("rerunHandled")
        if not value or value == handled:
            return [], handled
        names = [name.strip() for name in value.split("@", 1)[0].split(",") if name.strip()]
        unknown = [name for name in names if name not in raw_stages]
        if unknown:
            self.events(view, "Warning", "RerunIgnored", f"{ANNOTATION_RERUN}: no stage {', '.join(unknown)}")
        return [name for name in names if name in raw_stages], value

    def _status(
        self,
        known: _Known,
        pipeline: MLPipeline,
        plan: PipelinePlan,
        verdict: Verdict,
        generation: int | None,
        now: datetime,
        rerun_handled: str | None,
    ) -> dict[str, Any]:
        conditions = list(known.status.get("conditions") or [])
        conditions = set_condition(
            conditions, ConditionType.VERIFIED, True, Reason.VERIFIED, verdict.message, generation, now
        )
        broken = [s for s in plan.stages if s.phase in (StagePhase.FAILED, StagePhase.REFUSED)]
        if plan.phase is PipelinePhase.SUCCEEDED:
            ready: tuple[bool, str, str] = (True, Reason.SUCCEEDED.value, f"all {len(plan.stages)} stages succeeded")
        elif plan.ready:
            serving = ", ".join(plan.serving)
            ready = (True, "Serving", f"{serving} serving; every other stage succeeded")
        else:
            blocking = broken[0] if broken else next(s for s in plan.stages if s.phase is not StagePhase.SUCCEEDED)
            ready = (False, blocking.reason or blocking.phase.value, f"stage {blocking.name}: {blocking.message}")
        conditions = set_condition(conditions, ConditionType.READY, ready[0], ready[1], ready[2], generation, now)
        if broken:
            names = ", ".join(f"{s.name} ({s.reason})" for s in broken)
            conditions = set_condition(
                conditions, ConditionType.DEGRADED, True, broken[0].reason or "StageFailed", names, generation, now
            )
        else:
            conditions = set_condition(
                conditions, ConditionType.DEGRADED, False, "NoFailedStage", "no stage failed", generation, now
            )
        status = MLPipelineStatus(
            observed_generation=generation,
            phase=plan.phase,
            conditions=conditions,
            verified=VerifiedStatus(key_id=verdict.key_id or "", digest=verdict.digest or ""),
            progress=f"{plan.done}/{len(plan.stages)}",
            stages_done=plan.done,
            stages_total=len(plan.stages),
            estimated_hourly_cost_usd=plan.hourly_cost_usd,
            critical_path=plan.critical_path,
            stages=plan.stages,
            rerun_handled=rerun_handled,
        )
        return status.model_dump(mode="json", by_alias=True, exclude_none=True)

    async def _write_refusal(self, key: str, known: _Known, refusal: Refusal, now: datetime) -> None:
        generation = (known.view.get("metadata") or {}).get("generation")
        conditions = set_condition(
            known.status.get("conditions") or [],
            refusal.condition,
            False,
            refusal.reason,
            refusal.message,
            generation,
            now,
        )
        if refusal.condition is not ConditionType.READY:
            conditions = set_condition(
                conditions, ConditionType.READY, False, refusal.reason, refusal.message, generation, now
            )
        status = api_status(
            MLPipelineStatus(
                observed_generation=generation,
                phase=PipelinePhase.REFUSED,
                conditions=conditions,
                stages=[s for s in (_stage_status(r) for r in known.status.get("stages") or []) if s is not None],
            )
        )
        if await self._write_status(key, known, status):
            self.events(known.view, "Warning", refusal.reason.value, refusal.message)
            self._record(AuditAction.REFUSED, known.view, refusal.reason.value, refusal.message, None)

    async def _write_status(self, key: str, known: _Known, status: dict[str, Any]) -> bool:
        if _comparable(known.status) == _comparable(status):
            return False
        known.status = status
        namespace, _, name = key.partition("/")
        try:
            await asyncio.to_thread(self.cluster.apply_pipeline_status, namespace, name, status)
        except Exception as exc:  # written again next round: the in-memory status is what we want there
            log.warning("could not write the status of MLPipeline %s: %s", key, exc)
            known.status = {**status, "_unwritten": True}
            return False
        return True

    async def _create(self, view: Obj, pipeline: MLPipeline, stage: str, workload: str, spec: Obj, inputs: Obj) -> None:
        meta = pipeline.metadata
        obj: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": Kind.ML_WORKLOAD.value,
            "metadata": {
                "name": workload,
                "namespace": meta.namespace,
                "labels": {LABEL_PIPELINE: meta.name, LABEL_STAGE: stage, LABEL_MANAGED_BY: "mlplacement"},
                "annotations": {ANNOTATION_INPUTS: json.dumps(inputs, sort_keys=True)} if inputs else {},
                "ownerReferences": [
                    {
                        "apiVersion": API_VERSION,
                        "kind": Kind.ML_PIPELINE.value,
                        "name": meta.name,
                        "uid": meta.uid,
                        "controller": True,
                    }
                ],
            },
            "spec": dict(spec),
        }
        try:
            await asyncio.to_thread(self.cluster.create_stage, obj)
            # Known from now, not only once its watch event comes: the next round must not create it again.
            key = f"{meta.namespace}/{workload}"
            self.runs.setdefault(key, StageRun())
            self.stages_of.setdefault(f"{meta.namespace}/{meta.name}", set()).add(key)
        except ApplyError as exc:
            self.events(view, "Warning", "StageCreateFailed", f"stage {stage}: MLWorkload {workload}: {exc.message}")
            # Its record says released: the next round finds no workload and creates it again.
        except Exception as exc:
            log.warning("could not create stage workload %s: %s", workload, exc)

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await asyncio.to_thread(self.cluster.delete_stage, namespace, name)
        except Exception as exc:
            log.warning("could not delete superseded stage workload %s/%s: %s", namespace, name, exc)

    async def _remove_stages(self, key: str) -> None:
        """A deleted pipeline's stages go with it (owner references do it too; this does not wait for the
        garbage collector, and stops their children now)."""
        for workload_key in sorted(self.stages_of.pop(key, set())):
            namespace, _, name = workload_key.partition("/")
            await self._delete(namespace, name)
            self.runs.pop(workload_key, None)

    async def _read_gate_objects(
        self, pipeline: MLPipeline, previous: Mapping[str, StageStatus], namespace: str
    ) -> dict[ObjectKey, ObjectFact]:
        """The objects named by gates of stages not started yet, each read at most once per gate poll period."""
        wanted: set[ObjectKey] = set()
        for stage in pipeline.spec.stages:
            record = previous.get(stage.name)
            if record is not None and record.workload and record.phase is not StagePhase.RETRYING:
                continue
            wanted |= {gate_key(gate, namespace) for gate in stage.gates.objects}
        facts: dict[ObjectKey, ObjectFact] = {}
        now = self.monotonic()
        for gate in sorted(wanted):
            seen = self.gate_objects.get(gate)
            if seen is None or now - seen[0] >= self.config.gate_poll_seconds:
                try:
                    fact = _object_fact(await asyncio.to_thread(self.cluster.read_object, *gate))
                except ApplyError as exc:
                    fact = ObjectFact(problem=f"cannot be read ({exc.reason}: {exc.message})")
                except Exception as exc:
                    fact = ObjectFact(problem=f"cannot be read ({type(exc).__name__})")
                seen = (now, fact)
                self.gate_objects[gate] = seen
            facts[gate] = seen[1]
        return facts


def _stage_status(raw: Any) -> StageStatus | None:
    try:
        return StageStatus.model_validate(raw)
    except ValidationError:
        return None


def _comparable(status: Mapping[str, Any]) -> Any:
    """A status without the times conditions were last written: equal statuses are not written twice."""
    return {key: value for key, value in status.items() if key != "_unwritten"} if "_unwritten" not in status else None


__all__ = ["PipelineController", "is_stage", "stage_run"]
