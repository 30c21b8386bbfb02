"""Documents generated from the CRDs' own schemas, through the whole admission path: each is admitted or refused
with a reason, and nothing raises.

The schema admits far more than the models do (CEL rules are not applied to what is generated, strings are any
unicode, numbers reach their bounds), and a tenant can apply any of it. The controller sees it exactly as it
would from the watch; the status it writes about it must itself pass the CRD's status schema (FakeCluster
checks every write as the API server would). Half the documents are signed by a trusted key, so the models,
not the signature gate, are what judges them.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from mlplacement.config import OperatorConfig
from mlplacement.controller.state import FleetCache
from mlplacement.controller.workloads import WorkloadController
from mlplacement.core import keyring as keyring_core
from mlplacement.core.reconcile import admission_problem, policy_status
from mlplacement.core.signing import SigningError, sign
from mlplacement.handlers.webhook import review_response
from tests.builders import make_policy, with_annotations
from tests.component.fakes import Events, FakeCluster
from tests.conftest import REPO
from tests.schema import documents

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = keyring_core.generate_key()
KEYRING = keyring_core.parse_keyring({"platform.pem": keyring_core.public_pem(KEY)})
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_serial = itertools.count()


def spec_schema(plural: str) -> dict[str, Any]:
    crd = YAML(typ="safe", pure=True).load((REPO / "crds" / f"mlplacement.io_{plural}.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


WORKLOAD_SPECS = documents(spec_schema("mlworkloads"))
POLICY_SPECS = documents(spec_schema("placementpolicies"))
# What the API server's schema refuses but a tenant may still send through a path that skips it (an older CRD,
# a webhook reached directly): wrong types where objects belong, unknown fields.
HOSTILE_SPECS = st.one_of(
    st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text(max_size=8)), max_size=4),
    st.fixed_dictionaries({"resources": st.one_of(st.integers(), st.text(), st.lists(st.integers(), max_size=2))}),
    st.fixed_dictionaries({"intent": st.just({"priority": 10**30}), "image": st.just("x" * 5000)}),
)


def controller() -> tuple[WorkloadController, FakeCluster]:
    config = OperatorConfig()
    cache = FleetCache(config=config)
    cache.keyring = KEYRING
    cache.on_policy(with_annotations(make_policy("default"), sign(make_policy("default"), KEY, "platform")), False)
    cluster = FakeCluster()
    return WorkloadController(config, cache, cluster, Events(), clock=lambda: NOW, monotonic=lambda: 0.0), cluster


def workload(spec: Any, signed: bool) -> dict[str, Any]:
    serial = next(_serial)
    obj: dict[str, Any] = {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "MLWorkload",
        "metadata": {"name": f"generated-{serial}", "namespace": "team-a", "uid": f"uid-{serial}", "generation": 1},
        "spec": spec,
    }
    if not signed:
        return obj
    try:
        return with_annotations(obj, sign(obj, KEY, "platform"))
    except SigningError:  # no signature can cover it (a number past 2^53): it arrives with one for other bytes
        return with_annotations(obj, sign({**obj, "spec": {}}, KEY, "platform"))


def judged(spec: Any, signed: bool, world: tuple[WorkloadController, FakeCluster] | None = None) -> None:
    """Admission of one document must end in exactly one of: waiting for placement, or refused with a reason."""
    ctrl, cluster = world or controller()
    obj = workload(spec, signed)
    key = f"team-a/{obj['metadata']['name']}"
    asyncio.run(ctrl.on_workload_event("ADDED", obj))
    if key in ctrl.records.queued():
        assert signed, "nothing unsigned is ever admitted"
        return
    (written_key, status) = cluster.status_patches[-1]
    assert written_key == key
    assert status["phase"] in ("Refused", "Pending", "Waiting")  # not placed, and saying why below
    refusals = [c for c in status["conditions"] if c["status"] == "False"]
    assert refusals, status
    assert all(c["reason"] and c["message"] for c in refusals)


@SETTINGS
@given(spec=WORKLOAD_SPECS, signed=st.booleans())
def test_every_schema_valid_workload_is_admitted_or_refused_with_a_reason(spec: dict[str, Any], signed: bool) -> None:
    judged(spec, signed)
    problem = admission_problem(workload(spec, signed), None, KEYRING, NOW)
    assert problem is None or problem.strip()
    review = {"request": {"uid": "u", "operation": "CREATE", "object": workload(spec, signed)}}
    assert isinstance(review_response(review, KEYRING, NOW)["response"]["allowed"], bool)


@SETTINGS
@given(spec=HOSTILE_SPECS)
def test_documents_the_schema_would_refuse_are_refused_by_the_operator_too(spec: dict[str, Any]) -> None:
    judged(spec, signed=True)


@SETTINGS
@given(spec=POLICY_SPECS, signed=st.booleans())
def test_every_schema_valid_policy_gets_a_verdict_and_never_breaks_admission(spec: Any, signed: bool) -> None:
    obj: dict[str, Any] = {
        "apiVersion": "mlplacement.io/v1alpha1",
        "kind": "PlacementPolicy",
        "metadata": {"name": "default", "generation": 1},
        "spec": spec,
    }
    if signed:
        obj = with_annotations(obj, sign(obj, KEY, "platform"))
    status = policy_status(obj, KEYRING, NOW, 0, None)
    (verified,) = [c for c in status["conditions"] if c["type"] == "Verified"]
    assert verified["reason"]
    world = controller()
    world[0].cache.on_policy(obj, deleted=False)  # whatever it is, workloads under it are still judged
    judged({"image": "registry.example/train:1", "type": "Training"}, signed=True, world=world)
