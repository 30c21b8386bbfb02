"""Operator settings from the environment: defaults, parsing, and a clear error for every bad value."""

from __future__ import annotations

import pytest

from mlplacement.config import ConfigError, OperatorConfig


def test_defaults_need_no_environment() -> None:
    config = OperatorConfig.from_env({})
    assert (config.cluster_name, config.edge_cleanup_grace_seconds, config.pool_grace_seconds) == ("home", 600.0, 300.0)


def test_values_are_parsed_by_type() -> None:
    config = OperatorConfig.from_env(
        {
            "MLPLACEMENT_CLUSTER_NAME": "eu-home-1",
            "MLPLACEMENT_EDGE_CLEANUP_GRACE_SECONDS": "30",
            "MLPLACEMENT_POOL_LABEL_KEYS": "a/pool, b/pool",
            "MLPLACEMENT_WRITE_CONCURRENCY": "4",
        }
    )
    assert config.cluster_name == "eu-home-1"
    assert config.edge_cleanup_grace_seconds == 30.0
    assert config.pool_label_keys == ("a/pool", "b/pool")
    assert config.write_concurrency == 4


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param(
            {"MLPLACEMENT_CLUSTER_NAME": "not a label!"}, "MLPLACEMENT_CLUSTER_NAME", id="cluster name not a label"
        ),
        pytest.param(
            {"MLPLACEMENT_EDGE_CLEANUP_GRACE_SECONDS": "-1"},
            "MLPLACEMENT_EDGE_CLEANUP_GRACE_SECONDS must be >= 0",
            id="negative edge cleanup grace",
        ),
        pytest.param({"MLPLACEMENT_WRITE_CONCURRENCY": "many"}, "is not a valid int", id="number that is not one"),
        pytest.param({"MLPLACEMENT_CLUSTERNAME": "x"}, "MLPLACEMENT_CLUSTERNAME", id="misspelt variable"),
    ],
)
def test_bad_settings_are_refused_by_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OperatorConfig.from_env(environ)


def test_every_setting_is_in_the_readme() -> None:
    from dataclasses import fields

    from mlplacement.config import OperatorConfig
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [f.name for f in fields(OperatorConfig) if f"`MLPLACEMENT_{f.name.upper()}`" not in readme]
    assert missing == []
