"""keygen -> sign -> verify through the real `mlplacement` entry point, on the files in examples/."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli


def mlplacement(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd)


@pytest.fixture
def signed_examples(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    result = mlplacement("keygen", "--key-id", "platform", "--out", keys)
    assert result.returncode == 0, result.stderr
    work = tmp_path / "examples"
    shutil.copytree(REPO / "examples", work)
    result = mlplacement("sign", *sorted(work.glob("*.yaml")), "--key", keys / "platform.key", "--in-place")
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    assert stat.S_IMODE((tmp_path / "ci.key").stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "ci.pem").read_bytes()
    again = mlplacement("keygen", "--key-id", "ci", "--out", tmp_path)
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr


def test_round_trip_on_the_examples_verifies(signed_examples: Path) -> None:
    result = mlplacement(
        "verify", *sorted((signed_examples / "examples").glob("*.yaml")), "--keys", signed_examples / "keys"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": Verified:") == 4  # three workloads and the policy
    assert "EdgeCluster edge-fra-store-01: skipped" in result.stdout


def test_signing_touches_only_the_annotations(signed_examples: Path) -> None:
    original = (REPO / "examples" / "workload-realtime-inference.yaml").read_text().splitlines()
    signed = (signed_examples / "examples" / "workload-realtime-inference.yaml").read_text().splitlines()
    added = [line for line in signed if line not in original]
    assert [line.split(":")[0].strip() for line in added] == [
        "annotations",
        "mlplacement.io/key-id",
        "mlplacement.io/signature",
    ]
    assert [line for line in original if line not in signed] == []  # comments and order kept


def test_tampered_copy_fails_with_nonzero_exit(signed_examples: Path) -> None:
    path = signed_examples / "examples" / "workload-spot-batch.yaml"
    path.write_text(path.read_text().replace("gpus: 4", "gpus: 8"))
    result = mlplacement("verify", path, "--keys", signed_examples / "keys")
    assert result.returncode != 0
    assert "SignatureInvalid" in result.stdout


def test_multi_document_file_signs_every_signed_kind_and_leaves_others(signed_examples: Path) -> None:
    bundle = signed_examples / "bundle.yaml"
    bundle.write_text(
        "\n---\n".join(
            (REPO / "examples" / name).read_text()
            for name in ("policy-default.yaml", "edgecluster-fra.yaml", "workload-spot-batch.yaml")
        )
    )
    result = mlplacement("sign", bundle, "--key", signed_examples / "keys" / "platform.key", "--expires", "30d")
    assert result.returncode == 0, result.stderr
    documents = result.stdout.split("\n---\n")
    assert len(documents) == 3
    assert "mlplacement.io/signature-expires" in documents[0]
    assert "mlplacement.io/signature" not in documents[1]
    assert "mlplacement.io/signature" in documents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["verify", "missing.yaml", "--keys", "keys"], "cannot read", id="unreadable file"),
        pytest.param(["verify", "notyaml.yaml", "--keys", "keys"], "not valid YAML", id="non-YAML input"),
        pytest.param(
            ["sign", "policy.yaml", "--key", "keys/platform.pem"],
            "not a PEM private key",
            id="public key given as signing key",
        ),
        pytest.param(["sign", "policy.yaml", "--key", "keys/nope.key"], "cannot read", id="missing key file"),
        pytest.param(
            ["sign", "policy.yaml", "--key", "keys/platform.key", "--expires", "soon"], "--expires", id="bad expiry"
        ),
    ],
)
def test_clear_errors(signed_examples: Path, args: list[str], message: str) -> None:
    (signed_examples / "notyaml.yaml").write_text("kind: [unclosed\n  - : :")
    shutil.copy(REPO / "examples" / "policy-default.yaml", signed_examples / "policy.yaml")
    result = mlplacement(*args, cwd=signed_examples)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
