"""Operator benchmark on real control planes (not a test; needs etcd + kube-apiserver, see tests/controlplane.py):

    .venv/bin/python bench/drain.py [--workloads 2000] [--large 10000] [--latency 1000 --rate 20] [--burst 100]

Each operator gets a fresh control plane of its own, with a fleet of GPU Nodes holding more free GPUs than
there are workloads, so nothing one run leaves behind (a Terminating namespace, children, Events) can touch
another. Printed, as ratios against the peer measured in the same run where there is one:

1. drain: N pending signed 1-GPU MLWorkloads, placed by a kopf operator whose only handler sets
   status.phase (the peer) and by `mlplacement run`: placements/s, peak RSS, apiserver requests per
   placement, in all and by verb and resource (apiserver_request_total on the apiserver's /metrics, less the
   benchmark's own polling);
2. large: `mlplacement run` draining --large workloads: rate and peak RSS;
3. latency: with those settled, --latency more created open loop at --rate per second; the time from
   each create to `status.placement` being written, seen on a watch: p50, p90, p99;
4. burst: then --burst more created at once (a GitOps sync of a directory), the same times: p50, p90, slowest.

Targets (issue "Scale"): requests per placement <= 3, peak RSS <= 300 MB with 10,000, the rate at the large
size >= 0.9x the rate at 2,000, p99 latency <= 100 ms at 50 creations/s with 10,000 settled
(`--large 10000 --latency 1000 --rate 50`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import itertools
import json
import math
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path; the repository root is what the imports need.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from kubernetes import client, config, watch
from tests.builders import make_policy, make_workload, with_annotations
from tests.controlplane import (
    ASSETS_DIR,
    ASSETS_ORIGIN,
    TOKEN,
    ControlPlane,
    describe_binaries,
    free_port,
    inherited_environment,
    start_control_plane,
)
from tests.integration.test_operator import gpu_status, node

from mlplacement.core import keyring as keyring_core
from mlplacement.core.signing import sign

REPO = Path(__file__).resolve().parent.parent
KEY = keyring_core.generate_key()
GPUS_PER_NODE, POOLS = 64, 20
GROUP, VERSION = "mlplacement.io", "v1alpha1"
PEER = textwrap.dedent(
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


def signed(obj: dict[str, Any]) -> dict[str, Any]:
    return with_annotations(obj, sign(obj, KEY, "bench"))


def api(plane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(plane.kubeconfig))


def in_parallel(function: Any, items: list[Any], threads: int = 16) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(function, items):
            pass


def install(plane: ControlPlane, gpus_needed: int) -> None:
    """CRDs, trusted key, signed default policy, and GPU nodes with 25% more free GPUs than needed."""
    plane.kubectl("apply", "-f", str(REPO / "crds"))
    plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
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
    core = client.CoreV1Api(api(plane))
    status = json.loads(gpu_status(GPUS_PER_NODE))
    count = max(POOLS, math.ceil(gpus_needed * 1.25 / GPUS_PER_NODE))

    def add(index: int) -> None:
        body = node(f"gpu-{index:04d}", f"pool-{index % POOLS}")
        core.create_node(body)
        core.patch_node_status(body["metadata"]["name"], status)

    in_parallel(add, list(range(count)))


def create_pods(plane: ControlPlane, count: int) -> None:
    """``count`` pods of other tenants, bound round-robin to the GPU nodes (no scheduler runs), asking CPU and
    memory but no GPU: what the operator's pod watch and its per-node CPU and memory sums carry at scale."""
    core = client.CoreV1Api(api(plane))
    core.create_namespace({"metadata": {"name": "tenants"}})
    nodes = [n.metadata.name for n in core.list_node().items]

    def add(index: int) -> None:
        container = {"name": "app", "image": "busybox", "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}
        body = {
            "metadata": {"name": f"p-{index:05d}"},
            "spec": {"nodeName": nodes[index % len(nodes)], "containers": [container]},
        }
        core.create_namespaced_pod("tenants", body)

    in_parallel(add, list(range(count)))


def create_workloads(plane: ControlPlane, namespace: str, count: int, prefix: str = "w") -> None:
    custom = client.CustomObjectsApi(api(plane))
    client.CoreV1Api(custom.api_client).create_namespace({"metadata": {"name": namespace}})
    bodies = [
        signed(make_workload(name=f"{prefix}-{i:05d}", namespace=namespace, resources={"gpus": 1}))
        for i in range(count)
    ]
    in_parallel(
        lambda body: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "mlworkloads", body), bodies
    )


