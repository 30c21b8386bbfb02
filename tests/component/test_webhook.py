"""The admission webhook as the API server meets it: HTTPS with the operator's own certificate, real TLS and a
real HTTP client, AdmissionReviews in and out; certificates issued, stored, rotated and served without a
restart, the CA kept in the webhook configuration.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from mlplacement.config import OperatorConfig
from mlplacement.controller.webhook_tls import ServingCertificate, WebhookCertificates
from mlplacement.core import keyring as keyring_core
from mlplacement.core.certs import CERT_VALIDITY, RENEW_BEFORE, WebhookTLS, dns_names, issue, renewal_reason
from mlplacement.core.signing import sign
from mlplacement.handlers.webhook import WEBHOOK_HANDLER_IDS, WebhookServer, review_response
from tests.builders import keyring_of, make_workload, with_annotations
from tests.controlplane import free_port

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = keyring_core.generate_key("ed25519")
KEYRING = keyring_of(("platform", KEY))
SERVICE, NAMESPACE = "mlplacement-webhook", "mlplacement-system"
HOST = f"{SERVICE}.{NAMESPACE}.svc"


def in_loop(test: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return run


class Store:
    """The cluster calls of certificate keeping: a Secret and the webhook configuration's caBundle."""

    def __init__(self) -> None:
        self.secret: dict[str, str] | None = None
        self.ca_bundle: str | None = None
        self.writes = 0

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return None if self.secret is None else dict(self.secret)

    def write_secret_data(self, namespace: str, name: str, data: dict[str, str], exists: bool) -> None:
        assert exists == (self.secret is not None), "create when absent, replace when present"
        self.secret = dict(data)
        self.writes += 1

    def patch_webhook_ca_bundle(self, configuration: str, ca_bundle: str) -> None:
        self.ca_bundle = ca_bundle


def config(port: int = 0) -> OperatorConfig:
    return OperatorConfig(
        namespace=NAMESPACE,
        webhook_port=port,
        webhook_cert_secret="mlplacement-webhook-tls",
        webhook_service=SERVICE,
        webhook_configuration="mlplacement",
    )


def review(obj: dict[str, Any], uid: str = "c0ffee") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": uid, "operation": "CREATE", "object": obj},
    }


def signed_workload() -> dict[str, Any]:
    obj = make_workload(name="trainer", namespace="team-a")
    return with_annotations(obj, sign(obj, KEY, "platform"))


def client_context(ca_bundle_b64: str) -> ssl.SSLContext:
    """What the API server does with the caBundle: trust exactly it, check the Service's name."""
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle_b64).decode())
    context.check_hostname = True
    return context


async def post(port: int, context: ssl.SSLContext, body: Any, path: str = "/validate-mlworkloads") -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"https://127.0.0.1:{port}{path}", json=body, ssl=context, server_hostname=HOST) as response,
    ):
        assert response.status == 200
        return dict(await response.json())


@in_loop
async def test_the_api_server_gets_verdicts_over_tls_it_can_verify() -> None:
    store, serving, port = Store(), ServingCertificate(), free_port()
    certs = WebhookCertificates(config(port), store, serving)  # the real clock: TLS checks against it
    await certs.ensure()
    await certs.load()
    assert serving.ready
    assert store.ca_bundle is not None
    server = WebhookServer(port, serving, lambda: KEYRING)
    await server.start()
    try:
        context = client_context(store.ca_bundle)
        allowed = await post(port, context, review(signed_workload()))
        assert allowed["response"] == {"uid": "c0ffee", "allowed": True}
        unsigned = make_workload(name="sneaky", namespace="team-a")
        refused = await post(port, context, review(unsigned, uid="beef"))
        assert refused["response"]["allowed"] is False
        assert refused["response"]["uid"] == "beef"
        assert refused["response"]["status"]["code"] == 403
        assert "SignatureMissing" in refused["response"]["status"]["message"]
        garbage = await post(port, context, ["not", "a", "review"], path=f"/{WEBHOOK_HANDLER_IDS[1]}")
        assert garbage["response"]["allowed"] is False
    finally:
        await server.stop()
        serving.close()


