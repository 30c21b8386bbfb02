"""The README's `mlplacement` commands, run as written, in order, in a scratch copy of the checkout (#30).

Every command a reader can run without a cluster is run; those that need one (kubectl, helm, `--live`, `run`,
`kubectl logs | mlplacement audit`) are left to the integration and chart tests, and named here. A README
command that stops working, or a new one that fails, fails this test."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

NEEDS_A_CLUSTER = ("--live", "mlplacement run")
# Files the README's commands name as the reader's own: stand-ins with the same role.
PLACEHOLDERS = {
    "my-workloads": REPO / "examples",
    "my-fleet.yaml": REPO / "operator" / "mlplacement" / "data" / "sample-fleet.yaml",
    "new-policy.yaml": REPO / "examples" / "policy-default.yaml",
}


def readme_commands() -> list[str]:
    """Shell lines of the README's sh blocks that start with mlplacement, continuation lines joined."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if re.match(r"^(\.venv/bin/)?mlplacement\s", command):
                commands.append(command)
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_walk() -> None:
    assert len(COMMANDS) >= 12, COMMANDS


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of what the README's commands read and write (they sign examples/ in place)."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(REPO / "examples", root / "examples")
    for name, source in PLACEHOLDERS.items():
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    return root


def test_every_readme_command_runs_as_written(checkout: Path) -> None:
    ran = []
    for command in COMMANDS:
        if any(marker in command for marker in NEEDS_A_CLUSTER):
            continue
        runnable = re.sub(r"^(\.venv/bin/)?mlplacement", f'"{sys.executable}" -m mlplacement', command)
        result = subprocess.run(
            ["bash", "-c", runnable], cwd=checkout, capture_output=True, text=True, check=False, timeout=300
        )
        assert result.returncode == 0, f"README: {command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr, command
        ran.append(command)
    assert any(c.split()[1] == "verify" for c in (r.replace(".venv/bin/", "") for r in ran)), ran
    assert len(ran) >= 10, ran
