"""The signed policy gate: what is signed, how, and the verdict on an object (fail closed).

Signed bytes are a domain-prefix line followed by RFC 8785 canonical JSON of
``{apiVersion, kind, namespace, name, spec, keyId, expires}``. Nothing else in metadata is signed, so the
labels and annotations kubectl, Helm, Argo CD and kopf add never break a signature, while moving one to
another name, namespace or kind does. The algorithm always comes from the trusted key, never the object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mlplacement.api.constants import (
    ANNOTATION_KEY_ID,
    ANNOTATION_SIGNATURE,
    ANNOTATION_SIGNATURE_EXPIRES,
    Kind,
    Reason,
)
from mlplacement.core.keyring import KEY_ID_RE, Keyring, PrivateKey

DOMAIN_PREFIX = b"mlplacement.io/signed-manifest/v1\n"
NAMESPACED_SIGNED_KINDS = frozenset({Kind.ML_WORKLOAD.value, Kind.ML_PIPELINE.value})
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
# A signature annotation longer than any real one is refused before decoding: no unbounded work.
MAX_SIGNATURE_CHARS = 512


class SigningError(ValueError):
    """The object cannot be signed as it is (no name, no namespace on a namespaced kind, ...)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one object. ``reason`` is stable API; ``message`` is for humans."""

    reason: Reason
    message: str
    key_id: str | None = None
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is Reason.VERIFIED


def format_expires(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expires(text: str) -> datetime:
    """RFC 3339 in UTC, e.g. 2026-12-31T00:00:00Z; ValueError for anything else, out-of-range times included."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset (Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59 is past the last representable instant in UTC
        raise ValueError("timestamp is out of range") from None


def signed_payload(obj: Mapping[str, Any], key_id: str, expires: str | None) -> bytes:
    """The exact bytes that are signed for ``obj`` (raises SigningError if it cannot be signed)."""
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise SigningError("metadata.name is required: the signature binds the name")
    document = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "namespace": metadata.get("namespace") or "",
        "name": name,
        "spec": obj.get("spec") or {},
        "keyId": key_id,
        "expires": expires or "",
    }
    try:
        return DOMAIN_PREFIX + rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise SigningError(f"spec cannot be canonicalised: {exc}") from exc


def payload_digest(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def sign(
    obj: Mapping[str, Any], private_key: PrivateKey, key_id: str, expires: datetime | None = None
) -> dict[str, str]:
    """The signature annotations for ``obj``; the caller merges them into metadata.annotations."""
    if not KEY_ID_RE.match(key_id):
        raise SigningError(f"key id {key_id!r} must match {KEY_ID_RE.pattern}")
    if obj.get("kind") in NAMESPACED_SIGNED_KINDS and not (obj.get("metadata") or {}).get("namespace"):
        raise SigningError("metadata.namespace is required: the signature binds the namespace")
    expires_text = format_expires(expires) if expires is not None else None
    payload = signed_payload(obj, key_id, expires_text)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(payload)
    else:
        signature = private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    annotations = {
        ANNOTATION_KEY_ID: key_id,
        ANNOTATION_SIGNATURE: base64.b64encode(signature).decode("ascii"),
    }
    if expires_text is not None:
        annotations[ANNOTATION_SIGNATURE_EXPIRES] = expires_text
    return annotations


def verify(
    obj: Mapping[str, Any],
    keyring: Keyring,
    now: datetime,
    *,
    allowed_key_ids: Collection[str] = (),
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Verdict:
    """Verify ``obj``'s signature annotations against ``keyring`` at ``now``. Never raises on bad input."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    signature_text = annotations.get(ANNOTATION_SIGNATURE)
    key_id = annotations.get(ANNOTATION_KEY_ID)
    expires_text = annotations.get(ANNOTATION_SIGNATURE_EXPIRES)
    if not signature_text:
        return Verdict(Reason.SIGNATURE_MISSING, f"no {ANNOTATION_SIGNATURE} annotation")
    if not key_id:
        return Verdict(Reason.SIGNATURE_MALFORMED, f"{ANNOTATION_SIGNATURE} is set but {ANNOTATION_KEY_ID} is not")
    if not isinstance(key_id, str) or not KEY_ID_RE.match(key_id):
        return Verdict(Reason.SIGNATURE_MALFORMED, f"{ANNOTATION_KEY_ID} is not a valid key id")
    if not isinstance(signature_text, str) or len(signature_text) > MAX_SIGNATURE_CHARS:
        return Verdict(Reason.SIGNATURE_MALFORMED, f"{ANNOTATION_SIGNATURE} is too long", key_id)
    try:
        signature = base64.b64decode(signature_text, validate=True)
    except (binascii.Error, ValueError):
        return Verdict(Reason.SIGNATURE_MALFORMED, f"{ANNOTATION_SIGNATURE} is not valid base64", key_id)
    expires: datetime | None = None
    if expires_text:
        try:
            expires = parse_expires(str(expires_text))
        except ValueError:
            return Verdict(
                Reason.SIGNATURE_MALFORMED, f"{ANNOTATION_SIGNATURE_EXPIRES} is not an RFC 3339 UTC time", key_id
            )

    trusted = keyring.keys.get(key_id)
    if trusted is None:
        return Verdict(Reason.UNKNOWN_KEY, f"key {key_id!r} is not in the trusted keyring", key_id)
    if trusted.not_before is not None and now + clock_skew < trusted.not_before:
        return Verdict(
            Reason.KEY_NOT_YET_VALID, f"key {key_id!r} is valid from {format_expires(trusted.not_before)}", key_id
        )
    if trusted.not_after is not None and now - clock_skew > trusted.not_after:
        return Verdict(Reason.KEY_EXPIRED, f"key {key_id!r} expired at {format_expires(trusted.not_after)}", key_id)

    try:
        payload = signed_payload(obj, key_id, str(expires_text) if expires_text else None)
    except SigningError as exc:
        return Verdict(Reason.SIGNATURE_INVALID, str(exc), key_id)
    if not trusted.verifies(signature, payload):
        return Verdict(
            Reason.SIGNATURE_INVALID,
            f"signature does not match this object under key {key_id!r} ({trusted.algorithm}): "
            "the spec, name, namespace or kind changed after signing, or another key signed it",
            key_id,
        )
    if expires is not None and now - clock_skew > expires:
        return Verdict(Reason.SIGNATURE_EXPIRED, f"signature expired at {format_expires(expires)}", key_id)
    if allowed_key_ids and key_id not in allowed_key_ids:
        return Verdict(
            Reason.UNTRUSTED_KEY,
            f"key {key_id!r} is trusted but not allowed here (allowed: {', '.join(sorted(allowed_key_ids))})",
            key_id,
        )
    return Verdict(Reason.VERIFIED, f"signed by {key_id!r} ({trusted.algorithm})", key_id, payload_digest(payload))
