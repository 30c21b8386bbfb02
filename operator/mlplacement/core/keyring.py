"""Trusted public keys: parsed from a directory or a Secret/ConfigMap ``data`` mapping, purely.

Layout, in a directory or under ``data``: ``<keyId>.pem`` holds one PEM public key; the optional
``<keyId>.notBefore`` and ``<keyId>.notAfter`` hold RFC 3339 UTC times bounding when it is trusted.
Ed25519 is preferred, ECDSA P-256 accepted; anything else is refused. Problems are reported by key id and
never by content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

PEM_SUFFIX = ".pem"
NOT_BEFORE_SUFFIX = ".notBefore"
NOT_AFTER_SUFFIX = ".notAfter"
MAX_PEM_CHARS = 16_384
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TRUST_FILE_SUFFIXES = (PEM_SUFFIX, NOT_BEFORE_SUFFIX, NOT_AFTER_SUFFIX)


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: PublicKey
    not_before: datetime | None = None
    not_after: datetime | None = None

    @property
    def algorithm(self) -> str:
        return "Ed25519" if isinstance(self.public_key, ed25519.Ed25519PublicKey) else "ECDSA-P256-SHA256"

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        """True if ``signature`` over ``payload`` is valid under this key's own algorithm."""
        try:
            if isinstance(self.public_key, ed25519.Ed25519PublicKey):
                self.public_key.verify(signature, payload)
            else:
                self.public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, TrustedKey] = field(default_factory=dict)
    # key id -> what is wrong with it; safe to show (never contains key material).
    problems: Mapping[str, str] = field(default_factory=dict)


class KeyringError(ValueError):
    """A key that cannot be used; the message names the key id or file, never its content."""


def load_public_key(pem: bytes, key_id: str) -> PublicKey:
    if len(pem) > MAX_PEM_CHARS:
        raise KeyringError(f"key {key_id!r}: PEM is larger than {MAX_PEM_CHARS} bytes")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        raise KeyringError(f"key {key_id!r}: not a PEM public key") from None
    return _accepted_public(key, key_id)


def _accepted_public(key: object, key_id: str) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyringError(f"key {key_id!r}: unsupported key type (use Ed25519 or ECDSA P-256)")


def load_private_key(pem: bytes, name: str) -> PrivateKey:
    """A signing key from PEM (PKCS#8, unencrypted); ``name`` is used in errors only."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise KeyringError(f"{name}: encrypted private keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyringError(f"{name}: not a PEM private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyringError(f"{name}: unsupported key type (use Ed25519 or ECDSA P-256)")


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_key(algorithm: str = "ed25519") -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise KeyringError(f"unknown algorithm {algorithm!r} (ed25519 or ecdsa-p256)")


def _parse_time(text: str, key_id: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise KeyringError(f"key {key_id!r}: {what} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise KeyringError(f"key {key_id!r}: {what} needs a UTC offset (Z)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # past the last representable instant in UTC: refuse this key, keep the others
        raise KeyringError(f"key {key_id!r}: {what} is out of range") from None


def parse_keyring(data: Mapping[str, str | bytes]) -> Keyring:
    """Build a keyring from ``<keyId>.pem`` (+ optional validity) entries; bad keys land in ``problems``."""
    keys: dict[str, TrustedKey] = {}
    problems: dict[str, str] = {}
    for entry in sorted(data):
        if not entry.endswith(PEM_SUFFIX):
            continue
        key_id = entry[: -len(PEM_SUFFIX)]
        if not KEY_ID_RE.match(key_id):
            problems[key_id[:64]] = f"entry {entry[:80]!r}: key id must match {KEY_ID_RE.pattern}"
            continue
        raw = data[entry]
        try:
            pem = raw.encode() if isinstance(raw, str) else raw
            public_key = load_public_key(pem, key_id)
            bounds = {}
            for suffix, what in ((NOT_BEFORE_SUFFIX, "notBefore"), (NOT_AFTER_SUFFIX, "notAfter")):
                value = data.get(key_id + suffix)
                if value:
                    text = value.decode() if isinstance(value, bytes) else value
                    bounds[what] = _parse_time(text, key_id, what)
        except (KeyringError, UnicodeDecodeError) as exc:
            problems[key_id] = str(exc) if isinstance(exc, KeyringError) else f"key {key_id!r}: not text"
            continue
        keys[key_id] = TrustedKey(key_id, public_key, bounds.get("notBefore"), bounds.get("notAfter"))
    return Keyring(keys=keys, problems=problems)
