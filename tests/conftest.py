import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_cli(*args: str | Path, cwd: Path | None = REPO) -> subprocess.CompletedProcess[str]:
    """The real `mlplacement` entry point in a subprocess (python -m mlplacement)."""
    return subprocess.run(
        [sys.executable, "-m", "mlplacement", *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False
    )