def request_counts(plane: ControlPlane) -> Counter[tuple[str, str]]:
    """apiserver_request_total by (verb, resource[/subresource]), summed over codes and scopes."""
    request = urllib.request.Request(
        f"https://127.0.0.1:{plane.port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=30) as response:
        text = response.read().decode()
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in re.findall(r"^apiserver_request_total\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        resource = fields.get("resource", "") + (f"/{fields['subresource']}" if fields.get("subresource") else "")
        counts[(fields.get("verb", ""), resource or "(non-resource)")] += int(float(value))
    return counts


def peak_rss_mb(pid: int) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (children it waited for excluded)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PlacedWatch:
    """Counts the workloads of a namespace seen with status.phase Placed, on one watch: polling with LISTs would
    cost the apiserver more than the operator does at 10,000 objects (each list returns every object)."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api(plane))
        self.namespace = namespace
        self.placed: dict[str, float] = {}  # name -> monotonic time first seen placed
        self.stream = watch.Watch()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when stopped or its control plane goes
            for event in self.stream.stream(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, "mlworkloads"
            ):
                obj = event["object"]
                status = obj.get("status") or {}
                if status.get("phase") == "Placed" or status.get("placement"):
                    self.placed.setdefault(obj["metadata"]["name"], time.monotonic())

    def stop(self) -> None:
        self.stream.stop()


@contextmanager
def operator(
    plane: ControlPlane, command: list[str], env: dict[str, str], name: str
) -> Iterator[subprocess.Popen[bytes]]:
    log = (plane.directory / f"{name}.log").open("wb")
    process = subprocess.Popen(command, env={**inherited_environment(), **env}, stdout=log, stderr=log, cwd=REPO)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def drain(
    plane: ControlPlane, process: subprocess.Popen[bytes], namespace: str, count: int, timeout: float
) -> dict[str, Any]:
    """Wait until ``count`` workloads of ``namespace`` are Placed; rate, peak RSS and requests per placement."""
    before = request_counts(plane)
    cpu_before = cpu_seconds(process.pid), sum(cpu_seconds(p.pid) for p in plane.processes)
    started = time.monotonic()
    placed = PlacedWatch(plane, namespace)
    peak = 0.0
    try:
        while len(placed.placed) < count:
            if process.poll() is not None:
                raise SystemExit(f"the operator exited early; see {plane.directory}")
            if time.monotonic() - started > timeout:
                raise SystemExit(
                    f"only {len(placed.placed)}/{count} placed after {timeout:.0f}s; see {plane.directory}"
                )
            peak = max(peak, peak_rss_mb(process.pid))
            time.sleep(0.2)  # sampling another process's memory: there is nothing to wait on
        elapsed = max(placed.placed.values()) - started
    finally:
        placed.stop()
    cpu = cpu_seconds(process.pid) - cpu_before[0], sum(cpu_seconds(p.pid) for p in plane.processes) - cpu_before[1]
    peak = max(peak, peak_rss_mb(process.pid))
    requests = request_counts(plane) - before
    requests[("WATCH", "mlworkloads")] -= 1  # the benchmark's own watch is not the operator's
    requests += Counter()  # drop what fell to zero
    return {
        "rate": count / elapsed,
        "rss_mb": peak,
        "requests": requests,
        "count": count,
        "seconds": elapsed,
        "cpu_ms": cpu[0] * 1000 / count,
        "plane_cpu_ms": cpu[1] * 1000 / count,
    }


def latency(
    plane: ControlPlane, process: subprocess.Popen[bytes], namespace: str, count: int, rate: float
) -> dict[str, Any]:
    """Create ``count`` workloads open loop at ``rate``/s; per workload, create -> status.placement seen on a watch."""
    api_client = api(plane)
    custom = client.CustomObjectsApi(api_client)
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    audit_from = plane.audit_offset()
    created: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch_placements() -> None:
        stream = watch.Watch()
        with contextlib.suppress(Exception):  # the stream ends when stopped or its control plane goes
            for event in stream.stream(
                custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "mlworkloads", timeout_seconds=600
            ):
                obj = event["object"]
                if (obj.get("status") or {}).get("placement"):
                    seen.setdefault(obj["metadata"]["name"], time.monotonic())
                if stop.is_set():
                    stream.stop()

    watcher = threading.Thread(target=watch_placements, daemon=True)
    watcher.start()
    time.sleep(1.0)  # let the watch open before the first create
    bodies = [
        signed(make_workload(name=f"l-{i:05d}", namespace=namespace, resources={"gpus": 1})) for i in range(count)
    ]
    peak = 0.0
    # The load generator's own stalls would bunch creations into bursts: its GC pauses and how far behind its
    # schedule it fell are printed with the result.
    pauses: list[float] = []
    began: list[float] = []

    def collecting(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began.append(time.perf_counter())
        elif began:
            pauses.append((time.perf_counter() - began.pop()) * 1000)

    gc.callbacks.append(collecting)
    behind = 0.0
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        for index, body in enumerate(bodies):
            due = start + index / rate
            time.sleep(max(0.0, due - time.monotonic()))  # open loop: a fixed schedule, whatever the operator does
            behind = max(behind, time.monotonic() - due)
            created[body["metadata"]["name"]] = time.monotonic()  # sent now: the create's own time counts too
            pool.submit(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "mlworkloads", body)
            if index % 20 == 0:
                peak = max(peak, peak_rss_mb(process.pid))
    deadline = time.monotonic() + 120
    while len(seen) < count and time.monotonic() < deadline:
        peak = max(peak, peak_rss_mb(process.pid))
        time.sleep(0.5)  # the watch thread records; nothing to wait on here
    stop.set()
    gc.callbacks.remove(collecting)
    delays = sorted((seen[name] - created[name]) * 1000 for name in seen if name in created)
    if not delays:
        raise SystemExit("no placement was seen on the watch")
    quantile = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]  # noqa: E731
    return {
        "count": len(delays),
        "missing": count - len(delays),
        "p50": statistics.median(delays),
        "p90": quantile(0.90),
        "p99": quantile(0.99),
        "slowest": delays[-1],
        "rss_mb": peak,
        "segments": segments(plane, namespace, audit_from),
        "gc_pause_ms": max(pauses, default=0.0),
        "behind_ms": behind * 1000,
    }


SEGMENTS = ("create", "to the Job", "Job", "to the status", "status")


def segments(plane: ControlPlane, namespace: str, since: int) -> dict[str, tuple[float, float]]:
    """Where each workload's time went, from the apiserver's audit log (from byte ``since``): its create,
    until the operator's Job create arrived, the Job create, until its status write arrived, the status write.
    Per segment, (p50, p99) in ms over the workloads whose three writes are all in the log."""
    writes: dict[tuple[str, str], tuple[float, float]] = {}
    with (plane.directory / "audit.log").open("rb") as log:
        log.seek(since)
        for line in log:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if event.get("stage") != "ResponseComplete" or ref.get("namespace") != namespace:
                continue
            kind = {("create", "jobs"): "job", ("create", "mlworkloads"): "create"}.get(
                (event["verb"], ref.get("resource"))
            )
            if event["verb"] == "patch" and ref.get("subresource") == "status":
                kind = "status"
            if kind is not None:
                received, done = (
                    datetime.fromisoformat(event[k].replace("Z", "+00:00")).timestamp()
                    for k in ("requestReceivedTimestamp", "stageTimestamp")
                )
                writes[(kind, str(ref.get("name") or "").removeprefix("mlw-"))] = (received, done)
    spans: dict[str, list[float]] = {segment: [] for segment in SEGMENTS}
    for (kind, name), created in writes.items():
        job, status = writes.get(("job", name)), writes.get(("status", name))
        if kind != "create" or job is None or status is None:
            continue
        marks = (created[0], created[1], job[0], job[1], status[0], status[1])
        for segment, (start, end) in zip(SEGMENTS, itertools.pairwise(marks), strict=True):
            spans[segment].append((end - start) * 1000)
    return {
        segment: (statistics.median(values), sorted(values)[int(0.99 * (len(values) - 1))])
        for segment, values in spans.items()
        if values
    }


RESTART_TIMEOUT = 300.0  # seconds a new leader may take to place its first workload before the phase gives up
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
# What a write for a workload touches (a policy's own status and the Lease are not about any one workload).
WORKLOAD_WRITES = frozenset({"mlworkloads", "mlworkloads/status", "jobs", "deployments", "services", "events"})


def restart(
    plane: ControlPlane, process: subprocess.Popen[bytes], command: list[str], env: dict[str, str], settled: int
) -> dict[str, Any]:
    """SIGTERM the leader (it hands the Lease over), start a new one with ``settled`` workloads in place and one
    new workload created at once: how long until that one is placed, and what the new leader wrote meanwhile
    and for five seconds after (for the settled ones: nothing)."""
    coordination = client.CoordinationV1Api(api(plane))
    lease_namespace = env.get("MLPLACEMENT_NAMESPACE", "mlplacement-system")
    lease_name = env.get("MLPLACEMENT_LEASE_NAME", "mlplacement-leader")

    def acquired() -> Any:
        try:
            return coordination.read_namespaced_lease(lease_name, lease_namespace).spec.acquire_time
        except client.ApiException:
            return None

    before_lease = acquired()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    namespace = "bench-restart"
    client.CoreV1Api(api(plane)).create_namespace({"metadata": {"name": namespace}})
    placed = PlacedWatch(plane, namespace)
    before = request_counts(plane)
    started = time.monotonic()
    new_env = {**env, "MLPLACEMENT_HEALTH_PORT": str(free_port())}
    try:
        with operator(plane, command, new_env, "operator-restarted") as new:
            body = signed(make_workload(name="after-restart", namespace=namespace, resources={"gpus": 1}))
            client.CustomObjectsApi(api(plane)).create_namespaced_custom_object(
                GROUP, VERSION, namespace, "mlworkloads", body
            )
            leader_at: float | None = None
            while "after-restart" not in placed.placed:
                if leader_at is None and acquired() not in (None, before_lease):
                    leader_at = time.monotonic()  # the new process took the Lease (polled every 0.2 s)
                if new.poll() is not None or time.monotonic() - started > RESTART_TIMEOUT:
                    return {
                        "seconds": float("inf"),
                        "after_lease": float("inf"),
                        "writes": Counter(),
                        "settled_writes": -1,
                        "settled": settled,
                        "rss_mb": peak_rss_mb(new.pid),
                    }
                time.sleep(0.2)  # the watch thread records; nothing to wait on here
            seconds = placed.placed["after-restart"] - started
            if leader_at is None and acquired() not in (None, before_lease):
                leader_at = placed.placed["after-restart"]
            after_lease = placed.placed["after-restart"] - (leader_at if leader_at is not None else started)
            time.sleep(5)  # an observation window: writes for settled workloads would come now
            peak = peak_rss_mb(new.pid)
    finally:
        placed.stop()
    requests = request_counts(plane) - before
    writes = Counter({key: n for key, n in requests.items() if key[0] in WRITE_VERBS and key[1] != "leases"})
    writes[("POST", "mlworkloads")] -= 1  # the benchmark's own create
    writes += Counter()
    # The new workload's own: its Job, its status, at most one Event.
    own = min(writes[("POST", "jobs")], 1) + min(writes[("APPLY", "mlworkloads/status")], 1)
    own += min(writes[("POST", "events")], 1)
    about_workloads = sum(n for (_, resource), n in writes.items() if resource in WORKLOAD_WRITES)
    return {
        "seconds": seconds,
        "after_lease": after_lease,
        "writes": writes,
        "settled_writes": about_workloads - own,
        "settled": settled,
        "rss_mb": peak,
    }


def spent(segments: dict[str, tuple[float, float]]) -> str:
    return ", ".join(f"{name} {p50:.0f} / {p99:.0f}" for name, (p50, p99) in segments.items())


def by_verb(requests: Counter[tuple[str, str]], placements: int, top: int = 8) -> str:
    rows = [
        f"      {verb.upper():6} {resource:34} {n / placements:8.2f}"
        for (verb, resource), n in requests.most_common(top)
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=2000, help="drained by the peer and by mlplacement")
    parser.add_argument("--large", type=int, default=10000, help="drained by mlplacement alone (0: skip)")
    parser.add_argument("--latency", type=int, default=1000, help="created open loop once the large drain settled")
    parser.add_argument("--rate", type=float, default=20.0, help="creations per second in the latency phase")
    parser.add_argument("--burst", type=int, default=0, help="then this many created at once (after --latency)")
    parser.add_argument("--pods", type=int, default=0, help="pods of other tenants on the nodes of the large run")
    parser.add_argument(
        "--env", action="append", default=[], metavar="MLPLACEMENT_X=V", help="a setting for mlplacement (repeatable)"
    )
    parser.add_argument("--restart", action="store_true", help="then restart the operator: writes and first placement")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds one drain may take")
    args = parser.parse_args()
    if ASSETS_DIR is None:
        raise SystemExit(ASSETS_ORIGIN)
    print(f"control planes: {describe_binaries()}", flush=True)
    mlplacement_env = {
        "MLPLACEMENT_METRICS_PORT": "0",
        "MLPLACEMENT_LOG_FORMAT": "plain",
        "MLPLACEMENT_PLACEMENT_INTERVAL_SECONDS": "0.5",
        **dict(setting.partition("=")[::2] for setting in args.env),
    }
    ours_command = [sys.executable, "-m", "mlplacement", "run"]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        peer_file = Path(tmp) / "peer.py"
        peer_file.write_text(PEER)
        runs = [
            (
                "kopf one-handler peer",
                [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", str(peer_file)],
                args.workloads,
            ),
            ("mlplacement", ours_command, args.workloads),
        ]
        if args.large:
            runs.append((f"mlplacement, {args.large}", ours_command, args.large))
        for index, (name, command, count) in enumerate(runs):
            plane = start_control_plane(Path(tmp) / f"plane-{index}")
            try:
                last = index == len(runs) - 1
                install(plane, count + (args.latency + args.burst if last else 0))
                if last and args.pods:
                    create_pods(plane, args.pods)
                create_workloads(plane, "bench", count)
                env = {"KUBECONFIG": str(plane.kubeconfig), "MLPLACEMENT_HEALTH_PORT": str(free_port())}
                if command is ours_command:
                    env.update(mlplacement_env)
                with operator(plane, command, env, f"operator-{index}") as process:
                    results[name] = drain(plane, process, "bench", count, args.timeout)
                    done = results[name]
                    print(
                        f"{name}: {count} placed in {done['seconds']:.1f}s ({done['rate']:.1f}/s), "
                        f"peak RSS {done['rss_mb']:.1f} MB",
                        flush=True,
                    )
                    if last and command is ours_command and args.latency:
                        results["latency"] = latency(plane, process, "bench-latency", args.latency, args.rate)
                    if last and command is ours_command and args.burst:
                        results["burst"] = latency(plane, process, "bench-burst", args.burst, math.inf)
                    if last and command is ours_command and args.restart:
                        results["restart"] = restart(plane, process, command, env, count + args.latency + args.burst)
            finally:
                plane.stop()
    peer, ours = results["kopf one-handler peer"], results["mlplacement"]
    print(
        f"\n{'':34}{'placements/s':>14}{'peak RSS MB':>14}{'API req/placement':>20}"
        f"{'CPU ms/placement':>18}{'apiserver+etcd':>16}"
    )
    for name, result in results.items():
        if name in ("latency", "burst", "restart"):
            continue
        total = sum(result["requests"].values()) / result["count"]
        print(
            f"{name:34}{result['rate']:>14.1f}{result['rss_mb']:>14.1f}{total:>20.2f}"
            f"{result['cpu_ms']:>18.2f}{result['plane_cpu_ms']:>16.2f}"
        )
        print(by_verb(result["requests"], result["count"]))
    print(
        f"\nrate ratio mlplacement/peer: {ours['rate'] / peer['rate']:.2f} (target >= 1.0); "
        f"memory ratio: {ours['rss_mb'] / peer['rss_mb']:.2f} (target <= 0.33); "
        f"requests per placement: {sum(ours['requests'].values()) / ours['count']:.2f} (target <= 3)"
    )
    if args.large:
        large = results[f"mlplacement, {args.large}"]
        print(
            f"peak RSS with {args.large} MLWorkloads: {large['rss_mb']:.1f} MB (target <= "
            f"{300 if args.large <= 10000 else 1024}); rate at {args.large} "
            f"/ rate at {args.workloads}: {large['rate'] / ours['rate']:.2f} (target >= 0.9)"
        )
    if "latency" in results:
        lat = results["latency"]
        print(
            f"decision latency over {lat['count']} created at {args.rate:g}/s with {args.large or args.workloads} "
            f"settled: p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms, p99 {lat['p99']:.0f} ms (target p99 <= 100); "
            f"{lat['missing']} never seen placed; peak RSS {lat['rss_mb']:.1f} MB; the benchmark's own longest GC "
            f"pause {lat['gc_pause_ms']:.0f} ms, at most {lat['behind_ms']:.0f} ms behind its schedule"
        )
        print(f"  where the time went (the apiserver's audit log), p50 / p99 ms: {spent(lat['segments'])}")
    if "burst" in results:
        burst = results["burst"]
        print(
            f"a burst of {args.burst} created at once (from 8 threads) with {args.large or args.workloads} settled: "
            f"create -> status p50 {burst['p50']:.0f} ms, p90 {burst['p90']:.0f} ms, slowest "
            f"{burst['slowest']:.0f} ms; {burst['missing']} never seen placed"
        )
        print(f"  where the time went (the apiserver's audit log), p50 / p99 ms: {spent(burst['segments'])}")
    if "restart" in results:
        again = results["restart"]
        print(
            f"restart with {again['settled']} settled: a new workload placed {again['seconds']:.1f}s after the new "
            f"leader's process started, {again['after_lease']:.1f}s after it took the Lease (target: within 10 s of "
            f"taking the Lease); writes for the settled ones: "
            f"{again['settled_writes']} (target 0); the new leader's peak RSS {again['rss_mb']:.1f} MB; every write: "
            f"{dict(again['writes'])}"
        )


if __name__ == "__main__":
    main()
