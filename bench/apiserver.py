"""What each write of a placement costs kube-apiserver (not a test; needs etcd + kube-apiserver, see
tests/controlplane.py):

    .venv/bin/python bench/apiserver.py [--writes 1000] [--repeat 2]

A fresh control plane; `mlplacement run` places a few workloads so that a real status and a real Job are at hand,
then each kind of write is sent ``--writes`` times from 8 threads, each to its own new object:

- the status apply the operator sends (server-side apply, the status it wrote for a placement);
- the same status as a JSON merge patch (what a client without server-side apply would send);
- a two-field status (phase and observedGeneration) as a merge patch: the part the status's size costs;
- the Job the operator created for that placement, created again;
- the signed MLWorkload a user applies.

Printed per write: kube-apiserver's bytes allocated (`go_memstats_alloc_bytes_total` on its /metrics) and the
CPU of kube-apiserver and etcd together. Allocation is what sets how often the apiserver's garbage collector
runs, and with 10,000 workloads cached each of its cycles marks a live heap of about 650 MB and takes both
cores for about a second: this is where the tail of create -> status latency comes from (README, Performance).
"""

from __future__ import annotations

import argparse
import copy
import re
import ssl
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.drain import GROUP, VERSION, api, cpu_seconds, create_workloads, drain, install, operator, signed
from kubernetes import client
from tests.builders import make_workload
from tests.controlplane import ASSETS_DIR, ASSETS_ORIGIN, TOKEN, ControlPlane, free_port, start_control_plane

from mlplacement.adapters.kube import FIELD_MANAGER, KubeCluster, send_unread

THREADS = 8


def allocated_bytes(plane: ControlPlane) -> float:
    request = urllib.request.Request(
        f"https://127.0.0.1:{plane.port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=30) as response:
        text = response.read().decode()
    match = re.search(r"^go_memstats_alloc_bytes_total (\S+)$", text, re.MULTILINE)
    if match is None:
        raise SystemExit("kube-apiserver's /metrics has no go_memstats_alloc_bytes_total")
    return float(match.group(1))


def plane_cpu(plane: ControlPlane) -> float:
    return sum(cpu_seconds(process.pid) for process in plane.processes)


def placed_example(plane: ControlPlane) -> tuple[dict[str, Any], dict[str, Any]]:
    """A status and a Job exactly as `mlplacement run` wrote them for a placement."""
    create_workloads(plane, "seed", 5)
    env = {
        "KUBECONFIG": str(plane.kubeconfig),
        "MLPLACEMENT_HEALTH_PORT": str(free_port()),
        "MLPLACEMENT_METRICS_PORT": "0",
        "MLPLACEMENT_LOG_FORMAT": "plain",
        "MLPLACEMENT_PLACEMENT_INTERVAL_SECONDS": "0.5",
    }
    with operator(plane, [sys.executable, "-m", "mlplacement", "run"], env, "operator") as process:
        drain(plane, process, "seed", 5, 120)
    api_client = api(plane)
    workload = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, "seed", "mlworkloads", "w-00000"
    )
    job = api_client.sanitize_for_serialization(
        client.BatchV1Api(api_client).read_namespaced_job("mlw-w-00000", "seed")
    )
    # As the operator sends it: what the server added on create (uid, selector, its labels) left out.
    meta = job["metadata"]
    job["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    job.pop("status", None)
    job["spec"].pop("selector", None)
    template_labels = job["spec"]["template"]["metadata"].get("labels") or {}
    for label in [k for k in template_labels if "controller-uid" in k or k.endswith("job-name")]:
        del template_labels[label]
    return workload["status"], job


def measure(plane: ControlPlane, writes: int, send: Callable[[int], None]) -> tuple[float, float]:
    """(KiB allocated by kube-apiserver, ms of apiserver + etcd CPU) per call of ``send``."""
    time.sleep(1.0)  # let the creates that set this up leave the apiserver's books (watch fan-out, metrics)
    allocated, cpu = allocated_bytes(plane), plane_cpu(plane)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(send, range(writes)))
    return (allocated_bytes(plane) - allocated) / writes / 1024, (plane_cpu(plane) - cpu) * 1000 / writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=1000, help="of each kind, each to a new object")
    parser.add_argument("--repeat", type=int, default=2, help="rounds over every kind (medians are printed)")
    args = parser.parse_args()
    if ASSETS_DIR is None:
        raise SystemExit(ASSETS_ORIGIN)
    with tempfile.TemporaryDirectory() as tmp:
        plane = start_control_plane(Path(tmp) / "plane")
        try:
            install(plane, 64)
            status, job = placed_example(plane)
            api_client = api(plane)
            cluster = KubeCluster(api_client)
            custom = client.CustomObjectsApi(api_client)

            def status_path(namespace: str, index: int) -> str:
                return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/mlworkloads/w-{index:05d}/status"

            def merge(namespace: str, body: dict[str, Any]) -> Callable[[int], None]:
                return lambda i: send_unread(
                    api_client,
                    status_path(namespace, i),
                    "PATCH",
                    body,
                    "application/merge-patch+json",
                    [("fieldManager", FIELD_MANAGER)],
                )

            def create_job(namespace: str) -> Callable[[int], None]:
                def send(index: int) -> None:
                    body = copy.deepcopy(job)
                    body["metadata"]["name"] = f"mlw-w-{index:05d}"
                    send_unread(api_client, f"/apis/batch/v1/namespaces/{namespace}/jobs", "POST", body)

                return send

            def create_workload(namespace: str) -> Callable[[int], None]:
                bodies = [
                    signed(make_workload(name=f"w-{i:05d}", namespace=namespace, resources={"gpus": 1}))
                    for i in range(args.writes)
                ]
                return lambda i: custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, "mlworkloads", bodies[i]
                )

            kinds: dict[str, Callable[[str], Callable[[int], None]]] = {
                "status, server-side apply (the operator's)": lambda ns: (
                    lambda i: cluster.apply_workload_status(ns, f"w-{i:05d}", status)
                ),
                "status, merge patch": lambda ns: merge(ns, {"status": status}),
                "status of two fields, merge patch": lambda ns: merge(
                    ns, {"status": {"phase": "Placed", "observedGeneration": 1}}
                ),
                "Job create (the operator's)": create_job,
                "MLWorkload create (signed, a user's)": create_workload,
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
            for round_ in range(args.repeat):
                for index, (name, kind) in enumerate(kinds.items()):
                    namespace = f"r{round_}-k{index}"
                    if name.startswith("status"):
                        create_workloads(plane, namespace, args.writes)
                    else:
                        client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
                    results[name].append(measure(plane, args.writes, kind(namespace)))
        finally:
            plane.stop()
    print(f"\nper write, median of {args.repeat} rounds of {args.writes} from {THREADS} threads:")
    print(f"{'':44} {'apiserver allocates':>20} {'apiserver+etcd CPU':>19}")
    for name, samples in results.items():
        allocated = statistics.median(a for a, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(f"{name:44} {allocated:16.0f} KiB {cpu:16.2f} ms")


if __name__ == "__main__":
    main()
