"""Request latency with a tail (#33): network round trip from where requests come from, plus queueing and
service at the target's replicas, as an M/M/c queue; percentiles over requests, not over workloads.

Each replica serves requests one at a time, exponentially distributed with mean ``service_ms``; requests arrive
as a Poisson stream at ``rate_per_second``. With c replicas and a = λ/μ, a request waits with the Erlang C
probability C(c, a), and then for an exponential time of rate cμ - λ. Its time at the target is that wait plus
its own service: closed forms for the mean and for P(T > t), so a percentile is a bisection, not a simulation.
Requests from several regions add their own round trip: the distribution over requests is the mixture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

UNSTABLE_MS = 60_000.0  # a queue that grows without bound: reported as a minute, worse than any target


@dataclass(frozen=True)
class Queue:
    """c servers (replicas), Poisson arrivals at ``rate_per_second``, exponential service of ``service_ms``."""

    replicas: int
    rate_per_second: float
    service_ms: float

    @property
    def mu(self) -> float:  # services per second, per replica
        return 1000.0 / self.service_ms

    @property
    def utilisation(self) -> float:
        return self.rate_per_second / (self.replicas * self.mu)

    @property
    def stable(self) -> bool:
        return self.replicas >= 1 and self.utilisation < 1.0

    def erlang_c(self) -> float:
        """Probability that a request waits (all replicas busy)."""
        c, a = self.replicas, self.rate_per_second / self.mu
        if a <= 0:
            return 0.0
        # Erlang B by its stable recursion, then C from B.
        b = 1.0
        for k in range(1, c + 1):
            b = a * b / (k + a * b)
        rho = a / c
        return b / (1 - rho + rho * b)

    def mean_ms(self) -> float:
        """Mean time at the target: wait plus service."""
        if not self.stable:
            return UNSTABLE_MS
        theta = self.replicas * self.mu - self.rate_per_second
        return 1000.0 * (self.erlang_c() / theta + 1 / self.mu)

    def exceeds(self, t_ms: float) -> float:
        """P(time at the target > t_ms)."""
        if t_ms <= 0:
            return 1.0
        if not self.stable:
            return 1.0
        t = t_ms / 1000.0
        mu, theta, waits = self.mu, self.replicas * self.mu - self.rate_per_second, self.erlang_c()
        service_only = math.exp(-mu * t)
        if abs(theta - mu) < 1e-9 * mu:  # wait and service alike: an Erlang-2
            with_wait = math.exp(-mu * t) * (1 + mu * t)
        else:  # the sum of two exponentials of different rates
            with_wait = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
        return (1 - waits) * service_only + waits * with_wait


@dataclass(frozen=True)
class Served:
    """One inference workload where it is served: its queue and where its requests come from."""

    queue: Queue
    round_trip_ms: Mapping[str, float]  # source region -> network round trip to the target
    share: Mapping[str, float]  # source region -> share of the requests (sums to 1)

    def exceeds(self, t_ms: float) -> float:
        return sum(
            weight * self.queue.exceeds(t_ms - self.round_trip_ms[region]) for region, weight in self.share.items()
        )

    def percentile_ms(self, q: float) -> float:
        """The latency ``q`` of the requests stay under (0 < q < 1), to 0.01 ms."""
        if not self.queue.stable:
            return UNSTABLE_MS
        low, high = 0.0, max(self.round_trip_ms.values(), default=0.0) + self.queue.service_ms
        while self.exceeds(high) > 1 - q:
            high *= 2
            if high > UNSTABLE_MS:
                return UNSTABLE_MS
        while high - low > 0.01:
            middle = (low + high) / 2
            if self.exceeds(middle) > 1 - q:
                low = middle
            else:
                high = middle
        return high

    def mean_ms(self) -> float:
        return self.queue.mean_ms() + sum(w * self.round_trip_ms[r] for r, w in self.share.items())

    def without_network(self) -> Served:
        """The same queue with every caller next to it: the latency its replicas alone give."""
        return Served(self.queue, dict.fromkeys(self.round_trip_ms, 0.0), self.share)


__all__ = ["UNSTABLE_MS", "Queue", "Served"]
