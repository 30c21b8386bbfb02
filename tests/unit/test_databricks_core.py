"""Databricks runs, pure: idempotency tokens, the submit payload, run state -> workload status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlplacement.api.workload import MLWorkload
from mlplacement.core.databricks import (
    TOKEN_MAX,
    RunState,
    idempotency_token,
    poll_delay,
    run_status,
    submit_payload,
)
from tests.builders import make_workload

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def workload(**databricks: Any) -> MLWorkload:
    obj = make_workload(
        type="Training",
        databricks={"task": {"notebook_task": {"notebook_path": "/Repos/x/train"}}, **databricks},
        costTags={"team": "a"},
    )
    obj["metadata"].update(uid="0b7c4a8e-5f0e-4d6b-9a51-3f3c2a1d9e77", generation=3)
    return MLWorkload.model_validate(obj)


@given(uid=st.text(min_size=0, max_size=300), generation=st.integers(0, 2**63), attempt=st.integers(1, 20))
def test_tokens_fit_the_api_limit_and_are_stable(uid: str, generation: int, attempt: int) -> None:
    token = idempotency_token(uid, generation, attempt)
    assert len(token) <= TOKEN_MAX
    assert token == idempotency_token(uid, generation, attempt)
    assert token != idempotency_token(uid, generation, attempt + 1)
    assert token != idempotency_token(uid, generation + 1, attempt)


def test_payload_for_a_new_cluster_tags_it_with_cost_tags_and_identity() -> None:
    payload = submit_payload(workload(newCluster={"num_workers": 2, "custom_tags": {"owner": "x"}}), attempt=2)
    (task,) = payload["tasks"]
    assert task["task_key"] == "main"
    assert task["notebook_task"] == {"notebook_path": "/Repos/x/train"}
    assert task["new_cluster"]["custom_tags"] == {
        "owner": "x",
        "team": "a",
        "mlplacement.io_workload-uid": "0b7c4a8e-5f0e-4d6b-9a51-3f3c2a1d9e77",
        "mlplacement_io_workload": "team-a/fraud-scorer",
    }
    assert payload["run_name"] == "team-a/fraud-scorer"
    assert payload["idempotency_token"].endswith("-g3-a2")


def test_a_pipeline_stage_on_a_new_cluster_is_told_its_inputs_like_a_pod() -> None:
    digest = "sha256:" + "1" * 64
    obj = make_workload(
        type="Batch",
        databricks={"task": {"notebook_task": {"notebook_path": "/x"}}, "newCluster": {"spark_env_vars": {"A": "1"}}},
    )
    inputs = json.dumps({"clicks": {"uri": "s3://c", "digest": digest}})
    obj["metadata"]["annotations"] = {"mlplacement.io/inputs": inputs}
    (task,) = submit_payload(MLWorkload.model_validate(obj), attempt=1)["tasks"]
    assert task["new_cluster"]["spark_env_vars"] == {
        "A": "1",
        "MLPLACEMENT_INPUT_CLICKS_URI": "s3://c",
        "MLPLACEMENT_INPUT_CLICKS_DIGEST": digest,
    }


def test_payload_for_an_existing_cluster_names_it() -> None:
    (task,) = submit_payload(workload(existingClusterId="0101-abc"), attempt=1)["tasks"]
    assert task["existing_cluster_id"] == "0101-abc"
    assert "new_cluster" not in task


def test_a_workload_without_a_task_cannot_be_submitted() -> None:
    obj = make_workload(type="Training")
    obj["metadata"].update(uid="u", generation=1)
    with pytest.raises(ValueError, match=r"spec\.databricks\.task"):
        submit_payload(MLWorkload.model_validate(obj), attempt=1)


STATES = [
    ("queued is placed, not ready", RunState(1, "QUEUED"), "Placed", {"Ready": "False"}),
    ("pending is placed, not ready", RunState(1, "PENDING"), "Placed", {"Ready": "False"}),
    ("running is ready", RunState(1, "RUNNING"), "Running", {"Ready": "True"}),
    ("success finishes", RunState(1, "TERMINATED", "SUCCESS"), "Succeeded", {"Finished": "True", "Ready": "False"}),
    ("failure finishes failed", RunState(1, "TERMINATED", "FAILED", "boom"), "Failed", {"Finished": "True"}),
    ("timeout finishes failed", RunState(1, "TERMINATED", "TIMEDOUT"), "Failed", {"Finished": "True"}),
    ("cancelled finishes failed", RunState(1, "TERMINATED", "CANCELED"), "Failed", {"Finished": "True"}),
    ("internal error finishes failed", RunState(1, "INTERNAL_ERROR", "FAILED"), "Failed", {"Finished": "True"}),
    ("skipped finishes failed", RunState(1, "SKIPPED"), "Failed", {"Finished": "True"}),
]


@pytest.mark.parametrize(("state", "phase", "conditions"), [c[1:] for c in STATES], ids=[c[0] for c in STATES])
def test_run_state_maps_to_phase_and_conditions(state: RunState, phase: str, conditions: dict[str, str]) -> None:
    status = run_status(state, "dbx", 1, None, 3, NOW)
    assert status["phase"] == phase
    got = {c["type"]: c["status"] for c in status["conditions"]}
    assert {k: got[k] for k in conditions} == conditions
    if state.state_message:
        assert any(state.state_message in c["message"] for c in status["conditions"])


@pytest.mark.parametrize(
    ("errors", "retry_after", "expected"),
    [(0, None, 15), (2, None, 60), (10, None, 300), (0, 120.0, 120), (5, 30.0, 300)],
    ids=["healthy", "doubles per error", "capped", "Retry-After wins when longer", "backoff wins when longer"],
)
def test_poll_delay(errors: int, retry_after: float | None, expected: float) -> None:
    assert poll_delay(15, errors, retry_after) == expected
