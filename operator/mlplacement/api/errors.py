"""Validation errors as one line per problem, each naming the field path the user wrote."""

from pydantic import ValidationError


def field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """``spec.intent.priority: Input should be greater than or equal to 0; ...`` with an optional prefix."""
    problems = []
    for error in exc.errors(include_url=False):
        location = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{prefix}{field_path(location)}: {message}")
    return "; ".join(problems)


class ApplyError(Exception):
    """The cluster refused a child. ``reason`` is stable (a metric label), ``message`` the server's own words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class DatabricksUnavailableError(Exception):
    """A Databricks call failed after the client's bounded retries; ``retry_after`` is the server's hint, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RunNotFoundError(Exception):
    """The Databricks run is gone from the workspace."""


class LeaseConflictError(Exception):
    """Someone else wrote the Lease since it was read (409): read it again and decide again."""
