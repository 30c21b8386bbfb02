"""`mlplacement run`: the process around kopf. Health, metrics and the webhook are served by every replica;
kopf (every watch, the placement loop, every write) runs only in the replica holding the leader Lease.

A standby keeps no watches and writes nothing but its reads of the Lease, so two replicas can never place
the same workload. On SIGTERM the leader lets the current round finish its writes (bounded), waits for the
writes in flight, then releases the Lease so a standby takes over after one retry period. A leader that
loses the Lease exits at once, before the lease duration after which a standby may take over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import kopf
from aiohttp import web

from mlplacement.adapters.kube import KubeCluster, KubeLeases, load_client
from mlplacement.adapters.live import read_live_with
from mlplacement.adapters.metrics import PrometheusMetrics
from mlplacement.api.constants import LeaderState
from mlplacement.config import OperatorConfig
from mlplacement.controller.keys import KeyReloader
from mlplacement.controller.leader import LeaderElector, candidate_identity
from mlplacement.controller.policy_impact import PolicyImpact
from mlplacement.controller.state import FleetCache
from mlplacement.controller.sync import CacheSync
from mlplacement.controller.webhook_tls import ServingCertificate, WebhookCertificates
from mlplacement.handlers.webhook import WebhookServer

log = logging.getLogger("mlplacement")
# The leader's loop must have finished a round within this many placement intervals (and at least a minute),
# or liveness fails and the kubelet restarts it: a wedged leader must not hold the Lease for ever.
STALE_ROUNDS = 30


async def _nothing() -> None:
    return None


@dataclass
class Shared:
    """What lives for the whole process, whichever role it has; kopf's handlers get it as ``memo.shared``."""

    config: OperatorConfig
    api_client: Any
    metrics: PrometheusMetrics
    cache: FleetCache
    cluster: KubeCluster
    keys: KeyReloader
    executor: ThreadPoolExecutor
    controller: Any = None  # the WorkloadController, once this replica leads
    sync: CacheSync | None = None  # the start-up cache sync, once this replica leads
    serving: ServingCertificate | None = None
    elector: LeaderElector | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def live(self) -> tuple[bool, str]:
        controller = self.controller
        if controller is None or controller.last_round_at is None:
            return True, "ok"
        limit = max(60.0, STALE_ROUNDS * self.config.placement_interval_seconds)
        age = time.monotonic() - controller.last_round_at
        return (age < limit, "ok" if age < limit else f"no placement round for {age:.0f}s")

    def role(self) -> str:
        """Leading (and whether its caches have synced), standing by, or unable to use the Lease: /readyz says."""
        role = self.elector.describe() if self.elector is not None else "leading (no leader election)"
        if self.elector is None or self.elector.state is LeaderState.LEADING:
            if self.sync is None or not self.sync.ready:
                waiting = self.sync.waiting_for() if self.sync is not None else "the operator to start"
                role += f"; nothing decided until caches sync: waiting for {waiting}"
            else:
                role += "; caches synced"
        return role

    def ready(self) -> tuple[bool, str]:
        # Readiness gates the webhook, which every replica serves: a standby (or one that cannot use the Lease)
        # stays ready, and its text says what it is.
        if self.serving is not None and not self.serving.ready:
            return False, f"webhook certificate not loaded yet; {self.role()}"
        return True, f"ok: {self.role()}"


async def _health_server(shared: Shared) -> web.AppRunner:
    async def probe(check: Any) -> web.Response:
        ok, text = check()
        return web.Response(status=200 if ok else 503, text=text)

    app = web.Application()
    app.router.add_get("/healthz", lambda _: probe(shared.live))
    app.router.add_get("/readyz", lambda _: probe(shared.ready))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", shared.config.health_port).start()
    return runner


async def _keep_certificates(certs: WebhookCertificates, elector: LeaderElector | None, config: OperatorConfig) -> None:
    while True:
        try:
            if elector is None or elector.leading():
                await certs.ensure()
            await certs.load()
        except Exception:
            log.exception("keeping the webhook certificate failed; trying again")
        # Quickly while nothing is served yet (a new leader issues within a retry period), then at reload pace.
        await asyncio.sleep(config.reload_seconds if certs.serving.ready else config.retry_period_seconds)


async def _drained(executor: ThreadPoolExecutor, timeout: float) -> bool:
    """Wait until every blocking call in flight has returned (they cannot be cancelled), at most ``timeout``."""
    waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drain")
    try:
        future = asyncio.get_running_loop().run_in_executor(waiter, lambda: executor.shutdown(wait=True))
        await asyncio.wait_for(future, timeout=timeout)
        return True
    except TimeoutError:
        return False
    finally:
        waiter.shutdown(wait=False)


