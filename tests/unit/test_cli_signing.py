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
    assert result.stdout.count(": Verified:") == 6  # four workloads, the pipeline and the policy
    assert "EdgeCluster edge-fra-store-01: skipped" in result.stdout


def test_several_files_signed_to_stdout_stay_separate_documents(tmp_path: Path) -> None:
    """`mlplacement sign a.yaml b.yaml | kubectl apply -f -`: each file's documents stay documents of their own
    (without a separator kubectl would read one merged object, the last file's keys winning)."""
    import yaml

    keys = tmp_path / "keys"
    assert mlplacement("keygen", "--key-id", "platform", "--out", keys).returncode == 0
    names = ("workload-daily-training.yaml", "workload-realtime-inference.yaml", "workload-spot-batch.yaml")
    result = mlplacement("sign", *(REPO / "examples" / n for n in names), "--key", keys / "platform.key")
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["metadata"]["name"] for d in documents] == ["recsys-nightly", "fraud-scorer", "embeddings-backfill"]
    stream = tmp_path / "stream.yaml"
    stream.write_text(result.stdout)
    verified = mlplacement("verify", stream, "--keys", keys)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count(": Verified:") == 3


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


VALID = """apiVersion: mlplacement.io/v1alpha1
kind: MLWorkload
metadata:
  name: scorer
  namespace: team-a
spec:
  type: Batch
  image: registry.example.com/team-a/job:1
  resources: {gpus: 1}
"""
# The valid workload with one env value written as given (a YAML scalar to judge).
WORKLOAD_WITH = VALID.replace("{", "{{").replace("}", "}}") + "  env:\n  - name: FLAG\n    value: {value}\n"


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        pytest.param("on", "'on' reads as a boolean under YAML 1.1", id="on"),
        pytest.param("yes", "'yes' reads as a boolean under YAML 1.1", id="yes"),
        pytest.param("0755", "0755 reads as octal under YAML 1.1", id="a leading zero"),
        pytest.param("0o17", "reads as a string under YAML 1.1", id="0o-octal"),
        pytest.param("1.0e16", "arrives as an integer beyond 2^53", id="a whole float past 2^53"),
        pytest.param("2026-11-23T06:00:00.000Z", "unquoted timestamp", id="a timestamp kubectl may rewrite"),
    ],
)
def test_scalars_the_cluster_reads_otherwise_are_refused_with_their_path(
    tmp_path: Path, value: str, complaint: str
) -> None:
    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    manifest = tmp_path / "w.yaml"
    manifest.write_text(WORKLOAD_WITH.format(value=value))
    result = mlplacement("sign", manifest, "--key", tmp_path / "ci.key")
    assert result.returncode != 0
    assert "spec.env[0].value" in result.stderr
    assert complaint in result.stderr


@pytest.mark.parametrize("value", ['"on"', "'0755'", '"1e16"', '"2026-11-23T06:00:00Z"'])
def test_the_same_scalars_quoted_sign(tmp_path: Path, value: str) -> None:
    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    manifest = tmp_path / "w.yaml"
    manifest.write_text(WORKLOAD_WITH.format(value=value))
    assert mlplacement("sign", manifest, "--key", tmp_path / "ci.key").returncode == 0


