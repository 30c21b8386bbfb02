"""Trusted keys reloaded by name: a rotation admits every workload again, an unchanged keyring nothing."""

from __future__ import annotations

import asyncio

from mlplacement.config import OperatorConfig
from mlplacement.controller.keys import KeyReloader
from mlplacement.controller.state import FleetCache
from mlplacement.core import keyring as keyring_core
from tests.component.fakes import FakeCluster

NAMESPACE = "mlplacement-system"


def test_reload_readmits_only_when_the_keys_change() -> None:
    config = OperatorConfig()
    cache, cluster = FleetCache(config=config), FakeCluster()
    readmitted: list[int] = []

    async def readmit() -> None:
        readmitted.append(len(cache.keyring.keys))

    first = keyring_core.public_pem(keyring_core.generate_key()).decode()
    cluster.put_secret(NAMESPACE, config.trusted_keys_secret, {"platform.pem": first})
    cluster.configmaps[(NAMESPACE, config.signals_configmap)] = {"signals.yaml": "x"}
    reloader = KeyReloader(config, cache, cluster, readmit)

    async def scenario() -> None:
        await reloader.reload()
        loaded = cache.keyring
        await reloader.reload()  # nothing changed: same keyring object, no pass over the fleet
        assert cache.keyring is loaded
        second = keyring_core.public_pem(keyring_core.generate_key()).decode()
        cluster.put_secret(NAMESPACE, config.trusted_keys_secret, {"platform.pem": first, "next.pem": second})
        await reloader.reload()

    asyncio.run(scenario())
    assert readmitted == [1, 2]
    assert cache.signals_configmap == {"data": {"signals.yaml": "x"}}
