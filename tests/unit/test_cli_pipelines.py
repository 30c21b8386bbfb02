"""The CLI for pipelines: explain dry-runs the whole DAG, whatif takes pipelines, sign signs them."""

from __future__ import annotations

import json
from pathlib import Path

from ruamel.yaml import YAML

from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import verify
from tests.builders import keyring_of, make_pipeline, make_stage
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pipeline-recsys.yaml"


def test_explain_a_pipeline_places_every_stage_and_prices_the_data_between_them() -> None:
    result = run_cli("explain", EXAMPLE, "-o", "json")
    assert result.returncode == 0, result.stderr
    (estimate,) = json.loads(result.stdout)["pipelines"]
    stages = {s["stage"]: s for s in estimate["stages"]}
    assert list(stages) == ["prepare", "train", "serve"]
    assert stages["prepare"]["target"]["kind"] == "Databricks"  # its template allows nothing else
    assert all(s["placed"] for s in stages.values())
    assert estimate["criticalPath"] == ["prepare", "train", "serve"]
    # Egress is the artifact's size times the signals' price between the two stages' regions (0 within one).
    for move in estimate["dataMoved"]:
        source, destination = stages[move["fromStage"]], stages[move["toStage"]]
        same = source["target"]["region"] == destination["target"]["region"]
        assert (move["egressUSD"] == 0) == same
    features = next(m for m in estimate["dataMoved"] if m["artifact"] == "features")
    assert features["sizeGB"] == 40
    runs = sum(s["runCostUSD"] or 0 for s in stages.values())
    assert estimate["estimatedCostUSD"] == round(runs + sum(m["egressUSD"] for m in estimate["dataMoved"]), 2)


def test_explain_table_names_the_critical_path_and_the_moves() -> None:
    result = run_cli("explain", EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "MLPipeline team-recsys/recsys" in result.stdout
    assert "critical path: prepare -> train -> serve" in result.stdout
    assert "prepare -> train" in result.stdout


def test_explain_refuses_a_cyclic_pipeline_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    cyclic = make_pipeline(make_stage("a", depends_on=["b"]), make_stage("b", depends_on=["a"]))
    YAML().dump(cyclic, path)
    result = run_cli("explain", path)
    assert result.returncode == 1
    assert "InvalidSpec" not in result.stderr  # the CLI says what is wrong, not a reason code
    assert "stages form a cycle" in result.stderr
    assert "stages[0].dependsOn" in result.stderr


def test_whatif_takes_pipelines_stage_by_stage(tmp_path: Path) -> None:
    policy = tmp_path / "eu-only.yaml"
    YAML().dump(
        {
            "apiVersion": "mlplacement.io/v1alpha1",
            "kind": "PlacementPolicy",
            "metadata": {"name": "default"},
            "spec": {"residency": {"allowedRegions": ["eu-west-1", "eu-central-1"]}},
        },
        policy,
    )
    result = run_cli("whatif", "--policy", policy, "--workloads", EXAMPLE, "-o", "json")
    assert result.returncode in (0, 3), result.stderr
    report = json.loads(result.stdout)
    assert report["workloads"] == 3
    assert {c["key"] for c in report["changes"]} <= {f"team-recsys/recsys-{s}" for s in ("prepare", "train", "serve")}


def test_sign_signs_a_pipeline_and_the_operator_verifies_it(tmp_path: Path) -> None:
    key = keyring_core.generate_key("ed25519")
    key_path = tmp_path / "platform.key"
    key_path.write_bytes(keyring_core.private_pem(key))
    result = run_cli("sign", EXAMPLE, "--key", key_path)
    assert result.returncode == 0, result.stderr
    signed = YAML(typ="safe", pure=True).load(result.stdout)
    from datetime import UTC, datetime

    assert verify(signed, keyring_of(("platform", key)), datetime.now(UTC)).ok


def test_explain_with_keys_refuses_an_unsigned_pipeline_as_the_operator_would(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "platform.pem").write_bytes(keyring_core.public_pem(keyring_core.generate_key()))
    result = run_cli("explain", EXAMPLE, "--keys", keys, "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (refused,) = report["refused"]
    assert (refused["kind"], refused["workload"], refused["reason"]) == (
        "MLPipeline",
        "team-recsys/recsys",
        "SignatureMissing",
    )
    assert report["pipelines"] == []
