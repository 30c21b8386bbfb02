"""Integration tests run against real control planes (tests/controlplane.py); without one they skip and say why.

Every module gets a control plane of its own, started for it and stopped after it: a module passes alone
and in any order, and what one module creates can never change another's decisions.

CI sets MLPLACEMENT_REQUIRE_CONTROL_PLANE=1: there a missing control plane stops the run, and an integration
test that skips for any reason fails, so a green CI means green on a real apiserver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.controlplane import ASSETS_DIR, ASSETS_ORIGIN, ControlPlane, describe_binaries, start_control_plane

REQUIRED = os.environ.get("MLPLACEMENT_REQUIRE_CONTROL_PLANE", "") not in ("", "0", "false")


def pytest_report_header() -> str:
    required = " (required: MLPLACEMENT_REQUIRE_CONTROL_PLANE)" if REQUIRED else ""
    return f"integration control plane{required}: {describe_binaries()}"


def _integration(item: pytest.Item) -> bool:
    return "tests/integration" in str(item.fspath)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    chosen = [item for item in items if _integration(item)]
    if chosen and ASSETS_DIR is None and REQUIRED:
        raise pytest.UsageError(
            f"MLPLACEMENT_REQUIRE_CONTROL_PLANE is set, but found no control plane: {ASSETS_ORIGIN}"
        )
    for item in chosen:
        item.add_marker(pytest.mark.integration)
        if ASSETS_DIR is None:
            item.add_marker(pytest.mark.skip(reason=ASSETS_ORIGIN))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRED and _integration(item) and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but MLPLACEMENT_REQUIRE_CONTROL_PLANE is set: {reason}"


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = start_control_plane(tmp_path_factory.mktemp("home"))
    yield plane
    plane.stop()
