"""Where the webhook's certificate comes from, and keeping it current.

Two sources: files mounted from a Secret someone else keeps (cert-manager), or a Secret the operator keeps
itself (``MLPLACEMENT_WEBHOOK_CERT_SECRET``). With the latter the leader issues and rotates it and puts the
CA into the ValidatingWebhookConfiguration; every replica, the standby included, serves from it. Both are
re-read every reload period, so a rotated certificate is served without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from mlplacement.config import OperatorConfig
from mlplacement.core.certs import WebhookTLS, dns_names, issue, renewal_reason

log = logging.getLogger("mlplacement.webhook")
BUNDLE_REFRESH_SECONDS = 300.0


class CertificateStore(Protocol):
    """The cluster calls the operator-kept certificate needs. Blocking."""

    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def write_secret_data(self, namespace: str, name: str, data: dict[str, str], exists: bool) -> None:
        """Create the Secret (``exists`` False) or replace its data; values base64 as the API takes them."""
        ...

    def patch_webhook_ca_bundle(self, configuration: str, ca_bundle: str) -> None:
        """Set clientConfig.caBundle (base64) of every webhook in the ValidatingWebhookConfiguration."""
        ...


class ServingCertificate:
    """An ssl.SSLContext whose certificate can be swapped while the server runs (new handshakes use it)."""

    def __init__(self) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.loaded: tuple[str, str] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="mlplacement-webhook-"))  # 0700: private to this process
        self._generation = 0

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def load(self, cert: str, key: str) -> bool:
        """Serve ``cert``/``key`` (PEM) from now on; False when they are what is served already."""
        if self.loaded == (cert, key):
            return False
        # ssl only reads files. A fresh pair of names each time: a reload never reads a half-written file.
        self._generation += 1
        cert_path, key_path = self._dir / f"tls-{self._generation}.crt", self._dir / f"tls-{self._generation}.key"
        for path, text in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        try:
            self.context.load_cert_chain(str(cert_path), str(key_path))
        finally:
            cert_path.unlink(missing_ok=True)
            key_path.unlink(missing_ok=True)
        self.loaded = (cert, key)
        return True

    def close(self) -> None:
        for path in self._dir.glob("*"):
            path.unlink(missing_ok=True)
        self._dir.rmdir()


class WebhookCertificates:
    """Keeps ``serving`` loaded from the configured source; ``ensure`` (leader only) issues and rotates."""

    def __init__(
        self,
        config: OperatorConfig,
        store: CertificateStore,
        serving: ServingCertificate,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.serving = serving
        self.clock = clock
        self.names = dns_names(config.webhook_service, config.namespace) if config.webhook_service else ()
        self.monotonic = monotonic
        self._bundle_set: tuple[str, float] | None = None  # what was last put in the configuration, and when

    async def load(self) -> None:
        """Serve what the source holds now (files, or the operator's Secret). Nothing there yet: keep waiting."""
        config = self.config
        if config.webhook_cert_secret:
            data = await asyncio.to_thread(self.store.read_secret_data, config.namespace, config.webhook_cert_secret)
            tls = WebhookTLS.from_secret_data(_decoded(data))
            if tls is None:
                return
            cert, key = tls.cert, tls.key
        else:
            directory = Path(config.webhook_cert_dir)
            try:
                cert, key = (directory / "tls.crt").read_text(), (directory / "tls.key").read_text()
            except OSError as exc:
                log.warning("webhook certificate not readable yet: %s", exc.strerror)
                return
        try:
            if self.serving.load(cert, key):
                log.info("webhook serving certificate loaded")
        except (ssl.SSLError, OSError) as exc:
            log.error("webhook certificate refused: %s", exc)

    async def ensure(self) -> None:
        """Leader only: issue or rotate the Secret's certificate, and keep the CA in the webhook configuration."""
        config = self.config
        if not config.webhook_cert_secret:
            return
        data = await asyncio.to_thread(self.store.read_secret_data, config.namespace, config.webhook_cert_secret)
        tls = WebhookTLS.from_secret_data(_decoded(data))
        reason = renewal_reason(tls, self.names, self.clock())
        if reason is not None:
            tls = issue(self.names, self.clock(), previous=tls)
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in tls.secret_data().items()}
            await asyncio.to_thread(
                self.store.write_secret_data, config.namespace, config.webhook_cert_secret, encoded, data is not None
            )
            log.info("webhook certificate issued: %s", reason)
        assert tls is not None
        bundle = base64.b64encode(tls.ca_bundle.encode()).decode()
        # Set when the CA changes, and again now and then: an upgrade that rendered the configuration anew must
        # not leave the API server without the CA for long.
        last = self._bundle_set
        if last is None or last[0] != bundle or self.monotonic() - last[1] > BUNDLE_REFRESH_SECONDS:
            await asyncio.to_thread(self.store.patch_webhook_ca_bundle, config.webhook_configuration, bundle)
            self._bundle_set = (bundle, self.monotonic())


def _decoded(data: dict[str, str] | None) -> dict[str, str] | None:
    if data is None:
        return None
    try:
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    except (ValueError, UnicodeDecodeError):
        return {}  # garbage in the Secret: treated as empty, so the leader issues anew
