"""Leader election over a coordination.k8s.io Lease (the rules are in core.lease).

Every replica runs a ``LeaderElector``. A standby reads the Lease every retry period and writes nothing; the
leader renews it every retry period and is told to stop when a renewal has not succeeded for the renew
deadline (before any standby may take over). A leader that stops on purpose releases the Lease, so a
standby takes over after one retry period instead of a whole lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from mlplacement.api.constants import LeaderState
from mlplacement.api.errors import LeaseConflictError
from mlplacement.config import OperatorConfig
from mlplacement.controller.ports import Leases
from mlplacement.core.lease import LeaderElection, LeaseAction, LeaseRecord

log = logging.getLogger("mlplacement.leader")
# A Lease error that lasts is said again this often (a 403 that nobody fixes must not go quiet).
REPEAT_PROBLEM_SECONDS = 30.0


def candidate_identity(pod_name: str) -> str:
    """The pod's name (or the host's) plus a random suffix: two processes never share an identity, so a restarted
    process can never mistake its predecessor's lease for its own."""
    return f"{pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(
        self,
        config: OperatorConfig,
        leases: Leases,
        identity: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[LeaderState], None] = lambda state: None,
    ) -> None:
        self.config = config
        self.leases = leases
        self.identity = identity
        self.clock = clock
        self.monotonic = monotonic
        self.on_change = on_change
        self.election = LeaderElection(identity, config.lease_duration_seconds, config.renew_deadline_seconds)
        self.state = LeaderState.STANDBY
        self.problem = ""  # the server's words for why the Lease cannot be used, while that lasts
        self._problem_said_at: float | None = None
        # Lease calls never queue behind placement writes in the default executor: a renewal stuck behind a
        # burst of child applies would cost the lease. One thread: election is sequential anyway.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    @property
    def where(self) -> str:
        return f"{self.config.namespace}/{self.config.lease_name}"

    def leading(self) -> bool:
        return self.election.leading(self.monotonic())

    async def try_acquire_or_renew(self) -> bool:
        """One read and, when the Lease is ours or free, one write. True when we hold it afterwards."""
        namespace, name = self.config.namespace, self.config.lease_name
        try:
            current = await self._call(self.leases.read, namespace, name)
            self.election.observe(LeaseRecord.from_object(current) if current else None, self.monotonic())
            action = self.election.decide(self.monotonic())
            if action is LeaseAction.WAIT:
                self._trouble(None)
                return False
            record = self.election.desired(action, self.clock())
            if action is LeaseAction.CREATE:
                written = await self._call(self.leases.create, namespace, name, record.spec())
            else:
                written = await self._call(self.leases.replace, namespace, name, record.spec(), record.resource_version)
        except Exception as exc:  # a conflict or an unreachable server: not ours this time, try again later
            if isinstance(exc, LeaseConflictError):  # a lost race: the normal life of several replicas
                log.debug("lease %s not acquired or renewed: %s", self.where, exc)
            else:
                self._trouble(exc)
            return False
        self._trouble(None)
        self.election.wrote(LeaseRecord.from_object(written), self.monotonic())
        if action is LeaseAction.TAKE or action is LeaseAction.CREATE:
            log.info("became the leader (lease %s, identity %s)", self.where, self.identity)
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            if await self.try_acquire_or_renew() and self.leading():
                self._set_state(LeaderState.LEADING)
                return True
            self._set_state(LeaderState.LEASE_ERROR if self.problem else LeaderState.STANDBY)
            if not announced and self.election.observed is not None:
                log.info("standing by: lease %s is held by %s", self.where, self.election.observed.holder)
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.retry_period_seconds)
        return False

    async def hold(self) -> None:
        """Renew every retry period; return as soon as leadership is lost (a renewal late past the deadline,
        or another holder seen on the Lease)."""
        while True:
            await asyncio.sleep(self.config.retry_period_seconds)  # the renewal period, not a wait for a condition
            await self.try_acquire_or_renew()
            if not self.leading():
                holder = self.election.observed.holder if self.election.observed else ""
                log.error("lost the lease %s (now held by %r): stopping", self.where, holder)
                self._set_state(LeaderState.STANDBY)
                return

    async def release(self) -> None:
        """Hand the Lease over at once (a planned stop). Only when we still hold it; a failure just means the
        standby waits out the lease duration."""
        if not self.leading() or self.election.observed is None:
            return
        record = self.election.released(self.clock())
        try:
            written = await self._call(
                self.leases.replace,
                self.config.namespace,
                self.config.lease_name,
                record.spec(),
                record.resource_version,
            )
        except Exception as exc:
            log.warning("could not release the lease %s: %s", self.where, exc)
            return
        self.election.wrote(LeaseRecord.from_object(written), self.monotonic())
        self._set_state(LeaderState.STANDBY)
        log.info("released the lease %s", self.where)

    def describe(self) -> str:
        """This replica's role in words (/readyz)."""
        if self.state is LeaderState.LEADING:
            return f"leading (lease {self.where})"
        if self.problem:
            return f"standby: lease {self.where} cannot be used: {self.problem}"
        holder = self.election.observed.holder if self.election.observed else ""
        return f"standby (lease {self.where} held by {holder or 'nobody yet'})"

    def _trouble(self, exc: BaseException | None) -> None:
        """Say a Lease error at WARNING in the server's words: when it starts or changes, then every
        REPEAT_PROBLEM_SECONDS while it lasts; and once when it is over."""
        if exc is None:
            if self.problem:
                log.warning("lease %s usable again (was: %s)", self.where, self.problem)
                self.problem, self._problem_said_at = "", None
            return
        problem = f"{type(exc).__name__}: {exc}" if not str(exc).strip() else str(exc).strip().splitlines()[0]
        now = self.monotonic()
        if (
            problem != self.problem
            or self._problem_said_at is None
            or now - self._problem_said_at >= REPEAT_PROBLEM_SECONDS
        ):
            log.warning("lease %s cannot be read or written, so nothing is placed here: %s", self.where, problem)
            self._problem_said_at = now
        self.problem = problem

    def _set_state(self, state: LeaderState) -> None:
        if state != self.state:
            self.state = state
            self.on_change(state)
