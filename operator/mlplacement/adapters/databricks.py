"""Databricks through the official databricks-sdk: submit, get, cancel one-time runs, and a health probe.

The SDK is blocking; callers run these methods in a thread. Its retry budget is bounded (it honours 429/503
Retry-After within that budget); past it, `DatabricksUnavailableError` carries the server's Retry-After so the
controller can back off. The token is never part of an exception message, a log line or a returned value.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mlplacement.api.databricks import Workspace
from mlplacement.api.errors import DatabricksUnavailableError, RunNotFoundError
from mlplacement.core.databricks import RunState

__all__ = ["DatabricksJobs", "DatabricksUnavailableError", "RunNotFoundError", "Workspace"]

log = logging.getLogger("mlplacement.databricks")
# Databricks says "does not exist" with 400 INVALID_PARAMETER_VALUE for runs it no longer has.
_MISSING_RUN_MARKERS = ("does not exist", "RESOURCE_DOES_NOT_EXIST")


class DatabricksJobs:
    """One cached SDK client per workspace, rebuilt when its host or token changes."""

    def __init__(self, http_timeout_seconds: float = 10.0, retry_budget_seconds: int = 30) -> None:
        self.http_timeout_seconds = http_timeout_seconds
        self.retry_budget_seconds = retry_budget_seconds
        self._clients: dict[str, tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def _client(self, workspace: Workspace) -> Any:
        from mlplacement.adapters.databricks_sdk import new_client

        fingerprint = hashlib.sha256(f"{workspace.host}\0{workspace.token}".encode()).hexdigest()
        with self._lock:
            cached = self._clients.get(workspace.name)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
            client = new_client(workspace.host, workspace.token, self.retry_budget_seconds, self.http_timeout_seconds)
            self._clients[workspace.name] = (fingerprint, client)
            return client

    def _call(self, workspace: Workspace, what: str, fn: Any) -> Any:
        from mlplacement.adapters.databricks_sdk import DatabricksError, NotFound

        try:
            return fn(self._client(workspace))
        except NotFound:
            raise RunNotFoundError(f"{what}: not found") from None
        except DatabricksError as exc:
            text = _scrub(str(exc), workspace.token)
            if any(marker in text for marker in _MISSING_RUN_MARKERS):
                raise RunNotFoundError(f"{what}: {text}") from None
            retry_after = getattr(exc, "retry_after_secs", None)
            raise DatabricksUnavailableError(f"{what} in {workspace.name}: {text}", retry_after) from None
        except Exception as exc:  # network errors, and the SDK giving up after its retry budget
            cause = exc.__cause__  # the SDK's TimeoutError wraps the last API error (and its Retry-After)
            text = _scrub(f"{type(exc).__name__}: {exc}" + (f" ({cause})" if cause else ""), workspace.token)
            retry_after = getattr(cause, "retry_after_secs", None)
            raise DatabricksUnavailableError(f"{what} in {workspace.name}: {text}", retry_after) from None

    def probe(self, workspace: Workspace) -> str:
        """A cheap authenticated call; returns the identity the token acts as."""
        return str(self._call(workspace, "probe", lambda c: c.current_user.me().user_name))

    def submit(self, workspace: Workspace, payload: Mapping[str, Any]) -> int:
        """runs/submit; the payload's idempotency_token makes a repeat return the same run."""

        from mlplacement.adapters.databricks_sdk import SubmitTask

        def submit(client: Any) -> int:
            waiter = client.jobs.submit(
                run_name=payload["run_name"],
                tasks=[SubmitTask.from_dict(task) for task in payload["tasks"]],
                idempotency_token=payload["idempotency_token"],
                timeout_seconds=payload.get("timeout_seconds"),
            )
            return int(waiter.run_id)

        return int(self._call(workspace, "submit", submit))

    def get(self, workspace: Workspace, run_id: int) -> RunState:
        run = self._call(workspace, f"get run {run_id}", lambda c: c.jobs.get_run(run_id))
        state = run.state
        return RunState(
            run_id=run_id,
            life_cycle_state=state.life_cycle_state.value if state and state.life_cycle_state else "PENDING",
            result_state=state.result_state.value if state and state.result_state else None,
            state_message=(state.state_message or "") if state else "",
            run_page_url=run.run_page_url,
            started_at=_from_ms(run.start_time),
            ended_at=_from_ms(run.end_time),
        )

    def cancel(self, workspace: Workspace, run_id: int) -> None:
        self._call(workspace, f"cancel run {run_id}", lambda c: c.jobs.cancel_run(run_id))


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _from_ms(epoch_ms: int | None) -> datetime | None:
    """The Jobs API's epoch milliseconds (0 or absent: not yet) as a UTC time."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC) if epoch_ms else None
