"""Trusted keys and signals, re-read by name every reload period (no cluster-wide Secret or ConfigMap watch)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from mlplacement.config import OperatorConfig
from mlplacement.controller.ports import Cluster
from mlplacement.controller.state import FleetCache

log = logging.getLogger("mlplacement.keys")


class KeyReloader:
    """Reloads the keyring (a Secret, or a ConfigMap) and the signals ConfigMap; a changed keyring means every
    workload is admitted again, an unchanged one keeps its identity (so verdicts reused against it stay valid)."""

    def __init__(
        self, config: OperatorConfig, cache: FleetCache, cluster: Cluster, readmit: Callable[[], Awaitable[None]]
    ) -> None:
        self.config = config
        self.cache = cache
        self.cluster = cluster
        self.readmit = readmit
        self._loaded: Mapping[str, str] | None = None

    async def reload(self) -> None:
        config = self.config
        if config.trusted_keys_configmap:
            data = await asyncio.to_thread(
                self.cluster.read_configmap_data, config.namespace, config.trusted_keys_configmap
            )
        else:
            data = await asyncio.to_thread(self.cluster.read_secret_data, config.namespace, config.trusted_keys_secret)
        if data != self._loaded:
            self._loaded = data
            keyring = self.cache.on_trusted_keys(data, base64_encoded=not config.trusted_keys_configmap)
            for problem in keyring.problems.values():
                log.warning("trusted key ignored: %s", problem)
            await self.readmit()
        signals = await asyncio.to_thread(self.cluster.read_configmap_data, config.namespace, config.signals_configmap)
        self.cache.on_signals({"data": signals} if signals is not None else None)

    async def run(self) -> None:
        """Reload every reload period until cancelled; a failed reload keeps what was loaded before."""
        while True:
            await asyncio.sleep(self.config.reload_seconds)  # a period, not a wait for a condition
            try:
                await self.reload()
            except Exception:
                log.exception("reloading trusted keys and signals failed")