def test_signing_never_writes_through_a_yaml_alias_into_spec(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    manifest = tmp_path / "w.yaml"
    manifest.write_text(  # the anchor comes first: spec's cost tags double as the annotations
        "apiVersion: mlplacement.io/v1alpha1\n"
        "kind: MLWorkload\n"
        "spec:\n"
        "  type: Batch\n"
        "  image: registry.example.com/team-a/job:1\n"
        "  resources: {gpus: 1}\n"
        "  costTags: &tags {team: a}\n"
        "metadata:\n"
        "  name: scorer\n"
        "  namespace: team-a\n"
        "  annotations: *tags\n"
    )
    result = mlplacement("sign", manifest, "--key", tmp_path / "ci.key", "--in-place")
    assert result.returncode == 0, result.stderr
    signed = YAML(typ="safe", pure=True).load(manifest.read_text())
    assert signed["spec"]["costTags"] == {"team": "a"}
    assert "mlplacement.io/signature" in signed["metadata"]["annotations"]
    verified = mlplacement("verify", manifest, "--keys", tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


REFUSED = [
    pytest.param(VALID.replace("gpus: 1", "gpus: -1"), "spec.resources.gpus", id="a negative GPU count"),
    pytest.param(VALID.replace("  image: registry.example.com/team-a/job:1\n", ""), "spec.image", id="no image"),
    pytest.param(VALID.split("spec:")[0], "spec: Field required", id="no spec at all"),
    pytest.param(VALID + "  latencyTargteMs: 20\n", "spec.latencyTargteMs", id="a misspelt field"),
    pytest.param(VALID.replace("v1alpha1", "v1"), "apiVersion", id="an apiVersion the operator does not serve"),
]


@pytest.mark.parametrize(("manifest", "field"), REFUSED)
def test_sign_refuses_what_the_operator_would_refuse_and_writes_nothing(
    tmp_path: Path, manifest: str, field: str
) -> None:
    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    good, bad = tmp_path / "a.yaml", tmp_path / "b.yaml"
    good.write_text(VALID)
    bad.write_text(manifest)
    result = mlplacement("sign", good, bad, "--key", tmp_path / "ci.key", "--in-place")
    assert result.returncode == 1
    assert f"{bad}: InvalidSpec: MLWorkload team-a/scorer: " in result.stderr
    assert field in result.stderr
    assert good.read_text() == VALID  # all or nothing: the valid file was not rewritten either


@pytest.mark.parametrize(("manifest", "field"), REFUSED)
def test_verify_fails_a_valid_signature_over_what_the_operator_would_refuse(
    tmp_path: Path, manifest: str, field: str
) -> None:
    from ruamel.yaml import YAML

    from mlplacement.core import keyring as keyring_core
    from mlplacement.core.signing import sign

    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    key = keyring_core.load_private_key((tmp_path / "ci.key").read_bytes(), "ci.key")
    document = YAML(typ="safe").load(manifest)
    document["metadata"]["annotations"] = sign(document, key, "ci")  # signed by other means than `sign`
    path = tmp_path / "signed.yaml"
    YAML().dump(document, path)
    result = mlplacement("verify", path, "--keys", tmp_path)
    assert result.returncode == 1
    assert "InvalidSpec: MLWorkload team-a/scorer: " in result.stdout
    assert field in result.stdout


@pytest.mark.parametrize("command", ["sign", "verify"])
@pytest.mark.parametrize(
    "content",
    [pytest.param("", id="an empty file"), pytest.param("apiVersion: v1\nkind: ConfigMap\n", id="no signed kind")],
)
def test_nothing_to_sign_or_verify_is_an_error_not_a_pass(tmp_path: Path, command: str, content: str) -> None:
    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    path = tmp_path / "x.yaml"
    path.write_text(content)
    options = ("--key", tmp_path / "ci.key") if command == "sign" else ("--keys", tmp_path)
    result = mlplacement(command, path, *options)
    assert result.returncode == 1
    assert f"nothing to {command}: no MLPipeline, MLWorkload, PlacementPolicy in {path}" in result.stderr


@pytest.mark.parametrize(
    ("expires", "complaint"),
    [
        pytest.param("2020-01-01T00:00:00Z", "is not in the future", id="a time in the past"),
        pytest.param("0d", "is not in the future", id="a zero duration"),
        pytest.param("10000000d", "before the year 10000", id="a duration past what a date can hold"),
    ],
)
def test_a_signature_that_could_never_verify_is_not_written(tmp_path: Path, expires: str, complaint: str) -> None:
    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    manifest = tmp_path / "w.yaml"
    manifest.write_text(VALID)
    result = mlplacement("sign", manifest, "--key", tmp_path / "ci.key", "--expires", expires)
    assert result.returncode == 2  # bad usage
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_keygen_never_replaces_a_trusted_public_key(tmp_path: Path) -> None:
    assert mlplacement("keygen", "--key-id", "ci", "--out", tmp_path).returncode == 0
    trusted = (tmp_path / "ci.pem").read_bytes()
    (tmp_path / "ci.key").unlink()  # the private half kept elsewhere, the public one trusted here
    result = mlplacement("keygen", "--key-id", "ci", "--out", tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'ci.pem'} exists; refusing to overwrite a key" in result.stderr
    assert (tmp_path / "ci.pem").read_bytes() == trusted
    assert not (tmp_path / "ci.key").exists()


def test_keygen_into_a_place_it_cannot_write_says_so_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = mlplacement("keygen", "--key-id", "ci", "--out", blocker / "keys")
    assert result.returncode == 1
    assert "cannot write the key pair" in result.stderr
    assert "Traceback" not in result.stderr
