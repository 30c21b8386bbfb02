"""Integration tests run against real control planes (tests/controlplane.py); without one they skip and say why.

Every module gets a control plane of its own, started for it and stopped after it: a module passes alone
and in any order, and what one module creates can never change another's decisions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controlplane import ASSETS_DIR, ASSETS_ORIGIN, ControlPlane, describe_binaries, start_control_plane


def pytest_report_header() -> str:
    return f"integration control plane: {describe_binaries()}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if ASSETS_DIR is None:
                item.add_marker(pytest.mark.skip(reason=ASSETS_ORIGIN))


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = start_control_plane(tmp_path_factory.mktemp("home"))
    yield plane
    plane.stop()
