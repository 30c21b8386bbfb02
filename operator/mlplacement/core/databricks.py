"""Databricks one-time runs, pure: the runs/submit payload, the idempotency token, run state -> workload status.

The adapter sends what this builds and hands back what the API said; nothing here talks to Databricks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlplacement.api.constants import LABEL_WORKLOAD_UID, ConditionType, Phase, Reason
from mlplacement.api.workload import DatabricksRunStatus, MLWorkload, MLWorkloadStatus
from mlplacement.core.manifests import input_env
from mlplacement.core.status import api_status, set_condition

TOKEN_MAX = 64  # the Jobs API's limit on idempotency_token
DEFAULT_TASK_KEY = "main"
ACTIVE_STATES = frozenset({"QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY"})
STARTED_STATES = frozenset({"RUNNING", "TERMINATING"})


@dataclass(frozen=True)
class RunState:
    """What runs/get said about one run."""

    run_id: int
    life_cycle_state: str
    result_state: str | None = None
    state_message: str = ""
    run_page_url: str | None = None
    # When the run started and ended (the Jobs API's start_time and end_time); None until then.
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.life_cycle_state in ACTIVE_STATES

    @property
    def succeeded(self) -> bool:
        return self.life_cycle_state == "TERMINATED" and self.result_state == "SUCCESS"


def idempotency_token(uid: str, generation: int | None, attempt: int) -> str:
    """Same workload, generation and attempt -> same token, so a retried or repeated submit is one run."""
    token = f"mlw-{uid}-g{generation or 0}-a{attempt}"
    if len(token) <= TOKEN_MAX:
        return token
    return f"mlw-{hashlib.sha256(token.encode()).hexdigest()[: TOKEN_MAX - 4]}"


def run_name(workload: MLWorkload) -> str:
    return f"{workload.metadata.namespace}/{workload.metadata.name}"


def run_tags(workload: MLWorkload) -> dict[str, str]:
    """Cost tags plus the workload's identity, as cluster custom_tags (they reach the cloud bill)."""
    tags = dict(workload.spec.cost_tags)
    tags.update(
        {
            LABEL_WORKLOAD_UID.replace("/", "_"): workload.metadata.uid or "",
            "mlplacement_io_workload": run_name(workload),
        }
    )
    return tags


def submit_payload(workload: MLWorkload, attempt: int) -> dict[str, Any]:
    """The runs/submit body (snake_case, as the Jobs API takes it) for one attempt of ``workload``."""
    spec = workload.spec.databricks
    if spec is None or not spec.task:
        raise ValueError("spec.databricks.task is required to run on Databricks")
    task: dict[str, Any] = {"task_key": DEFAULT_TASK_KEY, **spec.task}
    if spec.existing_cluster_id:
        task["existing_cluster_id"] = spec.existing_cluster_id
    elif spec.new_cluster is not None:
        cluster = dict(spec.new_cluster)
        cluster["custom_tags"] = {**(cluster.get("custom_tags") or {}), **run_tags(workload)}
        inputs = {e["name"]: e["value"] for e in input_env(workload.metadata.annotations)}
        if inputs:  # a pipeline stage: what it consumes, as on a pod (an existing cluster cannot be told)
            cluster["spark_env_vars"] = {**(cluster.get("spark_env_vars") or {}), **inputs}
        if workload.spec.workers > 1 and "autoscale" not in cluster:
            # A distributed training's workers are the run's cluster's workers (TorchDistributor uses them all).
            cluster["num_workers"] = workload.spec.workers
        task["new_cluster"] = cluster
    if spec.libraries:
        task["libraries"] = list(spec.libraries)
    payload: dict[str, Any] = {
        "run_name": run_name(workload),
        "tasks": [task],
        "idempotency_token": idempotency_token(workload.metadata.uid or "", workload.metadata.generation, attempt),
    }
    if spec.timeout_seconds is not None:
        payload["timeout_seconds"] = spec.timeout_seconds
    return payload


def run_status(
    state: RunState,
    workspace: str,
    attempt: int,
    current: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The workload status for a run's state: Running/Ready while it runs, Finished with the result after."""
    conditions = (current or {}).get("conditions") or []
    message = state.state_message or state.life_cycle_state
    databricks = DatabricksRunStatus(
        run_id=state.run_id,
        run_page_url=state.run_page_url,
        state=state.life_cycle_state if state.active else f"{state.life_cycle_state}/{state.result_state}",
        workspace=workspace,
        attempt=attempt,
    )
    if state.active:
        started = state.life_cycle_state in STARTED_STATES
        phase = Phase.RUNNING if started else Phase.PLACED
        reason = Reason.RUNNING if started else Reason.DISPATCHED
        conditions = set_condition(
            conditions, ConditionType.READY, started, reason, f"Databricks run {message}", generation, now
        )
        return api_status(MLWorkloadStatus(phase=phase, conditions=conditions, databricks=databricks))
    ok = state.succeeded
    reason = Reason.SUCCEEDED if ok else Reason.FAILED
    text = f"Databricks run {state.result_state or state.life_cycle_state}: {message}"
    conditions = set_condition(conditions, ConditionType.FINISHED, True, reason, text, generation, now)
    conditions = set_condition(conditions, ConditionType.READY, False, reason, text, generation, now)
    phase = Phase.SUCCEEDED if ok else Phase.FAILED
    return api_status(MLWorkloadStatus(phase=phase, conditions=conditions, databricks=databricks))


def lost_run_status(
    run_id: int, workspace: str, current: Mapping[str, Any] | None, generation: int | None, now: datetime
) -> dict[str, Any]:
    """The run vanished from Databricks (deleted outside the operator): say so, never resubmit on our own."""
    message = f"Databricks run {run_id} no longer exists in {workspace}; change the spec to run again"
    conditions = (current or {}).get("conditions") or []
    conditions = set_condition(conditions, ConditionType.FINISHED, True, Reason.RUN_LOST, message, generation, now)
    conditions = set_condition(conditions, ConditionType.READY, False, Reason.RUN_LOST, message, generation, now)
    return api_status(MLWorkloadStatus(phase=Phase.FAILED, conditions=conditions))


def poll_delay(base_seconds: float, consecutive_errors: int, retry_after: float | None, cap: float = 300.0) -> float:
    """Seconds to the next poll: the base period, doubled per consecutive error, never sooner than Retry-After."""
    delay = min(cap, base_seconds * 2.0**consecutive_errors)
    return float(max(delay, retry_after or 0.0))
