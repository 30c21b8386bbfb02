"""The request latency model (core.latency, #33) against closed forms, and its properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.core.latency import UNSTABLE_MS, Queue, Served


def alone(queue: Queue) -> Served:
    return Served(queue, {"here": 0.0}, {"here": 1.0})


@pytest.mark.parametrize(("rate", "service_ms"), [(5.0, 100.0), (9.0, 100.0), (1.0, 20.0)])
def test_mm1_mean_and_tail_are_the_textbook_ones(rate: float, service_ms: float) -> None:
    queue = Queue(1, rate, service_ms)
    mu = 1000 / service_ms
    assert queue.mean_ms() == pytest.approx(1000 / (mu - rate))
    # M/M/1: the time in system is exponential with rate mu - lambda, so its p99 is ln(100) / (mu - lambda).
    assert alone(queue).percentile_ms(0.99) == pytest.approx(1000 * math.log(100) / (mu - rate), abs=0.05)
    assert queue.exceeds(200.0) == pytest.approx(math.exp(-(mu - rate) * 0.2))


def test_mmc_erlang_c_and_mean_wait_against_a_table_value() -> None:
    # c = 2, a = 1 (rho 0.5): Erlang C = 1/3, mean wait = C / (c mu - lambda).
    queue = Queue(2, 10.0, 100.0)
    assert queue.erlang_c() == pytest.approx(1 / 3)
    assert queue.mean_ms() == pytest.approx(1000 * ((1 / 3) / (20 - 10) + 1 / 10))


def test_a_tail_from_the_closed_form_matches_a_direct_integration() -> None:
    queue = Queue(3, 25.0, 80.0)
    mu, theta, waits = queue.mu, queue.replicas * queue.mu - queue.rate_per_second, queue.erlang_c()
    t = 0.15
    # P(S + W > t), W ~ Exp(theta) w.p. C: integrate the waiting density numerically.
    steps = 20000
    integral = sum(
        theta * math.exp(-theta * w) * math.exp(-mu * max(0.0, t - w)) * (t / steps)
        for w in ((i + 0.5) * t / steps for i in range(steps))
    ) + math.exp(-theta * t)
    expected = (1 - waits) * math.exp(-mu * t) + waits * integral
    assert queue.exceeds(t * 1000) == pytest.approx(expected, rel=1e-4)


def test_requests_from_far_away_add_their_round_trip_to_the_mixture() -> None:
    queue = Queue(4, 10.0, 50.0)
    near = Served(queue, {"eu": 10.0}, {"eu": 1.0})
    mixed = Served(queue, {"eu": 10.0, "us": 90.0}, {"eu": 0.9, "us": 0.1})
    assert mixed.percentile_ms(0.5) == pytest.approx(near.percentile_ms(0.5), abs=15)
    # The far 10 % raise the tail, by less than their extra 80 ms: the queue's own tail is in both.
    assert near.percentile_ms(0.99) + 5 < mixed.percentile_ms(0.99) < near.percentile_ms(0.99) + 80
    far = Served(queue, {"us": 90.0}, {"us": 1.0})
    assert far.percentile_ms(0.99) == pytest.approx(near.percentile_ms(0.99) + 80, abs=0.05)
    assert mixed.mean_ms() == pytest.approx(near.mean_ms() + 0.1 * 80)


def test_an_overloaded_queue_is_reported_as_such() -> None:
    assert alone(Queue(1, 20.0, 100.0)).percentile_ms(0.99) == UNSTABLE_MS


@settings(max_examples=200, deadline=None)
@given(
    replicas=st.integers(min_value=1, max_value=30),
    rate=st.floats(min_value=0.1, max_value=500.0),
    service_ms=st.floats(min_value=1.0, max_value=500.0),
    q=st.sampled_from([0.5, 0.95, 0.99]),
)
def test_more_replicas_never_raise_the_predicted_tail(replicas: int, rate: float, service_ms: float, q: float) -> None:
    fewer = alone(Queue(replicas, rate, service_ms)).percentile_ms(q)
    more = alone(Queue(replicas + 1, rate, service_ms)).percentile_ms(q)
    assert more <= fewer + 0.02  # the bisection's own resolution
