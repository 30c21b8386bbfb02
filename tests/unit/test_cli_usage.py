"""The CLI as people and scripts meet it (#30): one line per error, never a traceback, the README's exit codes
(0 done, 1 an error such as a bad file, 2 bad usage, 3 a gate failed), `-f -` and `-o` as kubectl users expect.

Each case runs the real entry point (mlplacement.cli.main) in this process, standard input included."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlplacement.adapters import files
from mlplacement.cli import main
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
POLICY = EXAMPLES / "policy-default.yaml"
WORKLOAD = EXAMPLES / "workload-spot-batch.yaml"


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str | Path, stdin: bytes = b""
) -> Run:
    files._stdin_text.clear()  # standard input is read once per process; each case is its own process
    monkeypatch.setattr(sys, "argv", ["mlplacement", *map(str, args)])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def fleet(pools: list[dict[str, object]]) -> str:
    return json.dumps({"apiVersion": "mlplacement.io/fleet/v1", "kind": "Fleet", "pools": pools})


POOL = {"name": "a", "region": "eu-west-1", "gpuProduct": "NVIDIA-A100", "gpusTotal": 4}


@dataclass
class Case:
    args: list[str]
    code: int
    says: str
    stdin: bytes = b""
    # Files the case needs, written into its temporary directory (name -> text); "{tmp}" in args is that directory.
    files: dict[str, str | bytes] = field(default_factory=dict)
    stream: str = "err"


CASES = {
    "a non-UTF-8 audit file is a bad file, in one line": Case(
        ["audit", "{tmp}/garbage.bin"], 1, "garbage.bin: not a UTF-8 text file", files={"garbage.bin": b"\xff\xfe\0"}
    ),
    "a negative simulated length is bad usage": Case(["simulate", "--generate", "10", "--hours", "-3"], 2, "--hours"),
    "a zero simulated length is bad usage": Case(["simulate", "--generate", "10", "--hours", "0"], 2, "--hours"),
    "a negative number of arrivals is bad usage": Case(["simulate", "--generate", "-5"], 2, "--generate"),
    "a negative --max-moves is bad usage": Case(
        ["whatif", "--policy", str(POLICY), "-f", str(WORKLOAD), "--max-moves", "-1"], 2, "--max-moves"
    ),
    "a key directory that cannot be made, in one line": Case(
        ["keygen", "--key-id", "k", "--out", "/proc/nope"], 1, "/proc/nope: cannot write the key pair"
    ),
    "an expiry past what a date holds is bad usage": Case(
        ["sign", str(WORKLOAD), "--key", "{tmp}/k.key", "--expires", "10000000d"], 2, "--expires"
    ),
    "a key id that is not one blames --key-id, not the manifest": Case(
        ["sign", str(WORKLOAD), "--key", "{tmp}/k.key", "--key-id", "bad id!"], 2, "--key-id"
    ),
    "a fleet with more free GPUs than it has": Case(
        ["explain", str(WORKLOAD), "--fleet", "{tmp}/fleet.yaml"],
        1,
        "gpusFree (9) is more than gpusTotal (4)",
        files={"fleet.yaml": fleet([{**POOL, "gpusFree": 9}])},
    ),
    "a fleet naming one pool twice": Case(
        ["explain", str(WORKLOAD), "--fleet", "{tmp}/fleet.yaml"],
        1,
        "the name 'a' is used twice",
        files={"fleet.yaml": fleet([POOL, POOL])},
    ),
    "invalid YAML is a bad file (exit 1), with its line": Case(
        ["explain", "{tmp}/bad.yaml"], 1, "not valid YAML (line 2", files={"bad.yaml": "a: [\nb: ]: c\n"}
    ),
    "an audit action that does not exist is bad usage": Case(["audit", "--action", "Bogus"], 2, "'Bogus'"),
    "audit records that cannot be read are counted, not dropped in silence": Case(
        ["audit"], 0, "skipped 1 unreadable audit record", stdin=b'{"apiVersion": "mlplacement.io/audit/v1"}\n'
    ),
    "the README's --since without seconds": Case(["audit", "--moves", "--since", "2026-11-22T00:00"], 0, ""),
    "an RFC 3339 --since with a zone": Case(["audit", "--since", "2026-11-22T00:00:00+01:00"], 0, ""),
    "a --since that is no time is bad usage": Case(["audit", "--since", "yesterday"], 2, "is not a time"),
    "whatif with no workloads never judges a default set": Case(["whatif", "--policy", str(POLICY)], 2, "-f FILE"),
    "verify with no keys is bad usage": Case(["verify", str(WORKLOAD)], 2, "--keys DIR or --key"),
    "nothing to verify is an error": Case(
        ["verify", "-f", "-", "--key", "{tmp}/k.pem"], 1, "nothing to verify", stdin=b"kind: ConfigMap\n"
    ),
    "unsigned documents are said to be unsigned": Case(
        ["verify", str(WORKLOAD), "--key", "{tmp}/k.pem"], 1, "1 of 1 document did not verify (1 not signed at all)"
    ),
    "crds --out - prints every CRD": Case(["crds", "--out", "-"], 0, "kind: CustomResourceDefinition", stream="out"),
    "--in-place cannot rewrite standard input": Case(
        ["sign", "-f", "-", "--key", "{tmp}/k.key", "--in-place"], 2, "standard input"
    ),
    "sign --help names every signed kind": Case(["sign", "--help"], 0, "MLPipeline", stream="out"),
    "a trace with a workload the operator would refuse is not replayed without it": Case(
        ["simulate", "--trace", "{tmp}/trace.yaml"],
        1,
        "1 arrival the operator would refuse (InvalidSpec): event 1 (bad): spec.resources.gpus",
        files={
            "trace.yaml": json.dumps(
                {
                    "apiVersion": "mlplacement.io/trace/v1",
                    "kind": "Trace",
                    "events": [
                        {
                            "at": 0,
                            "type": "arrive",
                            "durationMinutes": 10,
                            "workload": {
                                "apiVersion": "mlplacement.io/v1alpha1",
                                "kind": "MLWorkload",
                                "metadata": {"name": "bad", "namespace": "t"},
                                "spec": {"type": "Batch", "image": "x", "resources": {"gpus": -1}},
                            },
                        }
                    ],
                }
            )
        },
    ),
    "a trace replayed without the fleet beside it is warned about": Case(
        ["simulate", "--trace", str(EXAMPLES / "scarcity" / "trace.yaml"), "-o", "json"],
        0,
        "its own fleet is beside it: --fleet",
    ),
    "run --help points to a README section that exists": Case(["run", "--help"], 0, '"Settings"', stream="out"),
    "shell completion": Case(["completion", "bash"], 0, "_MLPLACEMENT_COMPLETE", stream="out"),
}


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    made = run(monkeypatch, capsys, "keygen", "--key-id", "k", "--out", tmp_path)
    assert made.code == 0, made.err
    return tmp_path


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_cli_case(case: Case, keys: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, content in case.files.items():
        target = keys / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = [arg.replace("{tmp}", str(keys)) for arg in case.args]
    result = run(monkeypatch, capsys, *args, stdin=case.stdin)
    said = result.out if case.stream == "out" else result.err
    assert result.code == case.code, result.out + result.err
    assert case.says in said, said
    assert "Traceback" not in result.out + result.err


def test_run_without_any_cluster_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in [v for v in os.environ if v.startswith("MLPLACEMENT_")]:  # CI's own settings are not ours
        monkeypatch.delenv(variable)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = run(monkeypatch, capsys, "run")
    assert result.code == 1
    assert result.err.count("\n") == 1, result.err
    assert "no cluster to talk to" in result.err
    assert str(tmp_path / "none") in result.err


def test_an_unexpected_error_is_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlplacement.cli.placement as placement

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(placement, "load_fleet", broken)
    monkeypatch.delenv("MLPLACEMENT_DEBUG", raising=False)
    result = run(monkeypatch, capsys, "explain", WORKLOAD)
    assert result.code == 1
    assert result.err.strip() == (
        "Error: unexpected RuntimeError: boom (set MLPLACEMENT_DEBUG=1 for the traceback, and please report it)"
    )
    monkeypatch.setenv("MLPLACEMENT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        run(monkeypatch, capsys, "explain", WORKLOAD)


def test_explain_reads_standard_input_and_sums_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(monkeypatch, capsys, "explain", "-f", "-", "--compact", stdin=WORKLOAD.read_bytes())
    assert result.code == 0, result.err
    assert "team-search/embeddings-backfill" in result.out
    assert result.out.rstrip().splitlines()[-1].startswith("1/1 placed, $")


def test_explain_reads_what_kubectl_get_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ruamel.yaml import YAML

    live = YAML(typ="safe").load(WORKLOAD.read_text(encoding="utf-8"))
    live["status"] = {"phase": "Running", "placement": {"kind": "GPUPool", "name": "a100"}}
    listed = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [live, live | {"metadata": {**live["metadata"], "name": "second"}}],
        }
    )
    result = run(monkeypatch, capsys, "explain", "-f", "-", "--compact", stdin=listed.encode())
    assert result.code == 0, result.err
    assert result.out.rstrip().splitlines()[-1].startswith("2/2 placed")


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_verify_reports_each_document_for_scripts(
    output: str, keys: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = run(monkeypatch, capsys, "sign", WORKLOAD, "--key", keys / "k.key")
    assert signed.code == 0, signed.err
    result = run(monkeypatch, capsys, "verify", "-", "--key", keys / "k.pem", "-o", output, stdin=signed.out.encode())
    assert result.code == 0, result.err
    from ruamel.yaml import YAML

    report = YAML(typ="safe").load(result.out)
    assert (report["checked"], report["failed"]) == (1, 0)
    (only,) = report["results"]
    assert (only["kind"], only["name"], only["reason"], only["verified"]) == (
        "MLWorkload",
        "embeddings-backfill",
        "Verified",
        True,
    )


def test_long_reasons_wrap_to_the_terminal_and_wide_keeps_them_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "150")
    narrow = run(monkeypatch, capsys, "explain", *sorted(EXAMPLES.glob("workload-*.yaml")), "--compact")
    wide = run(monkeypatch, capsys, "explain", *sorted(EXAMPLES.glob("workload-*.yaml")), "--compact", "-o", "wide")
    assert narrow.code == wide.code == 0
    table_lines: Callable[[str], list[str]] = lambda text: text.split("\n\n")[0].splitlines()  # noqa: E731
    assert max(map(len, table_lines(narrow.out))) <= 150
    assert max(map(len, table_lines(wide.out))) > 150
    wide_words = " ".join(table_lines(wide.out)[2:]).split()
    narrow_words = set(" ".join(table_lines(narrow.out)[2:]).split())
    assert wide_words
    assert [word for word in wide_words if word not in narrow_words] == [], "wrapping must not drop a word"


def test_crds_out_elsewhere_leaves_the_checkouts_chart_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = REPO / "helm" / "mlplacement" / "templates" / "crds"
    before = {p.name: p.stat().st_mtime_ns for p in chart.iterdir()}
    result = run(monkeypatch, capsys, "crds", "--out", tmp_path / "out")
    assert result.code == 0, result.err
    assert {p.name: p.stat().st_mtime_ns for p in chart.iterdir()} == before
    assert len(list((tmp_path / "out").iterdir())) == len(before)
