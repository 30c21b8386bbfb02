"""Pipelines against a real kube-apiserver: a signed three-stage MLPipeline runs stage by stage (each stage's
Job status set through the status subresource, as the Job controller would), its first stage waits on a
dataset gate until the signals say the data is fresh, lineage is recorded, and a stage edited by hand is
refused and stopped. Needs KUBEBUILDER_ASSETS; skips without it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from tests.builders import make_pipeline, make_policy, make_stage
from tests.conftest import REPO
from tests.controlplane import ControlPlane, wait_until
from tests.integration.test_operator import KEY, Operator, gpu_status, node, signed

NAMESPACE = "team-pipelines"
FEATURES = "sha256:" + "1" * 64
MODEL = "sha256:" + "2" * 64


def signals(clicks_updated: datetime) -> dict[str, Any]:
    document = {
        "updatedAt": datetime.now(UTC).isoformat(),
        "ttlSeconds": 3600,
        "datasets": {"clicks": {"updatedAt": clicks_updated.isoformat(), "validated": True, "schemaVersion": "4"}},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "mlplacement-signals", "namespace": "mlplacement-system"},
        "data": {"signals.yaml": json.dumps(document)},
    }


def stage(name: str, **fields: Any) -> dict[str, Any]:
    return make_stage(name, template={"resources": {"gpus": 1}, "targets": {"allowed": ["GPUPool"]}}, **fields)


def three_stages(name: str) -> dict[str, Any]:
    gate = {"datasets": [{"dataset": "clicks", "maxAgeMinutes": 60, "schemaVersion": "4"}]}
    return make_pipeline(
        stage("prepare", gates=gate, outputs=[{"name": "features", "uri": "s3://data/features/"}]),
        stage(
            "train",
            depends_on=["prepare"],
            inputs=[{"name": "features", "fromStage": "prepare"}],
            outputs=[{"name": "model", "uri": "s3://models/recsys/"}],
        ),
        stage("report", depends_on=["train"], inputs=[{"name": "model", "fromStage": "train"}]),
        name=name,
        namespace=NAMESPACE,
    )


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    control_plane.install_home(
        REPO / "crds", (NAMESPACE,), keyring_core.public_pem(KEY), signed(make_policy("default"))
    )
    control_plane.apply(node("gpu-1", "a100-pool"))
    control_plane.kubectl("patch", "node", "gpu-1", "--subresource=status", "--type=merge", "-p", gpu_status(8))
    operator = Operator(control_plane, {"MLPLACEMENT_GATE_POLL_SECONDS": "1"})
    operator.start()
    yield control_plane
    operator.kill()


def pipeline_status(plane: ControlPlane, name: str) -> dict[str, Any]:
    return (plane.get("mlpipeline", name, "-n", NAMESPACE) or {}).get("status") or {}


def stage_status(plane: ControlPlane, pipeline: str, name: str) -> dict[str, Any]:
    return next((s for s in pipeline_status(plane, pipeline).get("stages") or [] if s["name"] == name), {})


def job_exists(plane: ControlPlane, name: str) -> bool:
    return plane.get("job", name, "-n", NAMESPACE) is not None


def record_outputs_and_complete(plane: ControlPlane, workload: str, outputs: dict[str, str]) -> None:
    """What a stage's own code and the Job controller would do when it ends: record what it produced on its
    MLWorkload, then mark its Job complete through the status subresource."""
    if outputs:
        plane.kubectl(
            "annotate", "mlworkload", workload, "-n", NAMESPACE, f"mlplacement.io/outputs={json.dumps(outputs)}"
        )
    ended = datetime.now(UTC)
    plane.complete_job(NAMESPACE, f"mlw-{workload}", ended - timedelta(minutes=5), ended)


def test_a_signed_pipeline_runs_stage_by_stage_behind_its_dataset_gate(plane: ControlPlane) -> None:
    plane.apply(signals(datetime.now(UTC) - timedelta(hours=3)))
    plane.apply(signed(three_stages("recsys")))
    # The first plan may come before the operator has read the signals ("no signals document"): wait for the
    # stale dataset's own words.
    wait_until(
        lambda: "dataset clicks was updated 3h" in stage_status(plane, "recsys", "prepare").get("message", ""),
        60,
        "stage prepare WaitingForData on the stale dataset",
    )
    prepare = stage_status(plane, "recsys", "prepare")
    assert (prepare["phase"], prepare["gate"]) == ("WaitingForData", "dataset clicks")
    assert (plane.get("mlworkloads", "-n", NAMESPACE, "-l", "mlplacement.io/pipeline=recsys") or {}).get("items") == []

    plane.apply(signals(datetime.now(UTC)))  # the data is validated and fresh now
    wait_until(lambda: job_exists(plane, "mlw-recsys-prepare-1"), 60, "the prepare stage's Job")
    assert not job_exists(plane, "mlw-recsys-train-1")  # train waits for prepare

    record_outputs_and_complete(plane, "recsys-prepare-1", {"features": FEATURES})
    wait_until(lambda: job_exists(plane, "mlw-recsys-train-1"), 60, "the train stage's Job once prepare succeeded")
    train = plane.get("mlworkload", "recsys-train-1", "-n", NAMESPACE)
    assert train["spec"] == three_stages("recsys")["spec"]["stages"][1]["template"]
    assert train["metadata"]["ownerReferences"][0]["kind"] == "MLPipeline"

    record_outputs_and_complete(plane, "recsys-train-1", {"model": MODEL})
    wait_until(lambda: job_exists(plane, "mlw-recsys-report-1"), 60, "the report stage's Job once train succeeded")
    record_outputs_and_complete(plane, "recsys-report-1", {})
    wait_until(lambda: pipeline_status(plane, "recsys").get("phase") == "Succeeded", 60, "the pipeline Succeeded")

    status = pipeline_status(plane, "recsys")
    assert status["progress"] == "3/3"
    assert stage_status(plane, "recsys", "train")["consumed"] == [
        {"name": "features", "uri": "s3://data/features/", "digest": FEATURES, "fromStage": "prepare"}
    ]
    assert stage_status(plane, "recsys", "train")["produced"] == [
        {"name": "model", "uri": "s3://models/recsys/", "digest": MODEL}
    ]
    printed = plane.kubectl("get", "mlpl", "recsys", "-n", NAMESPACE).stdout
    assert "3/3" in printed
    assert "Succeeded" in printed


def test_a_stage_edited_by_hand_is_refused_and_stopped(plane: ControlPlane) -> None:
    plane.apply(signals(datetime.now(UTC)))
    plane.apply(signed(make_pipeline(stage("solo"), name="tampered", namespace=NAMESPACE)))
    wait_until(lambda: job_exists(plane, "mlw-tampered-solo-1"), 60, "the solo stage's Job")

    patch = json.dumps({"spec": {"image": "registry.example.com/someone/else:1"}})
    plane.kubectl("patch", "mlworkload", "tampered-solo-1", "-n", NAMESPACE, "--type=merge", "-p", patch)

    def verified() -> dict[str, Any]:
        obj = plane.get("mlworkload", "tampered-solo-1", "-n", NAMESPACE) or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Verified"), {})

    wait_until(lambda: verified().get("reason") == "StageModified", 60, "the edited stage refused (StageModified)")
    assert "spec differs from stage 'solo' of the signed MLPipeline tampered" in verified()["message"]
    wait_until(lambda: not job_exists(plane, "mlw-tampered-solo-1"), 60, "the edited stage's Job stopped")
    wait_until(
        lambda: stage_status(plane, "tampered", "solo").get("phase") == "Refused", 60, "the stage Refused in status"
    )
