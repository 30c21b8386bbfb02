"""The webhook's TLS material, issued and rotated by the operator itself (no cert-manager, no Helm `lookup`).

A private CA signs a serving certificate for the webhook Service's DNS names. Both live in one Secret that
every replica serves from; the CA goes into the ValidatingWebhookConfiguration's caBundle. The serving
certificate is renewed well before it expires; the CA lives ten times as long, and when it is renewed the
old CA stays in the bundle until it expires, so a replica still serving the old certificate is trusted
through the hand-over. Pure: the clock is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_VALIDITY = timedelta(days=365)
CA_VALIDITY = timedelta(days=3650)
RENEW_BEFORE = timedelta(days=60)  # a serving certificate this close to its end is replaced
CA_RENEW_BEFORE = timedelta(days=365)
BACKDATE = timedelta(hours=1)  # tolerate an API server whose clock is a little behind ours
SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")


@dataclass(frozen=True)
class WebhookTLS:
    """PEM texts as stored in the Secret: ``ca_bundle`` may hold the previous CA after the current one."""

    ca_bundle: str
    ca_key: str
    cert: str
    key: str

    def secret_data(self) -> dict[str, str]:
        return dict(zip(SECRET_KEYS, (self.ca_bundle, self.ca_key, self.cert, self.key), strict=True))

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str] | None) -> WebhookTLS | None:
        if not data or any(not data.get(k) for k in SECRET_KEYS):
            return None
        return cls(*(data[k] for k in SECRET_KEYS))


def dns_names(service: str, namespace: str) -> tuple[str, ...]:
    return (service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local")


def renewal_reason(tls: WebhookTLS | None, names: Sequence[str], now: datetime) -> str | None:
    """Why the stored material must be (re)issued, or None when it serves as it is."""
    if tls is None:
        return "no certificate yet"
    try:
        ca = x509.load_pem_x509_certificate(tls.ca_bundle.encode())
        cert = x509.load_pem_x509_certificate(tls.cert.encode())
        ca_key = serialization.load_pem_private_key(tls.ca_key.encode(), password=None)
        key = serialization.load_pem_private_key(tls.key.encode(), password=None)
    except (ValueError, TypeError):
        return "the stored certificate or key does not parse"
    if ca.not_valid_after_utc - now < CA_RENEW_BEFORE:
        return "the CA expires soon"
    if cert.not_valid_after_utc - now < RENEW_BEFORE or cert.not_valid_before_utc > now + BACKDATE:
        return "the serving certificate expires soon or is not valid yet"
    if cert.issuer != ca.subject or ca_key.public_key() != ca.public_key() or key.public_key() != cert.public_key():
        return "the certificate, key and CA do not belong together"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the serving certificate names no host"
    if set(san.get_values_for_type(x509.DNSName)) != set(names):
        return "the serving certificate names other hosts"
    return None


def issue(names: Sequence[str], now: datetime, previous: WebhookTLS | None = None) -> WebhookTLS:
    """A serving certificate for ``names``, signed by the previous CA while it has long to live, else a new CA
    (the previous one stays in the bundle until it expires)."""
    ca_cert, ca_key = _usable_ca(previous, now)
    bundle_tail = ""
    if ca_cert is None or ca_key is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key, now)
        if previous is not None:
            bundle_tail = "".join(_still_valid(previous.ca_bundle, now))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = _pem(ca_cert)
    return WebhookTLS(
        ca_bundle=ca_pem + (bundle_tail if bundle_tail != ca_pem else ""),
        ca_key=_key_pem(ca_key),
        cert=_pem(cert),
        key=_key_pem(key),
    )


def _usable_ca(
    previous: WebhookTLS | None, now: datetime
) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None]:
    if previous is None:
        return None, None
    try:
        ca = x509.load_pem_x509_certificate(previous.ca_bundle.encode())
        key = serialization.load_pem_private_key(previous.ca_key.encode(), password=None)
    except (ValueError, TypeError):
        return None, None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != ca.public_key():
        return None, None
    if ca.not_valid_after_utc - now < CA_RENEW_BEFORE:
        return None, None
    return ca, key


def _still_valid(bundle: str, now: datetime) -> list[str]:
    try:
        certs = x509.load_pem_x509_certificates(bundle.encode())
    except ValueError:
        return []
    return [_pem(c) for c in certs[:1] if c.not_valid_after_utc > now]  # only the CA it replaces, never a chain


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mlplacement-webhook-ca-{now:%Y%m%d%H%M%S}")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
