"""Children on spot capacity can learn of an interruption in time; a disruption never fails a Job."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from mlplacement.api.workload import MLWorkload
from mlplacement.core.manifests import build_children
from tests.builders import make_workload, pool
from tests.unit.test_chart import KUBERNETES_SCHEMA_VERSION

SPOT_POOL = pool("spot", spot=True, preemption_probability=0.05)
ON_DEMAND = pool("on-demand")


def pod_spec(target: Any, **spec: Any) -> dict[str, Any]:
    obj = make_workload(name="trainer", namespace="team-a", resources={"gpus": 1}, **spec)
    obj["metadata"]["uid"] = "uid-trainer"
    (child, *_) = build_children(obj, MLWorkload.model_validate(obj).spec, target)
    return dict(child["spec"]["template"]["spec"])


def test_a_spot_pod_reads_its_own_annotations_and_has_time_to_checkpoint() -> None:
    spec = pod_spec(SPOT_POOL, env=[{"name": "EPOCHS", "value": "3"}])
    (container,) = spec["containers"]
    assert spec["terminationGracePeriodSeconds"] == 90
    assert spec["volumes"] == [
        {
            "name": "mlplacement-podinfo",
            "downwardAPI": {"items": [{"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]},
        }
    ]
    assert container["volumeMounts"] == [
        {"name": "mlplacement-podinfo", "mountPath": "/etc/mlplacement/podinfo", "readOnly": True}
    ]
    assert container["env"] == [
        {"name": "EPOCHS", "value": "3"},
        {"name": "MLPLACEMENT_CHECKPOINT_SIGNAL_FILE", "value": "/etc/mlplacement/podinfo/annotations"},
    ]


def test_an_on_demand_pod_is_left_as_the_workload_says() -> None:
    spec = pod_spec(ON_DEMAND)
    assert "volumes" not in spec
    assert "terminationGracePeriodSeconds" not in spec
    assert "env" not in spec["containers"][0]


def test_a_disrupted_pod_does_not_count_as_the_jobs_failure() -> None:
    obj = make_workload(name="trainer", namespace="team-a", resources={"gpus": 1})
    (job,) = build_children(obj, MLWorkload.model_validate(obj).spec, ON_DEMAND)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["podFailurePolicy"] == {
        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    }


def test_every_child_is_valid_for_the_kubernetes_api() -> None:
    # Strict: a misspelt or misplaced field (podFailurePolicy, a downward API item) fails here, not at apply.
    for target in (SPOT_POOL, ON_DEMAND):
        for spec in ({}, {"type": "Inference", "intent": {"latencyTargetMs": 200}}):
            obj = make_workload(name="trainer", namespace="team-a", resources={"gpus": 1}, **spec)
            obj["metadata"]["uid"] = "uid-trainer"
            obj["metadata"]["annotations"] = {"mlplacement.io/inputs": INPUTS}  # a pipeline stage's
            for child in build_children(obj, MLWorkload.model_validate(obj).spec, target):
                kubernetes_validate.validate(child, KUBERNETES_SCHEMA_VERSION, strict=True)


INPUTS = '{"click-features": {"uri": "s3://data/features/", "digest": "sha256:' + "1" * 64 + '"}}'


@pytest.mark.parametrize(
    ("annotation", "env"),
    [
        pytest.param(
            INPUTS,
            [
                {"name": "MLPLACEMENT_INPUT_CLICK_FEATURES_URI", "value": "s3://data/features/"},
                {"name": "MLPLACEMENT_INPUT_CLICK_FEATURES_DIGEST", "value": "sha256:" + "1" * 64},
            ],
            id="a stage's inputs become environment variables its code can check",
        ),
        pytest.param("not json", None, id="an unreadable annotation adds nothing"),
        pytest.param(None, None, id="a workload outside a pipeline gets nothing"),
    ],
)
def test_a_stages_inputs_reach_its_pods(annotation: str | None, env: list[dict[str, str]] | None) -> None:
    obj = make_workload(name="trainer", namespace="team-a", resources={"gpus": 1})
    obj["metadata"]["uid"] = "uid-trainer"
    if annotation is not None:
        obj["metadata"]["annotations"] = {"mlplacement.io/inputs": annotation}
    (job,) = build_children(obj, MLWorkload.model_validate(obj).spec, ON_DEMAND)
    assert job["spec"]["template"]["spec"]["containers"][0].get("env") == env
