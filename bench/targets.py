"""Many targets on real control planes (not a test; needs etcd + kube-apiserver, see tests/controlplane.py):

    .venv/bin/python bench/targets.py [--edges 200] [--workspaces 20] [--burst 100] [--idle-seconds 30]

A home control plane with GPU pools, ``--edges`` EdgeClusters (all pointing at one edge control plane, each
probed every 10 s) and ``--workspaces`` DatabricksWorkspaces (the Jobs API stand-in, each probed every 10 s).
Printed: the operator's CPU while idle (all edges Ready, nothing pending) in cores, and the placement round
that decides ``--burst`` workloads at once (they wait, refused with PolicyNotFound, until their policy
appears; then one round takes them all): its duration from the operator's own round histogram, with the
decisions over pools and every edge and workspace.

Targets (issue "Scale"): idle CPU under half a core; a round with 100 pending workloads under 200 ms.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.drain import GROUP, VERSION, PlacedWatch, api, cpu_seconds, in_parallel, install, operator, signed
from kubernetes import client
from tests.builders import make_policy, make_workload
from tests.controlplane import ASSETS_DIR, ASSETS_ORIGIN, describe_binaries, free_port, start_control_plane
from tests.integration.test_edges import add_gpu_node
from tests.standins.databricks import JobsStandIn

EDGE_NAMESPACE = "ml-edge"


def add_targets(home: Any, edge: Any, jobs: JobsStandIn, edges: int, workspaces: int) -> None:
    secrets = {
        "edge-kubeconfig": {"kubeconfig": edge.edge_kubeconfig().encode()},
        "dbx-token": {"token": jobs.state.token.encode()},
    }
    for name, data in secrets.items():
        home.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": "mlplacement-system"},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            }
        )
    custom = client.CustomObjectsApi(api(home))

    def add_edge(index: int) -> None:
        spec = {
            "region": "eu-west-1",
            "credentialsSecretRef": {"name": "edge-kubeconfig"},
            "namespace": EDGE_NAMESPACE,
            "capabilities": {"gpuProducts": ["NVIDIA-L4"], "maxModelSizeGB": 2},
            "cost": {"gpuHourUSD": 0.4 + index / 1000},
            "probe": {"intervalSeconds": 10, "timeoutSeconds": 5, "failureGraceSeconds": 30},
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EdgeCluster", "metadata": {"name": f"edge-{index:03d}"}}
        custom.create_cluster_custom_object(GROUP, VERSION, "edgeclusters", {**body, "spec": spec})

    def add_workspace(index: int) -> None:
        spec = {
            "host": jobs.host,
            "region": "eu-west-1",
            "tokenSecretRef": {"name": "dbx-token"},
            "probeIntervalSeconds": 10,
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DatabricksWorkspace",
            "metadata": {"name": f"dbx-{index:02d}"},
        }
        custom.create_cluster_custom_object(GROUP, VERSION, "databricksworkspaces", {**body, "spec": spec})

    in_parallel(add_edge, list(range(edges)))
    in_parallel(add_workspace, list(range(workspaces)))


def ready_edges(home: Any) -> int:
    listing = client.CustomObjectsApi(api(home)).list_cluster_custom_object(GROUP, VERSION, "edgeclusters")
    return sum(
        1
        for item in listing["items"]
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (item.get("status") or {}).get("conditions") or []
        )
    )


def round_histogram(port: int) -> tuple[float, float, float, float]:
    """(seconds summed, rounds, workloads decided, planning seconds summed) from the operator's own metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()

    def value(name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    return (
        value("mlplacement_round_seconds_sum"),
        value("mlplacement_round_seconds_count"),
        value("mlplacement_round_workloads_sum"),
        value("mlplacement_round_planning_seconds_sum"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=200)
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100, help="workloads decided in one round")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="how long idle CPU is measured")
    args = parser.parse_args()
    if ASSETS_DIR is None:
        raise SystemExit(ASSETS_ORIGIN)
    print(f"control planes: {describe_binaries()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, JobsStandIn(tls_dir=Path(tmp)) as jobs:
        home = start_control_plane(Path(tmp) / "home")
        edge = start_control_plane(Path(tmp) / "edge")
        try:
            install(home, args.burst)
            add_gpu_node(edge, "edge-node", 8)
            add_targets(home, edge, jobs, args.edges, args.workspaces)
            metrics_port = free_port()
            env = {
                "KUBECONFIG": str(home.kubeconfig),
                "MLPLACEMENT_HEALTH_PORT": str(free_port()),
                "MLPLACEMENT_METRICS_PORT": str(metrics_port),
                "MLPLACEMENT_LOG_FORMAT": "plain",
                "REQUESTS_CA_BUNDLE": str(jobs.ca_bundle),
            }
            with operator(home, [sys.executable, "-m", "mlplacement", "run"], env, "operator") as process:
                started = time.monotonic()
                while (ready := ready_edges(home)) < args.edges:
                    if process.poll() is not None or time.monotonic() - started > 300:
                        raise SystemExit(f"{ready}/{args.edges} edges Ready; see {home.directory}")
                    time.sleep(1.0)  # polling the edges' status: there is nothing to wait on
                print(f"{args.edges} edges Ready after {time.monotonic() - started:.0f}s", flush=True)
                time.sleep(10)  # a probe period for the first probes' writes to settle
                cpu_before, at = cpu_seconds(process.pid), time.monotonic()
                time.sleep(args.idle_seconds)  # the measurement window itself
                idle_cores = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - at)

                custom = client.CustomObjectsApi(api(home))
                client.CoreV1Api(custom.api_client).create_namespace({"metadata": {"name": "burst"}})
                bodies = [
                    signed(
                        make_workload(
                            name=f"b-{i:03d}", namespace="burst", resources={"gpus": 1}, policyRef={"name": "burst"}
                        )
                    )
                    for i in range(args.burst)
                ]
                placed = PlacedWatch(home, "burst")
                in_parallel(
                    lambda body: custom.create_namespaced_custom_object(GROUP, VERSION, "burst", "mlworkloads", body),
                    bodies,
                )
                time.sleep(3)  # they are refused (no policy "burst" yet) and wait for it
                before = round_histogram(metrics_port)
                burst = make_policy("burst")
                burst["metadata"]["labels"] = {}  # not a second default policy
                custom.create_cluster_custom_object(GROUP, VERSION, "placementpolicies", signed(burst))
                deadline = time.monotonic() + 120
                while len(placed.placed) < args.burst and time.monotonic() < deadline:
                    time.sleep(0.2)  # the watch thread records; nothing to wait on here
                placed.stop()
                after = round_histogram(metrics_port)
        finally:
            home.stop()
            edge.stop()
    seconds, rounds, decided, planning = (a - b for a, b in zip(after, before, strict=True))
    print(
        f"idle with {args.edges} edges and {args.workspaces} workspaces: {idle_cores:.3f} cores "
        f"(target < 0.5)\n{len(placed.placed)}/{args.burst} placed in {rounds:.0f} round(s) deciding {decided:.0f}: "
        f"{planning * 1000 / max(rounds, 1):.0f} ms deciding (snapshot and plan; target < 200 ms), "
        f"{seconds * 1000 / max(rounds, 1):.0f} ms with the children and status writes"
    )


if __name__ == "__main__":
    main()
