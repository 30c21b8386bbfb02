"""The CLI for automation: JSON beside every table, no defaults tied to the current directory, refusals shown."""

from __future__ import annotations

import json
from pathlib import Path

from mlplacement.core import keyring as keyring_core
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_demo_from_another_directory_still_shows_the_examples(tmp_path: Path) -> None:
    result = run_cli("demo", "--generated", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("MLWorkload team-") >= 3


def test_crds_check_from_another_directory_checks_the_repository(tmp_path: Path) -> None:
    result = run_cli("crds", "--check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def test_explain_json_is_a_stable_shape(tmp_path: Path) -> None:
    result = run_cli("explain", REPO / "examples" / "workload-spot-batch.yaml", "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (decision,) = report["decisions"]
    assert set(decision) == {
        "workload",
        "placed",
        "reason",
        "target",
        "hourlyCostUSD",
        "message",
        "nodesFreeGPUs",
        "block",
        "candidates",
        "rejections",
        "fitsIf",  # what would make a waiting workload fit now (empty when placed)
    }
    assert decision["fitsIf"] == []
    assert report["refused"] == []


def test_explain_with_keys_says_what_the_operator_would_refuse(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "someone-else.pem").write_bytes(keyring_core.public_pem(keyring_core.generate_key()))
    result = run_cli("explain", REPO / "examples" / "workload-spot-batch.yaml", "--keys", keys, "-o", "json")
    assert result.returncode == 0, result.stderr
    (refused,) = json.loads(result.stdout)["refused"]
    assert refused["reason"] in ("UnknownKey", "SignatureMissing")
    assert json.loads(result.stdout)["decisions"] == []


def test_simulate_json_is_the_report(tmp_path: Path) -> None:
    result = run_cli(
        "simulate",
        "--fleet",
        REPO / "examples" / "scarcity" / "fleet.yaml",
        "--generate",
        "5",
        "-o",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert {s["strategy"] for s in json.loads(result.stdout)["strategies"]} >= {"engine:defaults", "centralize"}


def test_explain_with_keys_judges_the_policy_too(tmp_path: Path) -> None:
    """An unsigned (or tampered) policy: the operator refuses every workload under it, and so does explain."""
    import yaml

    from mlplacement.core.signing import sign
    from tests.builders import make_policy, make_workload, with_annotations

    key = keyring_core.generate_key()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "platform.pem").write_bytes(keyring_core.public_pem(key))
    workload = make_workload()
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(with_annotations(workload, sign(workload, key, "platform"))))
    policy = make_policy("default")
    verdicts = {}
    for name, document in (("unsigned", policy), ("signed", with_annotations(policy, sign(policy, key, "platform")))):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(document))
        result = run_cli(
            "explain", tmp_path / "w.yaml", "--policy", tmp_path / f"{name}.yaml", "--keys", keys, "-o", "json"
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        verdicts[name] = ([r["reason"] for r in report["refused"]], [d["placed"] for d in report["decisions"]])
    assert verdicts == {"unsigned": (["PolicyUnsigned"], []), "signed": ([], [True])}


def test_whatif_over_no_workloads_fails_instead_of_passing_the_gate(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("whatif", "--policy", REPO / "examples" / "policy-default.yaml", "--workloads", tmp_path / "empty")
    assert result.returncode == 1
    assert f"no MLWorkload or MLPipeline in {tmp_path / 'empty'}: nothing to judge" in result.stderr
