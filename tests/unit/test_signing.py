"""The signed policy gate fails closed: every attack has its reason, every harmless change still verifies."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlplacement.api.constants import (
    ANNOTATION_KEY_ID,
    ANNOTATION_SIGNATURE,
    ANNOTATION_SIGNATURE_EXPIRES,
    Reason,
)
from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import SigningError, sign, signed_payload, verify
from tests.builders import keyring_of, make_policy, make_workload, with_annotations

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PLATFORM = keyring_core.generate_key("ed25519")
ROTATED = keyring_core.generate_key("ecdsa-p256")
ATTACKER = keyring_core.generate_key("ed25519")
KEYRING = keyring_of(("platform", PLATFORM), ("rotated", ROTATED))


def signed(
    obj: dict[str, Any],
    key: keyring_core.PrivateKey = PLATFORM,
    key_id: str = "platform",
    expires: datetime | None = None,
) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, key, key_id, expires))


def mutate(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        change(out)
        return out

    return apply


def set_annotation(key: str, value: str | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(obj: dict[str, Any]) -> None:
        if value is None:
            obj["metadata"]["annotations"].pop(key, None)
        else:
            obj["metadata"]["annotations"][key] = value

    return mutate(change)


def truncate_signature(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    raw = base64.b64decode(out["metadata"]["annotations"][ANNOTATION_SIGNATURE])
    out["metadata"]["annotations"][ANNOTATION_SIGNATURE] = base64.b64encode(raw[:40]).decode()
    return out


def resign(key: keyring_core.PrivateKey, key_id: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(obj: dict[str, Any]) -> dict[str, Any]:
        bare = copy.deepcopy(obj)
        del bare["metadata"]["annotations"]
        return signed(bare, key, key_id)

    return apply


def ecdsa_signature_under_ed25519_id(obj: dict[str, Any]) -> dict[str, Any]:
    # Sign the platform key id's payload with the ECDSA key: the key id says Ed25519, the bytes are ECDSA.
    bare = copy.deepcopy(obj)
    del bare["metadata"]["annotations"]
    forged = sign(bare, ROTATED, "platform")
    return with_annotations(bare, forged)


def copy_signature_to(**moved: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(obj: dict[str, Any]) -> None:
        for field, value in moved.items():
            if field == "kind":
                obj["kind"] = value
            else:
                obj["metadata"][field] = value

    return mutate(change)


ATTACKS = [
    pytest.param(set_annotation(ANNOTATION_SIGNATURE, None), Reason.SIGNATURE_MISSING, id="missing signature"),
    pytest.param(set_annotation(ANNOTATION_KEY_ID, None), Reason.SIGNATURE_MALFORMED, id="missing key id"),
    pytest.param(set_annotation(ANNOTATION_SIGNATURE, "not*base64!"), Reason.SIGNATURE_MALFORMED, id="bad base64"),
    pytest.param(truncate_signature, Reason.SIGNATURE_INVALID, id="truncated signature"),
    pytest.param(set_annotation(ANNOTATION_KEY_ID, "nobody"), Reason.UNKNOWN_KEY, id="unknown key id"),
    pytest.param(
        resign(ATTACKER, "platform"), Reason.SIGNATURE_INVALID, id="signed by an untrusted key claiming a trusted id"
    ),
    pytest.param(resign(ATTACKER, "attacker"), Reason.UNKNOWN_KEY, id="signed by an untrusted key under its own id"),
    pytest.param(
        copy_signature_to(name="other-workload"), Reason.SIGNATURE_INVALID, id="signature copied to another name"
    ),
    pytest.param(
        copy_signature_to(namespace="team-b"), Reason.SIGNATURE_INVALID, id="signature copied to another namespace"
    ),
    pytest.param(
        copy_signature_to(kind="PlacementPolicy"), Reason.SIGNATURE_INVALID, id="signature copied to another kind"
    ),
    pytest.param(
        mutate(lambda o: o["spec"]["resources"].update(gpus=8)),
        Reason.SIGNATURE_INVALID,
        id="spec tampered: one field changed",
    ),
    pytest.param(
        mutate(lambda o: o["spec"].update(replicas=3)), Reason.SIGNATURE_INVALID, id="spec tampered: one field added"
    ),
    pytest.param(
        mutate(lambda o: o["spec"]["args"].reverse()), Reason.SIGNATURE_INVALID, id="spec tampered: list reordered"
    ),
    pytest.param(
        set_annotation(ANNOTATION_SIGNATURE_EXPIRES, "2099-01-01T00:00:00Z"),
        Reason.SIGNATURE_INVALID,
        id="expiry extended after signing",
    ),
    pytest.param(
        ecdsa_signature_under_ed25519_id, Reason.SIGNATURE_INVALID, id="ECDSA signature presented for an Ed25519 key id"
    ),
    pytest.param(
        set_annotation(ANNOTATION_SIGNATURE_EXPIRES, "next tuesday"),
        Reason.SIGNATURE_MALFORMED,
        id="unparseable expiry",
    ),
]


@pytest.mark.parametrize(("attack", "reason"), ATTACKS)
def test_attack_is_refused_with_its_reason(attack: Callable[[dict[str, Any]], dict[str, Any]], reason: Reason) -> None:
    genuine = signed(make_workload(), expires=NOW + timedelta(days=30))
    assert verify(genuine, KEYRING, NOW).ok
    verdict = verify(attack(genuine), KEYRING, NOW)
    assert verdict.reason is reason, verdict.message
    assert not verdict.ok
    assert verdict.digest is None


def test_expired_signature_is_refused() -> None:
    obj = signed(make_workload(), expires=NOW - timedelta(hours=1))
    assert verify(obj, KEYRING, NOW).reason is Reason.SIGNATURE_EXPIRED


def test_expiry_within_clock_skew_still_verifies() -> None:
    obj = signed(make_workload(), expires=NOW - timedelta(minutes=2))
    assert verify(obj, KEYRING, NOW).ok


@pytest.mark.parametrize(
    ("validity", "reason"),
    [
        pytest.param({"platform_notAfter": "2026-11-01T00:00:00Z"}, Reason.KEY_EXPIRED, id="key past its notAfter"),
        pytest.param(
            {"platform_notBefore": "2026-12-01T00:00:00Z"}, Reason.KEY_NOT_YET_VALID, id="key before its notBefore"
        ),
        pytest.param(
            {"platform_notBefore": "2026-11-01T00:00:00Z", "platform_notAfter": "2026-12-01T00:00:00Z"},
            Reason.VERIFIED,
            id="key inside its validity window",
        ),
    ],
)
def test_key_validity_window(validity: dict[str, str], reason: Reason) -> None:
    keyring = keyring_of(("platform", PLATFORM), **validity)
    assert verify(signed(make_workload()), keyring, NOW).reason is reason


def test_key_allowed_by_policy_only() -> None:
    obj = signed(make_workload(), ROTATED, "rotated")
    assert verify(obj, KEYRING, NOW).ok
    verdict = verify(obj, KEYRING, NOW, allowed_key_ids={"platform"})
    assert verdict.reason is Reason.UNTRUSTED_KEY


def test_rotation_trusts_old_and_new_keys_at_once() -> None:
    assert verify(signed(make_workload(), PLATFORM, "platform"), KEYRING, NOW).ok
    assert verify(signed(make_workload(), ROTATED, "rotated"), KEYRING, NOW).ok


def test_policies_are_signed_too() -> None:
    policy = signed(make_policy(weights={"cost": 80}))
    assert verify(policy, KEYRING, NOW).ok
    tampered = copy.deepcopy(policy)
    tampered["spec"]["weights"]["cost"] = 10
    assert verify(tampered, KEYRING, NOW).reason is Reason.SIGNATURE_INVALID


def test_verified_verdict_carries_key_and_digest() -> None:
    verdict = verify(signed(make_workload()), KEYRING, NOW)
    assert verdict.key_id == "platform"
    assert verdict.digest is not None
    assert verdict.digest.startswith("sha256:")


def add(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(obj: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = obj
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    return mutate(change)


def add_annotation(key: str, value: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return mutate(lambda o: o["metadata"]["annotations"].__setitem__(key, value))


def add_label(key: str, value: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return mutate(lambda o: o["metadata"].setdefault("labels", {}).__setitem__(key, value))


HARMLESS = [
    pytest.param(
        add_annotation("argocd.argoproj.io/tracking-id", "ml:mlplacement.io/MLWorkload:team-a/x"),
        id="Argo CD tracking annotation",
    ),
    pytest.param(add_label("app.kubernetes.io/instance", "ml-apps"), id="Argo CD instance label"),
    pytest.param(add_annotation("meta.helm.sh/release-name", "ml"), id="Helm release annotation"),
    pytest.param(add_annotation("meta.helm.sh/release-namespace", "ml"), id="Helm namespace annotation"),
    pytest.param(add_label("app.kubernetes.io/managed-by", "Helm"), id="Helm managed-by label"),
    pytest.param(
        add_annotation("kubectl.kubernetes.io/last-applied-configuration", '{"spec": {}}'),
        id="kubectl last-applied annotation",
    ),
    pytest.param(add_annotation("kopf.zalando.org/last-handled-configuration", "{}"), id="kopf annotation"),
    pytest.param(add_label("team", "renamed"), id="labels changed"),
    pytest.param(add("metadata.finalizers", ["mlplacement.io/cleanup"]), id="finalizers"),
    pytest.param(add("status", {"phase": "Placed", "conditions": []}), id="status"),
    pytest.param(add("metadata.managedFields", [{"manager": "kubectl", "operation": "Apply"}]), id="managedFields"),
    pytest.param(add("metadata.resourceVersion", "12345"), id="resourceVersion"),
    pytest.param(add("metadata.uid", "6f1c5a4e-2b1e-4e55-9a4d-8f0d2b7e9c11"), id="uid"),
    pytest.param(add("metadata.generation", 7), id="generation"),
    pytest.param(add("metadata.creationTimestamp", "2026-11-22T10:00:00Z"), id="creationTimestamp"),
]


@pytest.mark.parametrize("change", HARMLESS)
def test_harmless_change_still_verifies(change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    assert verify(change(signed(make_workload())), KEYRING, NOW).ok


def test_numbers_that_change_form_on_the_way_through_the_apiserver_still_verify() -> None:
    obj = signed(make_workload(intent={"dataSizeGB": 2.0, "priority": 10}, resources={"gpus": 1, "cpu": 2}))
    # The apiserver stores JSON; a client may read 2.0 back as 2 and 10 as 10.0.
    via_apiserver = json.loads(json.dumps(obj).replace('"dataSizeGB": 2.0', '"dataSizeGB": 2'))
    via_apiserver["spec"]["intent"]["priority"] = 10.0
    assert verify(via_apiserver, KEYRING, NOW).ok


def test_namespaced_kind_needs_a_namespace_to_be_signed() -> None:
    unnamespaced = make_workload()
    del unnamespaced["metadata"]["namespace"]
    with pytest.raises(SigningError, match="namespace"):
        sign(unnamespaced, PLATFORM, "platform")


def test_payload_has_domain_prefix_and_binds_identity() -> None:
    payload = signed_payload(make_workload(), "platform", None)
    prefix, body = payload.split(b"\n", 1)
    assert prefix == b"mlplacement.io/signed-manifest/v1"
    assert set(json.loads(body)) == {"apiVersion", "kind", "namespace", "name", "spec", "keyId", "expires"}


def test_bad_keys_are_reported_by_id_never_by_content() -> None:
    secret_looking = "-----BEGIN PUBLIC KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PUBLIC KEY-----\n"
    rsa_like = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
    keyring = keyring_core.parse_keyring(
        {
            "broken.pem": secret_looking,
            "weird.pem": rsa_like,
            "good.pem": keyring_core.public_pem(PLATFORM),
            "good.notAfter": "tomorrow",
        }
    )
    assert set(keyring.problems) == {"broken", "weird", "good"}
    assert "c2VjcmV0" not in " ".join(keyring.problems.values())
    assert keyring.keys == {}


def test_unsupported_curve_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1())
    keyring = keyring_core.parse_keyring({"p384.pem": keyring_core.public_pem(p384)})  # type: ignore[arg-type]
    assert "unsupported key type" in keyring.problems["p384"]


# Property tests: JSON-shaped specs of bounded size.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
specs = st.dictionaries(st.text(min_size=1, max_size=10), json_values, min_size=1, max_size=6)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs)
def test_property_sign_then_verify_succeeds(spec: dict[str, Any]) -> None:
    obj = {**make_workload(), "spec": spec}
    assert verify(signed(obj), KEYRING, NOW).ok


def leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in leaf_paths(value, (*path, key))] or [path]
    if isinstance(node, list):
        return [p for index, value in enumerate(node) for p in leaf_paths(value, (*path, index))] or [path]
    return [path]


def different(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return "changed"
    if isinstance(value, int | float):
        return value + 1 if abs(value) < 2**50 else 0
    if isinstance(value, str):
        return value + "x"
    return [value] if isinstance(value, dict) else {"changed": value}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, data=st.data())
def test_property_any_change_to_any_spec_value_fails(spec: dict[str, Any], data: st.DataObject) -> None:
    obj = signed({**make_workload(), "spec": spec})
    path = data.draw(st.sampled_from(leaf_paths(obj["spec"])))
    tampered = copy.deepcopy(obj)
    if path:
        node = tampered["spec"]
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = different(node[path[-1]])
    else:
        tampered["spec"] = {"changed": True}
    assert verify(tampered, KEYRING, NOW).reason is Reason.SIGNATURE_INVALID


def renormalise_numbers(node: Any) -> Any:
    """What a JSON round trip through another language may do: integral floats become ints and back."""
    if isinstance(node, dict):
        return {k: renormalise_numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [renormalise_numbers(v) for v in node]
    if isinstance(node, float) and node.is_integer() and abs(node) < 2**53:
        return int(node)
    if isinstance(node, int) and not isinstance(node, bool):
        return float(node)
    return node


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs)
def test_property_json_round_trip_with_number_renormalisation_still_verifies(spec: dict[str, Any]) -> None:
    obj = signed({**make_workload(), "spec": spec})
    round_tripped = json.loads(json.dumps(obj))
    round_tripped["spec"] = renormalise_numbers(round_tripped["spec"])
    assert verify(round_tripped, KEYRING, NOW).ok


@pytest.mark.parametrize(
    "expires",
    [
        pytest.param("9999-12-31T23:59:59-23:59", id="past the last instant in UTC"),
        pytest.param("0001-01-01T00:00:00+23:59", id="before the first instant in UTC"),
    ],
)
def test_an_out_of_range_expiry_is_a_verdict_not_an_exception(expires: str) -> None:
    obj = with_annotations(make_workload(), {**sign(make_workload(), PLATFORM, "platform")})
    obj["metadata"]["annotations"]["mlplacement.io/signature-expires"] = expires
    assert verify(obj, KEYRING, NOW).reason.value == "SignatureMalformed"


def test_a_signature_valid_to_the_calendars_end_verifies_and_is_reused() -> None:
    from mlplacement.core.reconcile import Admitted, PolicyCheck, admit

    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    policy = with_annotations(make_policy("default"), sign(make_policy("default"), PLATFORM, "platform", last))
    workload = with_annotations(make_workload(), sign(make_workload(), PLATFORM, "platform"))
    assert verify(policy, KEYRING, NOW).ok
    outcome = admit(workload, policies={"default": policy}, keyring=KEYRING, now=NOW, policy_check=PolicyCheck())
    assert isinstance(outcome, Admitted)


@given(text=st.text(max_size=40))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_expiry_text_gives_a_verdict(text: str) -> None:
    obj = with_annotations(make_workload(), {**sign(make_workload(), PLATFORM, "platform")})
    obj["metadata"]["annotations"]["mlplacement.io/signature-expires"] = text
    assert verify(obj, KEYRING, NOW).reason is not None


@given(text=st.one_of(st.text(max_size=40), st.just("9999-12-31T23:59:59-23:59")))
@settings(max_examples=200)
def test_a_bad_validity_bound_refuses_that_key_and_keeps_the_others(text: str) -> None:
    data = {
        "platform.pem": keyring_core.public_pem(PLATFORM),
        "rotated.pem": keyring_core.public_pem(ROTATED),
        "rotated.notAfter": text,
    }
    ring = keyring_core.parse_keyring(data)
    assert "platform" in ring.keys
    assert ("rotated" in ring.keys) != ("rotated" in ring.problems)


@given(blob=st.binary(max_size=300), armored=st.text(max_size=200))
@settings(max_examples=150)
def test_a_malformed_pem_beside_a_good_one_leaves_the_good_one_trusted(blob: bytes, armored: str) -> None:
    data: dict[str, str | bytes] = {
        "platform.pem": keyring_core.public_pem(PLATFORM),
        "garbage.pem": blob,
        "armored.pem": f"-----BEGIN PUBLIC KEY-----\n{armored}\n-----END PUBLIC KEY-----\n",
    }
    ring = keyring_core.parse_keyring(data)
    assert "platform" in ring.keys
