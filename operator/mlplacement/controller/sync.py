"""Decide only on synced caches.

After a start (or a takeover) every watch lists what exists, each at its own pace. A decision taken before
the policy watch has listed refuses every workload with PolicyNotFound; one taken before the child watch has
listed re-creates Jobs that exist. So nothing is admitted, refused, stopped or placed until every cache a
decision reads has seen what existed when this process started leading: controller-runtime's
``WaitForCacheSync``, for kopf, which has no such signal of its own.

How "listed" is known without one: the operator lists the keys of each watched kind itself (metadata only,
paginated), and a kind is synced once its handler has been handed every one of them (or the key is gone
from a later list: deleted before the watch listed). The trusted keys and signals, which are read rather
than watched, count once a read has succeeded since the start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlplacement.api.constants import GROUP, LABEL_MANAGED_BY, VERSION
from mlplacement.controller.state import object_key

log = logging.getLogger("mlplacement.sync")
# How often the lists are taken again while a kind is not synced yet (a key deleted before its watch listed
# is only ever dropped by a later list), and after how long the wait is reported at WARNING.
RELIST_SECONDS = 2.0
SLOW_SYNC_SECONDS = 10.0
KEYS_AND_SIGNALS = "trusted keys and signals"
CHILD_SELECTOR = f"{LABEL_MANAGED_BY}=mlplacement"


@dataclass(frozen=True)
class Watch:
    """One kind the operator watches: its collection's path and the label selector of its watch."""

    kind: str
    path: str
    selector: str = ""


_OURS = f"/apis/{GROUP}/{VERSION}"
# Every kind a decision reads, as the handlers watch it (handlers/operator.py names each one).
WATCHES: Mapping[str, Watch] = {
    watch.kind: watch
    for watch in (
        Watch("placementpolicies", f"{_OURS}/placementpolicies"),
        Watch("mlworkloads", f"{_OURS}/mlworkloads"),
        Watch("mlpipelines", f"{_OURS}/mlpipelines"),
        Watch("edgeclusters", f"{_OURS}/edgeclusters"),
        Watch("databricksworkspaces", f"{_OURS}/databricksworkspaces"),
        Watch("nodes", "/api/v1/nodes"),
        Watch("namespaces", "/api/v1/namespaces"),
        Watch("pods", "/api/v1/pods"),
        Watch("jobs", "/apis/batch/v1/jobs", CHILD_SELECTOR),
        Watch("deployments", "/apis/apps/v1/deployments", CHILD_SELECTOR),
    )
}


class CacheSync:
    """Which caches have listed since the start; ``ready`` once all have, and for good."""

    def __init__(
        self,
        kinds: Iterable[str] = WATCHES,
        reads: Iterable[str] = (KEYS_AND_SIGNALS,),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seen: dict[str, set[str]] = {kind: set() for kind in kinds}
        self._missing: dict[str, set[str] | None] = dict.fromkeys(self._seen)  # None: not listed yet
        self._reads = set(reads)
        self._monotonic = monotonic
        self.started = monotonic()
        self.took: float | None = None  # seconds from start to ready
        self._event = asyncio.Event()

    @classmethod
    def already(cls) -> CacheSync:
        """A sync with nothing to wait for (tests and tools that feed the caches themselves)."""
        sync = cls(kinds=(), reads=())
        sync._settle()
        return sync

    @property
    def ready(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def seen(self, kind: str, obj: Mapping[str, Any]) -> None:
        """The handler of ``kind`` has taken ``obj`` into its cache (any event, deletion included)."""
        if self.ready:
            return
        key = object_key(obj)
        self._seen[kind].add(key)
        missing = self._missing[kind]
        if missing is not None and key in missing:
            missing.discard(key)
            if not missing:
                self._settle()

    def listed(self, kind: str, keys: Iterable[str]) -> None:
        """What exists of ``kind`` now (a list taken by the operator): its watch must deliver all of it."""
        if self.ready:
            return
        self._missing[kind] = set(keys) - self._seen[kind]
        self._settle()

    def read(self, source: str) -> None:
        """A read-only source (the trusted keys and signals) was read successfully."""
        self._reads.discard(source)
        self._settle()

    def needs_read(self, source: str) -> bool:
        return source in self._reads

    def unsynced(self) -> list[str]:
        return [kind for kind, missing in self._missing.items() if missing is None or missing]

    def waiting_for(self) -> str:
        """What the sync still waits for, in words (logs and /readyz)."""
        parts = []
        for kind, missing in self._missing.items():
            if missing is None:
                parts.append(f"{kind} (not listed yet)")
            elif missing:
                parts.append(f"{kind} ({len(missing)} listed, not delivered yet)")
        parts.extend(sorted(self._reads))
        return ", ".join(parts) or "nothing"

    def _settle(self) -> None:
        if self.ready or self._reads or self.unsynced():
            return
        self.took = self._monotonic() - self.started
        self._seen.clear()
        self._missing.clear()
        self._event.set()


async def sync_caches(
    sync: CacheSync,
    list_keys: Callable[[str], set[str]],
    read_sources: Callable[[], Awaitable[None]],
    relist_seconds: float = RELIST_SECONDS,
) -> None:
    """List every unsynced kind with ``list_keys(kind)`` (again every ``relist_seconds``) and read the keys and
    signals, until ``sync`` is ready. Failures are retried; past SLOW_SYNC_SECONDS what is missing is reported at
    WARNING, with the server's words, so a sync that cannot finish (RBAC, an API server away) is never silent."""
    reported = ""
    while not sync.ready:
        problems: list[str] = []
        if sync.needs_read(KEYS_AND_SIGNALS):
            try:
                await read_sources()
                sync.read(KEYS_AND_SIGNALS)
            except Exception as exc:
                problems.append(f"{KEYS_AND_SIGNALS}: {exc}")
        for kind in sync.unsynced():
            try:
                sync.listed(kind, await asyncio.to_thread(list_keys, kind))
            except Exception as exc:
                problems.append(f"list {kind}: {exc}")
        if sync.ready:
            break
        waited = time.monotonic() - sync.started
        news = "; ".join(problems)
        if waited > SLOW_SYNC_SECONDS and news != reported:
            log.warning(
                "nothing is decided until caches sync (%.0fs): waiting for %s%s",
                waited,
                sync.waiting_for(),
                f"; {news}" if news else "",
            )
            reported = news
        try:
            await asyncio.wait_for(sync.wait(), timeout=relist_seconds)
        except TimeoutError:
            continue
    log.info("caches synced in %.2fs: decisions start", sync.took or 0.0)
