"""Operator benchmark (not a test; needs etcd + kube-apiserver from KUBEBUILDER_ASSETS):

    KUBEBUILDER_ASSETS=/path/to/assets .venv/bin/python bench/drain.py [--workloads 3000] [--large 10000]

On one real control plane, drain N pending signed MLWorkloads over a fleet of GPU Node objects and report:
placements/s and peak RSS of `mlplacement run`, against a kopf operator whose only handler sets one status
field (measured in the same run, same control plane, same number of objects); apiserver requests per
placement; and mlplacement's peak RSS with the --large count. Targets (issue #5): at least the baseline's
rate at no more than a third of its memory.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.builders import make_policy, make_workload, with_annotations
from tests.controlplane import TOKEN, ControlPlane, free_port, start_control_plane
from tests.integration.test_operator import gpu_status, node

from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign

REPO = Path(__file__).resolve().parent.parent
KEY = keyring_core.generate_key()
NODES, GPUS_PER_NODE = 200, 8
BASELINE = textwrap.dedent(
    """
    import kopf

    @kopf.on.startup()
    def configure(settings, **_):
        settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
        settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.last")

    @kopf.on.create("mlplacement.io", "v1alpha1", "mlworkloads")
    def seen(patch, **_):
        patch.status["phase"] = "Placed"
    """
)


def signed(obj: dict) -> dict:
    return with_annotations(obj, sign(obj, KEY, "bench"))


def apply_many(plane: ControlPlane, objects: list[dict], chunk: int = 500) -> None:
    for start in range(0, len(objects), chunk):
        items = {"apiVersion": "v1", "kind": "List", "items": objects[start : start + chunk]}
        plane.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(items))


def fleet(plane: ControlPlane) -> None:
    plane.kubectl("apply", "-f", str(REPO / "crds"))
    plane.kubectl("create", "namespace", "mlplacement-system", check=False)
    pem = base64.b64encode(keyring_core.public_pem(KEY)).decode()
    plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "mlplacement-trusted-keys", "namespace": "mlplacement-system"},
            "data": {"bench.pem": pem},
        }
    )
    plane.apply(signed(make_policy("default")))
    status = gpu_status(GPUS_PER_NODE)
    nodes = [node(f"gpu-{i}", f"pool-{i % 20}") for i in range(NODES)]
    apply_many(plane, nodes)
    for each in nodes:
        plane.kubectl("patch", "node", each["metadata"]["name"], "--subresource=status", "--type=merge", "-p", status)


def workloads(plane: ControlPlane, namespace: str, count: int) -> None:
    plane.kubectl("create", "namespace", namespace, check=False)
    objects = []
    for i in range(count):
        obj = make_workload(name=f"w-{i:05d}", namespace=namespace, resources={"gpus": 1})
        objects.append(signed(obj))
    apply_many(plane, objects)


def placed(plane: ControlPlane, namespace: str) -> int:
    listing = plane.get("mlworkloads", "-n", namespace) or {}
    return sum(1 for item in listing.get("items", []) if (item.get("status") or {}).get("phase") == "Placed")


def peak_rss_mb(pid: int) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def apiserver_requests(plane: ControlPlane) -> float:
    request = urllib.request.Request(
        f"https://127.0.0.1:{plane.port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=10) as response:
        text = response.read().decode()
    return sum(float(m) for m in re.findall(r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def drain(plane: ControlPlane, command: list[str], namespace: str, count: int, env: dict[str, str]) -> dict:
    """Start an operator, wait until `count` workloads are Placed, report rate, peak RSS and API requests."""
    log = (plane.directory / f"{namespace}.log").open("wb")
    before = apiserver_requests(plane)
    started = time.monotonic()
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log, cwd=REPO)
    peak, done = 0.0, 0
    try:
        while done < count:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited early; see {log.name}")
            peak = max(peak, peak_rss_mb(process.pid))
            done = placed(plane, namespace)
            time.sleep(1.0)  # sampling an external process: there is nothing to wait on
        elapsed = time.monotonic() - started
        peak = max(peak, peak_rss_mb(process.pid))
    finally:
        process.kill()
        process.wait()
    requests = apiserver_requests(plane) - before
    return {"rate": count / elapsed, "rss_mb": peak, "requests_per_placement": requests / count, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=3000)
    parser.add_argument("--large", type=int, default=10000)
    args = parser.parse_args()
    if not os.environ.get("KUBEBUILDER_ASSETS"):
        raise SystemExit("KUBEBUILDER_ASSETS is not set: this benchmark needs etcd and kube-apiserver")
    with tempfile.TemporaryDirectory() as tmp:
        plane = start_control_plane(Path(tmp) / "plane")
        try:
            fleet(plane)
            env = {"KUBECONFIG": str(plane.kubeconfig)}
            operator_env = {
                **env,
                "MLPLACEMENT_METRICS_PORT": "0",
                "MLPLACEMENT_HEALTH_PORT": str(free_port()),
                "MLPLACEMENT_LOG_FORMAT": "plain",
                "MLPLACEMENT_PLACEMENT_INTERVAL_SECONDS": "0.5",
            }
            run_ours: Callable[[str, int], dict] = lambda ns, n: drain(  # noqa: E731
                plane, [sys.executable, "-m", "mlplacement", "run"], ns, n, operator_env
            )
            baseline_file = Path(tmp) / "baseline.py"
            baseline_file.write_text(BASELINE)
            workloads(plane, "bench-baseline", args.workloads)
            baseline = drain(
                plane,
                [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(baseline_file)],
                "bench-baseline",
                args.workloads,
                env,
            )
            plane.kubectl("delete", "namespace", "bench-baseline", "--wait=false")
            workloads(plane, "bench-ours", args.workloads)
            ours = run_ours("bench-ours", args.workloads)
            print(f"{'':28}{'placements/s':>14}{'peak RSS MB':>14}{'API req/placement':>20}")
            for name, result in (("kopf one-field baseline", baseline), ("mlplacement", ours)):
                print(
                    f"{name:28}{result['rate']:>14.1f}{result['rss_mb']:>14.1f}"
                    f"{result['requests_per_placement']:>20.2f}"
                )
            print(
                f"rate ratio (mlplacement / baseline): {ours['rate'] / baseline['rate']:.2f} (target >= 1); "
                f"memory ratio: {ours['rss_mb'] / baseline['rss_mb']:.2f} (target <= 0.33)"
            )
            if args.large:
                workloads(plane, "bench-large", args.large)
                large = run_ours("bench-large", args.large)
                print(f"mlplacement with {args.large + args.workloads} workloads: peak RSS {large['rss_mb']:.1f} MB")
        finally:
            plane.stop()


if __name__ == "__main__":
    main()
