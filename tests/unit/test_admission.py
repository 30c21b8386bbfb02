"""The admission webhook's judgement (pure): what `kubectl apply` is told when an object would be refused."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlplacement.core import keyring as keyring_core
from mlplacement.core.reconcile import admission_problem
from mlplacement.core.signing import sign
from tests.builders import keyring_of, make_pipeline, make_policy, make_stage, make_workload, with_annotations

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = keyring_core.generate_key("ed25519")
KEYRING = keyring_of(("platform", KEY))


def signed(obj: dict[str, Any], expires: datetime | None = None) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, KEY, "platform", expires))


def tampered(obj: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    changed["spec"]["args"] = ["--epochs", "300"]
    return changed


def relabelled(obj: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    changed["metadata"].setdefault("labels", {})["argocd.argoproj.io/instance"] = "ml"
    changed["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    return changed


def deleting(obj: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    changed["metadata"]["deletionTimestamp"] = "2026-11-22T11:00:00Z"
    changed["spec"]["args"] = []
    return changed


EXPIRED = signed(make_workload(), expires=NOW - timedelta(days=1))

CASES = [
    ("signed workload is admitted", signed(make_workload()), None, None),
    ("signed policy is admitted", signed(make_policy()), None, None),
    ("unsigned workload is rejected", make_workload(), None, "SignatureMissing"),
    ("unsigned policy is rejected", make_policy(), None, "SignatureMissing"),
    ("changed after signing is rejected", tampered(signed(make_workload())), None, "SignatureInvalid"),
    ("an expired signature is rejected on create", EXPIRED, None, "SignatureExpired"),
    (
        "a spec the model refuses is rejected before the signature is looked at",
        signed(make_workload(resources={"gpus": 65})),
        None,
        "InvalidSpec",
    ),
    ("a label or finalizer update never judges the signature again", relabelled(EXPIRED), EXPIRED, None),
    ("an object being deleted is never blocked", deleting(EXPIRED), EXPIRED, None),
    (
        "a spec update under an expired signature is rejected",
        tampered(EXPIRED),
        EXPIRED,
        "SignatureInvalid",
    ),
]


OPERATOR = "system:serviceaccount:mlplacement-system:mlplacement"
STAGE = make_workload("recsys-train-1")
STAGE["metadata"]["labels"].update({"mlplacement.io/pipeline": "recsys", "mlplacement.io/stage": "train"})


@pytest.mark.parametrize(
    ("obj", "old", "user", "reason"),
    [
        pytest.param(STAGE, None, OPERATOR, None, id="the operator creates a stage from the signed template"),
        pytest.param(STAGE, None, "alice", "StageModified", id="a person creating a stage by hand is refused"),
        pytest.param(tampered(STAGE), STAGE, "alice", "StageModified", id="a person editing a stage's spec"),
        pytest.param(relabelled(STAGE), STAGE, "ci-bot", None, id="annotating a stage (its outputs) passes"),
        pytest.param(make_pipeline(), None, "alice", "SignatureMissing", id="an unsigned pipeline is refused"),
        pytest.param(signed(make_pipeline()), None, "alice", None, id="a signed pipeline is admitted"),
        pytest.param(
            signed(make_pipeline(make_stage("a", depends_on=["b"]))),
            None,
            "alice",
            "InvalidSpec",
            id="a pipeline with an unknown stage in dependsOn is refused naming it",
        ),
    ],
)
def test_admission_of_pipelines_and_their_stages(
    obj: dict[str, Any], old: dict[str, Any] | None, user: str, reason: str | None
) -> None:
    problem = admission_problem(obj, old, KEYRING, NOW, user=user, operator_user=OPERATOR)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(f"{reason}: ")


@pytest.mark.parametrize(("obj", "old", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_admission(obj: dict[str, Any], old: dict[str, Any] | None, reason: str | None) -> None:
    problem = admission_problem(obj, old, KEYRING, NOW)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(f"{reason}: ")


def test_admission_message_names_the_field_and_never_echoes_the_signature() -> None:
    obj = signed(make_workload(resources={"gpus": 65}))
    problem = admission_problem(obj, None, KEYRING, NOW) or ""
    assert "gpus" in problem
    assert obj["metadata"]["annotations"]["mlplacement.io/signature"] not in problem


def admitted_under(policy: dict[str, Any], check: Any, now: datetime) -> Any:
    from mlplacement.core.reconcile import admit

    return admit(signed(make_workload()), policies={"default": policy}, keyring=KEYRING, now=now, policy_check=check)


def test_a_reused_policy_verdict_still_expires_on_time() -> None:
    from mlplacement.core.reconcile import Admitted, PolicyCheck, Refusal

    policy = signed(make_policy("default"), expires=NOW + timedelta(minutes=5))
    check = PolicyCheck()
    assert isinstance(admitted_under(policy, check, NOW), Admitted)
    # verify() allows five minutes of clock skew past the expiry; the reused verdict holds exactly as long.
    assert isinstance(admitted_under(policy, check, NOW + timedelta(minutes=9, seconds=59)), Admitted)
    refused = admitted_under(policy, check, NOW + timedelta(minutes=10, seconds=1))
    assert isinstance(refused, Refusal)
    assert "SignatureExpired" in refused.message


def test_a_reused_policy_verdict_follows_a_new_keyring() -> None:
    from mlplacement.core.reconcile import PolicyCheck, admit

    policy = signed(make_policy("default"))
    check = PolicyCheck()
    workload = signed(make_workload())
    assert admit(workload, policies={"default": policy}, keyring=KEYRING, now=NOW, policy_check=check).policy_name
    other = keyring_of(("platform", keyring_core.generate_key("ed25519")))
    refused = admit(workload, policies={"default": policy}, keyring=other, now=NOW, policy_check=check)
    assert refused.reason.value == "SignatureInvalid"