@in_loop
async def test_a_rotated_certificate_is_served_without_a_restart() -> None:
    store, serving, port = Store(), ServingCertificate(), free_port()
    # Issued long enough ago to be inside its renewal window today (TLS checks against the real clock).
    real_now = datetime.now(UTC)
    now = [real_now - (CERT_VALIDITY - RENEW_BEFORE) - timedelta(days=1)]
    certs = WebhookCertificates(config(port), store, serving, clock=lambda: now[0])
    await certs.ensure()
    await certs.load()
    first = WebhookTLS.from_secret_data({k: base64.b64decode(v).decode() for k, v in (store.secret or {}).items()})
    server = WebhookServer(port, serving, lambda: KEYRING)
    await server.start()
    try:
        now[0] = real_now
        await certs.ensure()
        assert store.writes == 2
        await certs.load()
        second = WebhookTLS.from_secret_data({k: base64.b64decode(v).decode() for k, v in (store.secret or {}).items()})
        assert first is not None
        assert second is not None
        assert second.cert != first.cert
        assert second.ca_bundle == first.ca_bundle
        assert store.ca_bundle is not None
        answer = await post(port, client_context(store.ca_bundle), review(signed_workload()))
        assert answer["response"]["allowed"] is True
        await certs.ensure()
        assert store.writes == 2  # nothing to renew: no write
    finally:
        await server.stop()
        serving.close()


@in_loop
async def test_a_standby_serves_from_the_secret_and_never_writes() -> None:
    store = Store()
    leader = WebhookCertificates(config(), store, ServingCertificate(), clock=lambda: NOW)
    await leader.ensure()
    writes, bundle = store.writes, store.ca_bundle
    standby_serving = ServingCertificate()
    standby = WebhookCertificates(config(), store, standby_serving, clock=lambda: NOW)
    await standby.load()
    assert standby_serving.ready
    assert (store.writes, store.ca_bundle) == (writes, bundle)
    standby_serving.close()
    leader.serving.close()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(lambda tls, now: tls, None, id="fresh material is kept"),
        pytest.param(lambda tls, now: None, "no certificate yet", id="nothing stored yet"),
        pytest.param(
            lambda tls, now: WebhookTLS(tls.ca_bundle, tls.ca_key, "garbage", tls.key),
            "does not parse",
            id="a corrupted Secret is issued anew",
        ),
        pytest.param(
            lambda tls, now: WebhookTLS(tls.ca_bundle, tls.ca_key, tls.cert, issue(("x",), now).key),
            "do not belong together",
            id="a key that is not the certificate's",
        ),
        pytest.param(
            lambda tls, now: issue(("other.example",), now),
            "names other hosts",
            id="a certificate for another Service",
        ),
    ],
)
def test_when_the_webhook_certificate_is_issued_again(
    change: Callable[[WebhookTLS, datetime], WebhookTLS | None], reason: str | None
) -> None:
    names = dns_names(SERVICE, NAMESPACE)
    found = renewal_reason(change(issue(names, NOW), NOW), names, NOW)
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_a_new_ca_keeps_the_old_one_in_the_bundle_until_it_expires() -> None:
    names = dns_names(SERVICE, NAMESPACE)
    old = issue(names, NOW)
    later = NOW + timedelta(days=3650 - 300)  # inside the CA's renewal window
    assert renewal_reason(old, names, later) == "the CA expires soon"
    new = issue(names, later, previous=old)
    assert new.ca_bundle.startswith(new.ca_bundle.split("-----END CERTIFICATE-----")[0])
    assert old.ca_bundle in new.ca_bundle
    assert new.ca_bundle != old.ca_bundle
    assert renewal_reason(new, names, later) is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(None, id="no body"),
        pytest.param({"request": "x"}, id="a request that is not an object"),
        pytest.param({"request": {"uid": 5}}, id="a uid that is not a string"),
        pytest.param({"request": {"uid": "u", "object": [1]}}, id="an object that is not an object"),
        pytest.param({"request": {"uid": "u", "object": {"kind": "MLWorkload", "spec": 7}}}, id="a spec of 7"),
    ],
)
def test_any_review_gets_an_answer(body: Any) -> None:
    answer = review_response(body, KEYRING, NOW)
    assert answer["kind"] == "AdmissionReview"
    assert isinstance(answer["response"]["allowed"], bool)
