"""Audit records as JSON lines on the logger ``mlplacement.audit`` (stdout, nothing else on the line)."""

from __future__ import annotations

import logging
import sys

from mlplacement.api.audit import AuditRecord

AUDIT_LOGGER = "mlplacement.audit"


class LogAudit:
    """Writes each record as one JSON object per line, so `kubectl logs … | mlplacement audit` can read it."""

    def __init__(self, stream: object = None) -> None:
        self.log = logging.getLogger(AUDIT_LOGGER)
        if not self.log.handlers:
            handler = logging.StreamHandler(stream or sys.stdout)  # type: ignore[arg-type]
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.log.addHandler(handler)
            self.log.propagate = False  # the operator's own log format would wrap the JSON
            self.log.setLevel(logging.INFO)

    def __call__(self, record: AuditRecord) -> None:
        self.log.info(record.model_dump_json(by_alias=True, exclude_none=True, exclude_defaults=False))
