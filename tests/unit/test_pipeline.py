"""MLPipeline rules: the DAG, readiness gates, lineage, retries and re-runs, as pure planning."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlplacement.api.dag import critical_path, descendants, topological_order
from mlplacement.api.errors import describe_validation_error
from mlplacement.api.pipeline import MLPipeline, PipelinePhase, StagePhase, StageStatus
from mlplacement.api.signals import DatasetSignal
from mlplacement.core.pipeline import (
    GateFacts,
    ObjectFact,
    PipelinePlan,
    StageRun,
    parse_outputs,
    plan_pipeline,
    template_digest,
)
from tests.builders import make_pipeline, make_stage

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FEATURES = "sha256:" + "1" * 64
MODEL = "sha256:" + "2" * 64
OTHER = "sha256:" + "9" * 64


def refusal_of(obj: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        MLPipeline.model_validate(obj)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        pytest.param(
            [make_stage("prepare"), make_stage("train", depends_on=["prepar"])],
            "stages[1].dependsOn[0]: unknown stage 'prepar' (stages: prepare, train)",
            id="a stage depending on a misspelt stage is refused naming the path and the stages there are",
        ),
        pytest.param(
            [make_stage("a", depends_on=["b"]), make_stage("b", depends_on=["a"])],
            "stages form a cycle",
            id="two stages waiting on each other form a cycle",
        ),
        pytest.param(
            [make_stage("a", depends_on=["c"]), make_stage("b", depends_on=["a"]), make_stage("c", depends_on=["b"])],
            "-> ",
            id="a longer cycle is shown as its path",
        ),
        pytest.param(
            [make_stage("a", depends_on=["a"])],
            "stages[0].dependsOn[0]: stage 'a' depends on itself",
            id="a stage depending on itself",
        ),
        pytest.param(
            [make_stage("a"), make_stage("a")],
            "stages[1].name: stage 'a' is already stages[0]",
            id="two stages of one name",
        ),
        pytest.param(
            [
                make_stage("a", outputs=[{"name": "x", "uri": "s3://x"}]),
                make_stage("b", inputs=[{"name": "x", "fromStage": "a"}]),
            ],
            "stages[1].inputs[0].fromStage: 'a' is not in the stage's dependsOn",
            id="an input from a stage the stage does not wait for",
        ),
        pytest.param(
            [make_stage("a"), make_stage("b", depends_on=["a"], inputs=[{"name": "x", "fromStage": "a"}])],
            "stages[1].inputs[0]: stage 'a' has no output 'x' (outputs: none)",
            id="an input naming an output its upstream does not declare",
        ),
        pytest.param(
            [make_stage("a", template={"dependsOn": ["other"]})],
            "stages[0].template.dependsOn: stages are ordered by the stage's dependsOn",
            id="a template with a dependsOn of its own",
        ),
        pytest.param(
            [make_stage("a", inputs=[{"name": "x", "fromStage": "b", "uri": "s3://x"}])],
            "an input comes from a stage (fromStage) or a uri, not both",
            id="an input from a stage and a uri at once",
        ),
    ],
)
def test_invalid_dags_are_refused_with_the_path(stages: list[dict[str, Any]], expected: str) -> None:
    message = refusal_of(make_pipeline(*stages))
    assert expected in message


def test_the_example_shape_is_a_dag() -> None:
    pipeline = MLPipeline.model_validate(make_pipeline())
    assert topological_order(pipeline.spec.stages) == ["prepare", "train", "serve"]
    assert descendants(pipeline.spec.stages, ["train"]) == {"train", "serve"}


# --- planning ---


class Run:
    """Drives plan_pipeline round by round as the controller does: the last status goes back in."""

    def __init__(self, obj: dict[str, Any] | None = None, **facts: Any) -> None:
        self.obj = obj or make_pipeline()
        self.previous: dict[str, StageStatus] = {}
        self.runs: dict[str, StageRun] = {}
        self.facts = facts
        self.now = NOW

    @property
    def pipeline(self) -> MLPipeline:
        return MLPipeline.model_validate(self.obj)

    def plan(self) -> PipelinePlan:
        raw = {stage["name"]: stage for stage in self.obj["spec"]["stages"]}
        plan = plan_pipeline(self.pipeline, raw, self.previous, self.runs, GateFacts(now=self.now, **self.facts))
        self.previous = {stage.name: stage for stage in plan.stages}
        for launch in plan.launches:
            self.runs.setdefault(launch.workload, StageRun(phase="Pending"))
        return plan

    def stage(self, name: str) -> StageStatus:
        return self.previous[name]

    def finish(self, stage: str, phase: str = "Succeeded", **outputs: str) -> None:
        workload = self.stage(stage).workload
        self.runs[workload] = StageRun(phase=phase, outputs=outputs, target="GPUPool/eu-a100")


def test_a_new_pipeline_starts_its_first_stage_only() -> None:
    run = Run()
    plan = run.plan()
    assert [launch.workload for launch in plan.launches] == ["recsys-prepare-1"]
    assert plan.launches[0].spec == run.obj["spec"]["stages"][0]["template"]
    train = run.stage("train")
    assert (train.phase, train.reason, train.gate) == (StagePhase.WAITING_FOR_DATA, "WaitingForData", "stage prepare")
    assert "stage prepare has not succeeded: Scheduled" in train.message
    assert plan.phase is PipelinePhase.RUNNING
    assert run.plan().launches == []  # the next round, nothing new: no second workload


def test_a_stage_that_succeeded_with_its_outputs_recorded_releases_the_next_with_lineage() -> None:
    run = Run()
    run.plan()
    run.finish("prepare", features=FEATURES)
    plan = run.plan()
    assert [launch.workload for launch in plan.launches] == ["recsys-train-1"]
    prepare, train = run.stage("prepare"), run.stage("train")
    assert prepare.phase is StagePhase.SUCCEEDED
    assert [(a.name, a.digest) for a in prepare.produced] == [("features", FEATURES)]
    assert [(a.name, a.digest, a.from_stage, a.uri) for a in train.consumed] == [
        ("features", FEATURES, "prepare", "s3://data/features/")
    ]
    assert ("Normal", "StageSucceeded", "stage prepare: succeeded; produced features") in plan.events


def test_a_stage_whose_outputs_are_not_recorded_holds_the_next_stage_back() -> None:
    run = Run()
    run.plan()
    run.finish("prepare")
    plan = run.plan()
    assert plan.launches == []
    assert "not recorded yet" in run.stage("prepare").message
    assert run.stage("train").message == "stage prepare succeeded but has not recorded features"


def test_an_input_digest_that_differs_from_what_upstream_recorded_refuses_the_stage() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][1]["inputs"][0]["digest"] = OTHER
    run = Run(obj)
    run.plan()
    run.finish("prepare", features=FEATURES)
    plan = run.plan()
    train = run.stage("train")
    assert plan.launches == []
    assert (train.phase, train.reason) == (StagePhase.REFUSED, "ArtifactMismatch")
    assert f"input features expects {OTHER} but stage prepare recorded {FEATURES}" in train.message
    assert plan.phase is PipelinePhase.FAILED


def test_an_output_recorded_unlike_its_declared_digest_fails_the_stage() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][0]["outputs"][0]["digest"] = FEATURES
    run = Run(obj)
    run.plan()
    run.finish("prepare", features=OTHER)
    plan = run.plan()
    assert (run.stage("prepare").phase, run.stage("prepare").reason) == (StagePhase.FAILED, "ArtifactMismatch")
    assert plan.launches == []
    assert run.stage("train").phase is StagePhase.WAITING_FOR_DATA


def test_a_declared_output_digest_counts_as_recorded() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][0]["outputs"][0]["digest"] = FEATURES
    run = Run(obj)
    run.plan()
    run.finish("prepare")
    assert [launch.workload for launch in run.plan().launches] == ["recsys-train-1"]


def test_a_failed_stage_retries_alone_after_its_backoff() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][1]["retry"] = {"maxAttempts": 3, "backoffSeconds": 120}
    run = Run(obj)
    run.plan()
    run.finish("prepare", features=FEATURES)
    run.plan()
    run.finish("train", phase="Failed")
    plan = run.plan()
    train = run.stage("train")
    assert (train.phase, train.attempts) == (StagePhase.RETRYING, 1)
    assert plan.next_check == NOW + timedelta(seconds=120)
    assert plan.launches == []
    run.now = NOW + timedelta(seconds=121)
    plan = run.plan()
    assert [launch.workload for launch in plan.launches] == ["recsys-train-2"]
    assert plan.superseded == ["recsys-train-1"]
    assert run.stage("prepare").run == 1  # completed stages never rerun
    assert run.stage("train").phase is StagePhase.SCHEDULED


def test_a_stage_out_of_attempts_fails_and_its_descendants_never_start() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][0]["retry"] = {"maxAttempts": 1}
    run = Run(obj)
    run.plan()
    run.finish("prepare", phase="Failed")
    plan = run.plan()
    assert run.stage("prepare").phase is StagePhase.FAILED
    assert "failed 1 of 1 attempts" in run.stage("prepare").message
    assert plan.phase is PipelinePhase.FAILED
    assert plan.launches == []


def test_a_changed_template_reruns_that_stage_and_its_descendants_only() -> None:
    run = Run()
    run.plan()
    run.finish("prepare", features=FEATURES)
    run.plan()
    run.finish("train", model=MODEL)
    run.plan()
    run.finish("serve")
    assert run.plan().phase is PipelinePhase.SUCCEEDED
    run.obj = copy.deepcopy(run.obj)
    run.obj["spec"]["stages"][1]["template"]["args"] = ["--epochs", "5"]
    plan = run.plan()
    assert [launch.workload for launch in plan.launches] == ["recsys-train-2"]
    assert sorted(plan.superseded) == ["recsys-serve-1", "recsys-train-1"]
    assert (run.stage("prepare").phase, run.stage("prepare").run) == (StagePhase.SUCCEEDED, 1)
    assert run.stage("serve").phase is StagePhase.WAITING_FOR_DATA
    assert ("Normal", "StageReset", "stage serve runs again: a stage it depends on runs again") in plan.events


def test_a_gate_or_retry_change_does_not_rerun_a_stage() -> None:
    stage = make_stage("a")
    changed = {**stage, "retry": {"maxAttempts": 5}, "gates": {"datasets": [{"dataset": "x"}]}}
    assert template_digest(stage) == template_digest(changed)
    assert template_digest(stage) != template_digest({**stage, "template": {**stage["template"], "image": "x:2"}})


def _gated(**gates: Any) -> dict[str, Any]:
    return make_pipeline(make_stage("train", gates=gates))


def dataset(**fields: Any) -> DatasetSignal:
    return DatasetSignal.model_validate({"updatedAt": NOW - timedelta(minutes=10), "validated": True, **fields})


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        pytest.param(None, "dataset clicks: no signals document (or it has expired)", id="no signals document"),
        pytest.param({}, "dataset clicks is not in the signals document's datasets", id="dataset not reported"),
        pytest.param({"clicks": dataset(validated=False)}, "dataset clicks is not validated", id="not validated"),
        pytest.param(
            {"clicks": dataset(updatedAt=NOW - timedelta(hours=3, minutes=5))},
            "dataset clicks was updated 3h05m ago; the gate allows 60m",
            id="older than the gate allows",
        ),
        pytest.param(
            {"clicks": dataset(schemaVersion="3")},
            "dataset clicks has schemaVersion 3; the gate wants 4",
            id="another schema version",
        ),
        pytest.param({"clicks": dataset(schemaVersion="4")}, "", id="fresh, validated, expected schema: open"),
    ],
)
def test_dataset_gates(datasets: dict[str, DatasetSignal] | None, message: str) -> None:
    gate = {"dataset": "clicks", "maxAgeMinutes": 60, "schemaVersion": "4"}
    run = Run(_gated(datasets=[gate]), datasets=datasets)
    plan = run.plan()
    train = run.stage("train")
    if message:
        assert (train.phase, train.gate, train.message) == (StagePhase.WAITING_FOR_DATA, "dataset clicks", message)
        assert (plan.launches, plan.phase) == ([], PipelinePhase.WAITING)
    else:
        assert [launch.stage for launch in plan.launches] == ["train"]


OBJECT_GATE = {"apiVersion": "data.example.com/v1", "kind": "Dataset", "name": "clicks"}
OBJECT_KEY = ("data.example.com/v1", "Dataset", "team-a", "clicks")


@pytest.mark.parametrize(
    ("fact", "message"),
    [
        pytest.param(None, "Dataset team-a/clicks has not been read yet", id="not read yet"),
        pytest.param(
            ObjectFact(problem="forbidden: grant get on datasets.data.example.com"),
            "Dataset team-a/clicks: forbidden: grant get on datasets.data.example.com",
            id="the operator may not read it",
        ),
        pytest.param(
            ObjectFact(conditions={"Ready": "False"}),
            "Dataset team-a/clicks: condition Ready is False, the gate wants True",
            id="condition false",
        ),
        pytest.param(ObjectFact(), "Dataset team-a/clicks: condition Ready is not set", id="no condition yet"),
        pytest.param(ObjectFact(conditions={"Ready": "True"}), "", id="Ready=True opens the gate"),
    ],
)
def test_object_condition_gates(fact: ObjectFact | None, message: str) -> None:
    run = Run(_gated(objects=[OBJECT_GATE]), objects={OBJECT_KEY: fact} if fact else {})
    plan = run.plan()
    train = run.stage("train")
    if message:
        assert train.phase is StagePhase.WAITING_FOR_DATA
        assert train.message.startswith(message)
    else:
        assert [launch.stage for launch in plan.launches] == ["train"]


def test_waiting_is_announced_once_per_gate() -> None:
    run = Run(_gated(datasets=[{"dataset": "clicks"}]), datasets={})
    assert [e[1] for e in run.plan().events] == ["WaitingForData"]
    assert run.plan().events == []


def test_critical_path_is_the_longest_chain() -> None:
    stages = MLPipeline.model_validate(
        make_pipeline(
            make_stage("a"),
            make_stage("b", depends_on=["a"]),
            make_stage("c", depends_on=["a"]),
            make_stage("d", depends_on=["b", "c"]),
        )
    ).spec.stages
    assert critical_path(stages, {"a": 1, "b": 5, "c": 2, "d": 1}) == (["a", "b", "d"], 7)


@pytest.mark.parametrize(
    ("text", "digests", "problem"),
    [
        pytest.param(None, {}, "", id="no annotation"),
        pytest.param('{"model": "' + MODEL + '"}', {"model": MODEL}, "", id="a digest per output"),
        pytest.param('{"model": {"digest": "' + MODEL + '"}}', {"model": MODEL}, "", id="an object with digest"),
        pytest.param("{", {}, "not JSON", id="not JSON"),
        pytest.param('{"model": "md5:abc"}', {}, "not a sha256", id="not a sha256 digest"),
    ],
)
def test_outputs_annotation(text: str | None, digests: dict[str, str], problem: str) -> None:
    found, why = parse_outputs(text)
    assert found == digests
    assert problem in why


# --- properties over random DAGs and run outcomes ---


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 6))
    stages = []
    for index in range(count):
        upstream = draw(st.lists(st.integers(0, index - 1), unique=True, max_size=3)) if index else []
        stages.append(
            make_stage(
                f"s{index}",
                depends_on=[f"s{i}" for i in upstream],
                outputs=[{"name": "out", "uri": f"s3://b/s{index}", "digest": FEATURES}],
                retry={"maxAttempts": draw(st.integers(1, 3)), "backoffSeconds": 0},
            )
        )
    return make_pipeline(*stages)


@settings(max_examples=80, deadline=None)
@given(
    obj=dags(),
    outcomes=st.lists(
        st.sampled_from(["Succeeded", "Failed", "Running", "Placed", "Refused", "gone"]), min_size=1, max_size=40
    ),
)
def test_stages_start_only_after_their_upstream_and_a_success_is_never_redone(
    obj: dict[str, Any], outcomes: list[str]
) -> None:
    run = Run(obj)
    pipeline = run.pipeline
    upstream = {stage.name: set(stage.depends_on) for stage in pipeline.spec.stages}
    succeeded: set[str] = set()
    outcome = iter(outcomes)
    for _ in range(len(outcomes) + 1):
        plan = run.plan()
        current = {s.workload for s in plan.stages}
        assert not current & set(plan.superseded)  # never deletes what a stage follows
        assert len({launch.stage for launch in plan.launches}) == len(plan.launches)  # one run per stage at a time
        for launch in plan.launches:
            assert all(run.stage(up).phase is StagePhase.SUCCEEDED for up in upstream[launch.stage])
            assert launch.stage not in succeeded
        succeeded |= {s.name for s in plan.stages if s.phase is StagePhase.SUCCEEDED}
        for name in plan.superseded:
            run.runs.pop(name, None)
        for stage in plan.stages:
            if stage.phase in (StagePhase.SCHEDULED, StagePhase.RUNNING, StagePhase.REFUSED) and not stage.gate:
                result = next(outcome, "Running")
                if result == "gone":  # deleted by hand: its pipeline creates it again
                    run.runs.pop(stage.workload, None)
                else:
                    run.runs[stage.workload] = StageRun(phase=result)
        run.now += timedelta(seconds=1)
    names = [stage.name for stage in pipeline.spec.stages]
    assert set(run.previous) == set(names)


def test_an_inference_stage_that_serves_counts_as_done_and_opens_its_downstream() -> None:
    serve = make_stage("serve", template={"type": "Inference", "intent": {"latencyTargetMs": 50}})
    run = Run(make_pipeline(serve, make_stage("smoke-test", depends_on=["serve"])))
    run.plan()
    run.runs["recsys-serve-1"] = StageRun(phase="Running", target="Edge/store-17")
    plan = run.plan()
    assert plan.serving == ["serve"]
    assert [launch.stage for launch in plan.launches] == ["smoke-test"]
    run.finish("smoke-test")
    plan = run.plan()
    assert (plan.ready, plan.done, plan.phase) == (True, 2, PipelinePhase.RUNNING)


def test_a_removed_stage_and_runs_nothing_points_at_are_deleted_but_not_someone_elses() -> None:
    run = Run()
    run.plan()
    run.runs["recsys-prepare-0"] = StageRun(phase="Failed")  # an old run whose delete did not happen
    run.runs["recsys-train-9"] = StageRun(phase="Pending", owned=False)  # labelled as a stage by someone else
    run.obj = make_pipeline(make_stage("train"))  # prepare (and serve) leave the pipeline
    plan = run.plan()
    assert sorted(plan.superseded) == ["recsys-prepare-0", "recsys-prepare-1"]
    assert ("Normal", "StageRemoved", "stage prepare is no longer in the pipeline") in plan.events
    assert [stage.name for stage in plan.stages] == ["train"]


def test_a_rerun_asked_for_runs_that_stage_and_what_depends_on_it_again() -> None:
    obj = make_pipeline()
    obj["spec"]["stages"][0]["retry"] = {"maxAttempts": 1}
    run = Run(obj)
    run.plan()
    run.finish("prepare", phase="Failed")
    assert run.plan().phase is PipelinePhase.FAILED
    raw = {stage["name"]: stage for stage in run.obj["spec"]["stages"]}
    facts = GateFacts(now=NOW)
    plan = plan_pipeline(run.pipeline, raw, run.previous, run.runs, facts, rerun_asked=["prepare"])
    assert [launch.workload for launch in plan.launches] == ["recsys-prepare-2"]
    assert plan.superseded == ["recsys-prepare-1"]
    assert ("Normal", "StageReset", "stage prepare runs again: a rerun was asked for") in plan.events
    prepare = next(s for s in plan.stages if s.name == "prepare")
    assert (prepare.phase, prepare.attempts) == (StagePhase.SCHEDULED, 0)


def test_a_stage_refused_for_a_passing_reason_follows_its_workload_when_it_runs_again() -> None:
    run = Run()
    run.plan()
    run.runs["recsys-prepare-1"] = StageRun(phase="Refused", reason="UnknownKey", message="key 'platform' ...")
    run.plan()
    assert (run.stage("prepare").phase, run.stage("prepare").reason) == (StagePhase.REFUSED, "UnknownKey")
    run.runs["recsys-prepare-1"] = StageRun(phase="Running", target="GPUPool/a")  # the key is trusted again
    run.plan()
    assert run.stage("prepare").phase is StagePhase.RUNNING


def test_a_refused_stage_workload_deleted_by_hand_is_created_again_from_the_template() -> None:
    run = Run()
    run.plan()
    run.runs["recsys-prepare-1"] = StageRun(phase="Refused", reason="StageModified")
    run.plan()
    del run.runs["recsys-prepare-1"]
    plan = run.plan()
    assert [(launch.workload, launch.spec) for launch in plan.launches] == [
        ("recsys-prepare-1", run.obj["spec"]["stages"][0]["template"])
    ]


def test_a_retry_whose_gates_closed_meanwhile_waits_then_replaces_the_failed_run_once() -> None:
    obj = make_pipeline(
        make_stage("train", gates={"datasets": [{"dataset": "clicks"}]}, retry={"maxAttempts": 3, "backoffSeconds": 0})
    )
    run = Run(obj, datasets={"clicks": dataset()})
    run.plan()
    run.finish("train", phase="Failed")
    run.plan()  # Retrying, due now
    run.facts = {"datasets": {}}  # the dataset is withdrawn before the retry
    for _ in range(3):
        plan = run.plan()
        assert (plan.launches, run.stage("train").phase) == ([], StagePhase.WAITING_FOR_DATA)
        assert run.stage("train").attempts == 1  # waiting is not failing again
    run.facts = {"datasets": {"clicks": dataset()}}
    plan = run.plan()
    assert ([launch.workload for launch in plan.launches], plan.superseded) == (["recsys-train-2"], ["recsys-train-1"])


def test_an_input_from_a_serving_stage_waits_for_the_output_it_names() -> None:
    serve = make_stage(
        "serve",
        template={"type": "Inference", "intent": {"latencyTargetMs": 50}},
        outputs=[{"name": "endpoint-card", "uri": "s3://cards/serve"}],
    )
    probe = make_stage("probe", depends_on=["serve"], inputs=[{"name": "endpoint-card", "fromStage": "serve"}])
    run = Run(make_pipeline(serve, probe))
    run.plan()
    run.runs["recsys-serve-1"] = StageRun(phase="Running")
    plan = run.plan()
    assert plan.launches == []
    assert run.stage("probe").message == "stage serve serves but has not recorded endpoint-card"
    run.runs["recsys-serve-1"] = StageRun(phase="Running", outputs={"endpoint-card": FEATURES})
    assert [launch.workload for launch in run.plan().launches] == ["recsys-probe-1"]
    assert run.stage("probe").consumed[0].digest == FEATURES


def test_a_workloads_long_words_are_cut_to_what_the_status_schema_allows() -> None:
    run = Run()
    run.plan()
    run.runs["recsys-prepare-1"] = StageRun(phase="Waiting", reason="R" * 100, message="x" * 10_000)
    run.plan()
    prepare = run.stage("prepare")
    assert (len(prepare.message), len(prepare.reason)) == (4096, 64)
    assert prepare.message.endswith("...")
