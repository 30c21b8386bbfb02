"""Optional validating admission webhook: moves a refusal from the operator's status to `kubectl apply`.

Imported only when MLPLACEMENT_WEBHOOK_PORT is set, because kopf refuses to start with admission handlers
and no server. The chart renders the ValidatingWebhookConfiguration; kopf only serves it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf

from mlplacement.api.constants import GROUP, VERSION
from mlplacement.config import OperatorConfig
from mlplacement.core.reconcile import admission_problem

# kopf serves each handler at /<id>; the chart's webhook paths use these ids.
WEBHOOK_HANDLER_IDS = ("validate-mlworkloads", "validate-placementpolicies")


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    cert_dir = Path(config.webhook_cert_dir)
    settings.admission.server = kopf.WebhookServer(
        addr="0.0.0.0",
        port=config.webhook_port,
        certfile=str(cert_dir / "tls.crt"),
        pkeyfile=str(cert_dir / "tls.key"),
    )
    settings.admission.managed = None  # the Helm chart owns the ValidatingWebhookConfiguration


@kopf.on.validate(GROUP, VERSION, "mlworkloads", id=WEBHOOK_HANDLER_IDS[0])
@kopf.on.validate(GROUP, VERSION, "placementpolicies", id=WEBHOOK_HANDLER_IDS[1])
def validate_signature(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    # Pure check against the cached keyring: no writes, so dry-run requests are answered the same way.
    old = kwargs.get("old")  # the stored object on UPDATE (kopf passes it; its typing does not declare it)
    problem = admission_problem(dict(body), dict(old) if old else None, memo.cache.keyring, datetime.now(UTC))
    if problem:
        raise kopf.AdmissionError(problem, code=403)
