"""The Argo CD health check for MLWorkload, run by a real Lua interpreter (lupa) against sample objects."""

from __future__ import annotations

from typing import Any

import lupa
import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO

LUA = REPO / "argocd" / "mlworkload-health.lua"
ARGOCD_CM = REPO / "argocd" / "argocd-cm.yaml"
HEALTH_KEY = "resource.customizations.health.mlplacement.io_MLWorkload"


POLICY_LUA = REPO / "argocd" / "placementpolicy-health.lua"
POLICY_HEALTH_KEY = "resource.customizations.health.mlplacement.io_PlacementPolicy"


def health(obj: dict[str, Any], script: Any = LUA) -> tuple[str, str]:
    """Evaluate the check the way Argo CD does: the object as the global `obj`, the script's return value."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script.read_text(encoding="utf-8"))
    return str(result["status"]), str(result["message"])


def _to_lua(runtime: lupa.LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def workload(generation: int = 2, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "w", "namespace": "ml", "generation": generation}}
    if status:
        obj["status"] = status
    return obj


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


CASES = [
    ("no status yet", workload(), "Progressing", "Waiting for the operator"),
    (
        "status from an older generation",
        workload(observedGeneration=1, phase="Running", conditions=[cond("Ready", "True", "Running", "ok")]),
        "Progressing",
        "generation 2",
    ),
    (
        "observedGeneration missing",
        workload(phase="Running", conditions=[cond("Ready", "True")]),
        "Progressing",
        "generation 2",
    ),
    ("pending", workload(observedGeneration=2, phase="Pending"), "Progressing", "Phase Pending"),
    (
        "waiting for capacity",
        workload(
            observedGeneration=2,
            phase="Waiting",
            conditions=[cond("Placed", "False", "WaitingForCapacity", "0/7 targets fit: 3 lack free GPUs (need 4)")],
        ),
        "Progressing",
        "WaitingForCapacity: 0/7 targets fit",
    ),
    (
        "placed, child not ready yet",
        workload(observedGeneration=2, phase="Placed", conditions=[cond("Placed", "True"), cond("Ready", "False")]),
        "Progressing",
        "Phase Placed",
    ),
    (
        "running and ready",
        workload(observedGeneration=2, phase="Running", conditions=[cond("Ready", "True", "Running", "3/3 ready")]),
        "Healthy",
        "3/3 ready",
    ),
    ("training finished", workload(observedGeneration=2, phase="Succeeded"), "Healthy", "Finished successfully"),
    (
        "refused: signature",
        workload(
            observedGeneration=2,
            phase="Refused",
            conditions=[cond("Verified", "False", "SignatureInvalid", "signature does not match")],
        ),
        "Degraded",
        "Refused: SignatureInvalid: signature does not match",
    ),
    (
        "refused: invalid spec",
        workload(
            observedGeneration=2, phase="Refused", conditions=[cond("Ready", "False", "InvalidSpec", "spec.gpus: >64")]
        ),
        "Degraded",
        "spec.gpus",
    ),
    (
        "failed run",
        workload(
            observedGeneration=2,
            phase="Failed",
            conditions=[cond("Finished", "True", "Failed", "BackoffLimitExceeded")],
        ),
        "Degraded",
        "BackoffLimitExceeded",
    ),
]


@pytest.mark.parametrize(("obj", "expected", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_health_for_every_phase(obj: dict[str, Any], expected: str, message: str) -> None:
    status, text = health(obj)
    assert status == expected
    assert message in text


def test_every_phase_the_operator_writes_has_a_case() -> None:
    from mlplacement.api.constants import Phase

    covered = {c[1].get("status", {}).get("phase") for c in CASES}
    assert {p.value for p in Phase} <= covered


def test_argocd_cm_snippet_carries_the_same_lua() -> None:
    configmap = YAML(typ="safe", pure=True).load(ARGOCD_CM.read_text(encoding="utf-8"))
    assert configmap["data"][HEALTH_KEY] == LUA.read_text(encoding="utf-8")
    assert configmap["data"][POLICY_HEALTH_KEY] == POLICY_LUA.read_text(encoding="utf-8")


WAITING_CASES = [
    pytest.param(
        workload(
            observedGeneration=2,
            phase="Waiting",
            conditions=[cond("Placed", "False", "NoFeasibleTarget", "0/4 targets fit: 4 outside allowed regions")],
        ),
        "Degraded",
        "NoFeasibleTarget: 0/4 targets fit",
        id="work no target can ever take is Degraded, not Progressing forever",
    ),
    pytest.param(
        workload(
            observedGeneration=2,
            phase="Waiting",
            conditions=[cond("Placed", "False", "WaitingForCapacity", "0/4 targets fit: 4 lack free GPUs")],
        ),
        "Progressing",
        "WaitingForCapacity",
        id="waiting for capacity is progress",
    ),
    pytest.param(
        workload(
            observedGeneration=2,
            phase="Placed",
            conditions=[cond("Degraded", "True", "TargetUnhealthy", "pool gone; no other target fits yet")],
        ),
        "Degraded",
        "TargetUnhealthy: pool gone",
        id="a degraded placement is Degraded",
    ),
    pytest.param(
        workload(
            observedGeneration=2,
            phase="Running",
            conditions=[
                cond("Ready", "False", "Running", "1/2 replicas"),
                cond("Compliant", "False", "PolicyViolation", "GPUPool us: outside allowed regions [eu-west-1]"),
            ],
        ),
        "Degraded",
        "PolicyViolation: GPUPool us: outside allowed regions",
        id="running where the rules no longer allow it is Degraded",
    ),
]


@pytest.mark.parametrize(("obj", "expected", "message"), WAITING_CASES)
def test_waiting_and_degraded_workloads(obj: dict[str, Any], expected: str, message: str) -> None:
    status, text = health(obj)
    assert status == expected
    assert message in text


def policy(generation: int = 1, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "default", "generation": generation}}
    if status:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("obj", "expected", "message"),
    [
        pytest.param(policy(), "Progressing", "verify generation 1", id="not seen yet"),
        pytest.param(
            policy(2, observedGeneration=1, conditions=[cond("Verified", "True", "Verified", "signed by 'a'")]),
            "Progressing",
            "generation 2",
            id="a newer generation not verified yet",
        ),
        pytest.param(
            policy(observedGeneration=1, conditions=[cond("Verified", "True", "Verified", "signed by 'platform'")]),
            "Healthy",
            "signed by 'platform'",
            id="verified",
        ),
        pytest.param(
            policy(
                observedGeneration=1, conditions=[cond("Verified", "False", "UnknownKey", "key 'x' is not trusted")]
            ),
            "Degraded",
            "UnknownKey: key 'x' is not trusted",
            id="an unverified policy is never Healthy",
        ),
    ],
)
def test_placement_policy_health(obj: dict[str, Any], expected: str, message: str) -> None:
    status, text = health(obj, POLICY_LUA)
    assert status == expected
    assert message in text


PIPELINE_LUA = REPO / "argocd" / "mlpipeline-health.lua"
PIPELINE_HEALTH_KEY = "resource.customizations.health.mlplacement.io_MLPipeline"


def pipeline(phase: str, *conditions: dict[str, str], progress: str = "1/3") -> dict[str, Any]:
    return workload(observedGeneration=2, phase=phase, progress=progress, conditions=list(conditions))


@pytest.mark.parametrize(
    ("obj", "expected", "message"),
    [
        pytest.param(workload(), "Progressing", "generation 2", id="not seen yet"),
        pytest.param(
            pipeline("Succeeded", cond("Ready", "True", "Succeeded", "all 3 stages succeeded"), progress="3/3"),
            "Healthy",
            "all 3 stages succeeded (3/3 stages)",
            id="every stage succeeded",
        ),
        pytest.param(
            pipeline("Running", cond("Ready", "True", "Serving", "serve serving; every other stage succeeded")),
            "Healthy",
            "serve serving",
            id="the last stage serves: that is its goal",
        ),
        pytest.param(
            pipeline(
                "Waiting",
                cond("Ready", "False", "WaitingForData", "stage train: dataset clicks is not validated"),
                cond("Degraded", "False", "NoFailedStage"),
            ),
            "Progressing",
            "WaitingForData: stage train: dataset clicks is not validated (1/3 stages)",
            id="a stage waiting for its data is progress",
        ),
        pytest.param(
            pipeline(
                "Running",
                cond("Ready", "False", "ArtifactMismatch", "stage eval: input model expects ..."),
                cond("Degraded", "True", "ArtifactMismatch", "eval (ArtifactMismatch)"),
            ),
            "Degraded",
            "stage failed: eval (ArtifactMismatch)",
            id="a refused stage while others still run is Degraded",
        ),
        pytest.param(
            pipeline("Failed", cond("Degraded", "True", "Failed", "train (Failed)")),
            "Degraded",
            "train (Failed)",
            id="failed",
        ),
        pytest.param(
            pipeline("Refused", cond("Verified", "False", "SignatureInvalid", "spec changed after signing")),
            "Degraded",
            "Refused: SignatureInvalid: spec changed after signing",
            id="a pipeline that does not verify is never Healthy",
        ),
    ],
)
def test_pipeline_health(obj: dict[str, Any], expected: str, message: str) -> None:
    status, text = health(obj, PIPELINE_LUA)
    assert status == expected
    assert message in text


def test_argocd_cm_carries_the_pipeline_lua() -> None:
    configmap = YAML(typ="safe", pure=True).load(ARGOCD_CM.read_text(encoding="utf-8"))
    assert configmap["data"][PIPELINE_HEALTH_KEY] == PIPELINE_LUA.read_text(encoding="utf-8")


def test_every_pipeline_phase_has_a_case() -> None:
    from mlplacement.api.pipeline import PipelinePhase

    lua = PIPELINE_LUA.read_text(encoding="utf-8")
    unhandled = {"Pending", "Waiting", "Running", "Succeeded"}  # read through Ready and Degraded, not by name
    assert {p.value for p in PipelinePhase} - unhandled <= {p for p in ("Refused", "Failed") if f'"{p}"' in lua}