async def run_operator(config: OperatorConfig) -> int:
    """Run until SIGTERM (exit 0) or a lost lease (exit 1)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)  # kopf installs its own while it runs; both mean: stop
    # Blocking clients run in the default executor; its size (cores + 4) would cap the writes below
    # MLPLACEMENT_WRITE_CONCURRENCY on small nodes, with probes and polls queued behind them.
    executor = ThreadPoolExecutor(max_workers=config.write_concurrency + 8, thread_name_prefix="blocking")
    loop.set_default_executor(executor)
    api_client = await asyncio.to_thread(load_client, config.write_concurrency + 8)  # as many as the executor
    metrics = PrometheusMetrics()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    cache = FleetCache(config=config)
    cluster = KubeCluster(api_client)
    shared = Shared(
        config, api_client, metrics, cache, cluster, KeyReloader(config, cache, cluster, _nothing), executor
    )
    servers = [await _health_server(shared)]
    elector = None
    if config.leader_election:
        elector = shared.elector = LeaderElector(
            config, KubeLeases(api_client), candidate_identity(config.pod_name), on_change=metrics.leader_state
        )
        metrics.leader_state(elector.state)
    try:
        await shared.keys.reload()
    except Exception:
        log.exception("first read of the trusted keys failed; the reload loop tries again")
    shared.tasks.append(asyncio.create_task(shared.keys.run()))
    if config.webhook_port:
        shared.serving = ServingCertificate()
        certs = WebhookCertificates(config, cluster, shared.serving)
        operator_user = (
            f"system:serviceaccount:{config.namespace}:{config.service_account}" if config.service_account else ""
        )
        impact = PolicyImpact(
            lambda: read_live_with(api_client, config.namespace, config.signals_configmap),
            pool_label_keys=config.pool_label_keys,
        )
        webhook = WebhookServer(config.webhook_port, shared.serving, lambda: cache.keyring, operator_user, impact)
        await webhook.start()
        shared.tasks.append(asyncio.create_task(_keep_certificates(certs, elector, config)))
    try:
        if elector is not None and not await elector.acquire(stop):
            return 0  # stopped while standing by: nothing was ever written
        if elector is None:
            metrics.leader_state(LeaderState.LEADING)
        return await lead(shared, elector, stop)
    finally:
        for task in shared.tasks:
            task.cancel()
        for runner in servers:
            await runner.cleanup()
        if shared.serving is not None:
            shared.serving.close()


def _kopf(shared: Shared, stop: asyncio.Event) -> Coroutine[Any, Any, None]:
    return kopf.operator(clusterwide=True, standalone=True, memo=kopf.Memo(shared=shared), stop_flag=stop)


def _exit_now(code: int) -> None:
    logging.shutdown()
    os._exit(code)


async def lead(
    shared: Shared,
    elector: LeaderElector | None,
    stop: asyncio.Event,
    operator_factory: Callable[[Shared, asyncio.Event], Coroutine[Any, Any, None]] = _kopf,
    exit_now: Callable[[int], None] = _exit_now,
) -> int:
    """Run the operator while this replica leads. The exit code after a stop; a lost Lease exits at once."""
    config = shared.config
    operator = asyncio.create_task(operator_factory(shared, stop))
    holding = asyncio.create_task(elector.hold()) if elector is not None else asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    if elector is not None and holding in done:
        # Another replica may take over once the lease duration has passed: no write of ours may come after,
        # so no graceful stop either (it would write). Threads and all, the process ends here.
        log.error("leadership lost: exiting so that the kubelet restarts this replica as a standby")
        exit_now(1)
        return 1
    if holding in done:  # no election, and stopped: kopf sees the same flag and winds down
        await asyncio.wait({operator})
    holding.cancel()
    failed = operator.exception() is not None
    if failed:
        log.error("the operator stopped: %r", operator.exception())
    # kopf's cleanup has let the controller's round finish; wait for writes still in threads, then hand over.
    if await _drained(shared.executor, config.shutdown_grace_seconds):
        if elector is not None:
            await elector.release()
    else:
        log.warning("writes still in flight after %.0fs: the lease is left to expire", config.shutdown_grace_seconds)
    return 1 if failed else 0


def main(config: OperatorConfig) -> None:
    code = asyncio.run(run_operator(config))
    logging.shutdown()
    sys.stdout.flush()
    # Threads blocked in a call that will never return (an unreachable server) must not hold the exit.
    os._exit(code)


__all__ = ["Shared", "lead", "main", "run_operator"]
