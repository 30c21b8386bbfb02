"""The databricks-sdk side of the Databricks adapter, imported only when a workspace is first used.

databricks-sdk adds about 50 MB to the process; an operator with no DatabricksWorkspace never pays it.
"""

from __future__ import annotations

from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.clock import RealClock
from databricks.sdk.config import Config
from databricks.sdk.errors.base import DatabricksError
from databricks.sdk.errors.platform import NotFound
from databricks.sdk.service.jobs import SubmitTask

__all__ = ["DatabricksError", "NotFound", "SubmitTask", "WorkspaceClient", "new_client"]


class CappedSleepClock(RealClock):
    """The SDK sleeps a full Retry-After before it looks at its retry deadline; a 429 saying "come back in 10
    minutes" would hold a thread that long. Capping each sleep keeps the budget real; the server's hint
    still reaches the controller, which schedules its next poll by it."""

    def __init__(self, max_sleep_seconds: float) -> None:
        self.max_sleep_seconds = max_sleep_seconds

    def sleep(self, seconds: float) -> None:
        super().sleep(min(seconds, self.max_sleep_seconds))


def new_client(host: str, token: str, retry_budget_seconds: int, http_timeout_seconds: float) -> Any:
    config = Config(
        host=host,
        token=token,
        auth_type="pat",
        retry_timeout_seconds=retry_budget_seconds,
        http_timeout_seconds=http_timeout_seconds,
        clock=CappedSleepClock(max(1.0, retry_budget_seconds / 3)),
    )
    return WorkspaceClient(config=config)
