"""Batch rebalancing: given who runs (decided by priority), choose where each runs for the best total.

Placing one workload at a time in priority order is fair but myopic: an early workload takes the cheapest
slot although a later one loses far more by not getting it (a Databricks run slot is worth little to a
1-GPU job and a lot to an 8-GPU one). rebalance() keeps the set of placed workloads and improves the
assignment in two bounded, deterministic steps:

1. Lagrangian pricing. Every target gets a price per unit of capacity, raised while more is demanded of it
   than it has; the priority-order greedy re-runs on prices (utility minus price times need). Every run that
   places all of them is a feasible assignment; the best is kept. The unpriced run is the starting point, so
   the result is never worse than plain greedy.
2. Local search. Move a workload to a better target with room, or to a full one whose occupant can move
   elsewhere (an ejection chain of two), while the total utility rises.

Both steps stop after a fixed amount of work so a large batch stays fast; the numbers are in bench/engine.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TargetKey = tuple[str, str]
# Step sizes tried in turn, as a share of the batch's mean utility per unit of capacity: the right one
# depends on the instance, and trying three costs less than guessing wrong.
STEP_SCHEDULES = (0.03, 0.1, 0.3)
MAX_PRICING_ROUNDS = 60
# Fewer rounds than this find nothing local search would not: a batch that large gets local search only.
MIN_PRICING_ROUNDS = 5
# Option evaluations one batch may spend in all (about 0.3 s of CPU).
WORK_BUDGET = 1_000_000
MIN_GAIN = 1e-9


@dataclass(frozen=True, slots=True)
class Option:
    """A target one workload may use (every filter but capacity passes), its utility and what it claims."""

    utility: float
    need: int


Options = Mapping[str, Mapping[TargetKey, Option]]


def total_utility(assignment: Mapping[str, TargetKey], options: Options) -> float:
    return sum(options[workload][target].utility for workload, target in assignment.items())


def _priced_greedy(
    order: Sequence[str], options: Options, capacity: Mapping[TargetKey, int], price: Mapping[TargetKey, float]
) -> dict[str, TargetKey] | None:
    """Each workload in order takes its best target with room, by utility minus price; None if one is left out."""
    used = dict.fromkeys(capacity, 0)
    assignment: dict[str, TargetKey] = {}
    for workload in order:
        best: TargetKey | None = None
        best_value = 0.0
        for target, option in options[workload].items():
            if option.need <= capacity[target] - used[target]:
                value = option.utility - price[target] * option.need
                if best is None or value > best_value:
                    best, best_value = target, value
        if best is None:
            return None
        assignment[workload] = best
        used[best] += options[workload][best].need
    return assignment


def _price(
    order: Sequence[str],
    options: Options,
    capacity: Mapping[TargetKey, int],
    start: dict[str, TargetKey],
    rounds: int,
    schedule: float,
) -> dict[str, TargetKey]:
    """The best feasible assignment the priced greedy finds while prices follow the dual subgradient."""
    pairs = sum(len(options[w]) for w in order)
    per_unit = sum(abs(o.utility) / max(o.need, 1) for w in order for o in options[w].values()) / max(pairs, 1)
    best, best_total = start, total_utility(start, options)
    price = dict.fromkeys(capacity, 0.0)
    for round_number in range(rounds):
        # Demand at current prices with capacity ignored: the subgradient of the Lagrangian dual.
        demand = dict.fromkeys(capacity, 0)
        for workload in order:
            choices = options[workload]
            target = max(choices, key=lambda t: choices[t].utility - price[t] * choices[t].need)
            demand[target] += choices[target].need
        step = schedule * per_unit / (1 + round_number) ** 0.5
        for target, room in capacity.items():
            price[target] = max(0.0, price[target] + step * (demand[target] - room) / max(room, 1))
        candidate = _priced_greedy(order, options, capacity, price)
        if candidate is not None:
            candidate_total = total_utility(candidate, options)
            if candidate_total > best_total + MIN_GAIN:
                best, best_total = candidate, candidate_total
    return best


def _local_search(
    order: Sequence[str],
    options: Options,
    capacity: Mapping[TargetKey, int],
    assignment: dict[str, TargetKey],
    budget: int,
) -> dict[str, TargetKey]:
    used = dict.fromkeys(capacity, 0)
    occupants: dict[TargetKey, dict[str, None]] = {t: {} for t in capacity}  # insertion-ordered sets
    for workload in order:
        target = assignment[workload]
        used[target] += options[workload][target].need
        occupants[target][workload] = None

    def move(workload: str, target: TargetKey) -> None:
        old = assignment[workload]
        used[old] -= options[workload][old].need
        del occupants[old][workload]
        assignment[workload] = target
        used[target] += options[workload][target].need
        occupants[target][workload] = None

    improved = True
    while improved and budget > 0:
        improved = False
        for workload in order:
            current = assignment[workload]
            mine = options[workload]
            current_utility = mine[current].utility
            best_gain = MIN_GAIN
            plan: tuple[TargetKey, str | None, TargetKey | None] | None = None
            for target, option in mine.items():
                gain_here = option.utility - current_utility
                if gain_here <= MIN_GAIN:
                    continue
                budget -= 1
                if option.need <= capacity[target] - used[target]:
                    if gain_here > best_gain:
                        best_gain, plan = gain_here, (target, None, None)
                    continue
                for occupant in occupants[target]:
                    theirs = options[occupant]
                    room_left = capacity[target] - used[target] + theirs[target].need - option.need
                    if room_left < 0:
                        continue
                    budget -= len(theirs)
                    for elsewhere, their_option in theirs.items():
                        if elsewhere == target:
                            continue
                        freed = mine[current].need if elsewhere == current else 0
                        if their_option.need > capacity[elsewhere] - used[elsewhere] + freed:
                            continue
                        gain = gain_here + their_option.utility - theirs[target].utility
                        if gain > best_gain:
                            best_gain, plan = gain, (target, occupant, elsewhere)
            if plan is not None:
                destination, evicted, evicted_to = plan
                if evicted is not None and evicted_to is not None:
                    move(evicted, evicted_to)
                move(workload, destination)
                improved = True
            if budget <= 0:
                break
    return assignment


def rebalance(
    order: Sequence[str],
    options: Options,
    capacity: Mapping[TargetKey, int],
    start: Mapping[str, TargetKey],
    budget: int = WORK_BUDGET,
) -> dict[str, TargetKey]:
    """A better assignment of the same workloads: every one keeps a target, none over capacity.

    ``order`` is the placement order, ``options`` every target each workload may use (with capacity left
    out of the filters), ``capacity`` what is free on each target before this batch, ``start`` a feasible
    assignment (the greedy one). Deterministic for the same input; never lowers the total utility.
    """
    if len(order) < 2:
        return dict(start)
    pairs = sum(len(options[w]) for w in order)
    share = budget // len(STEP_SCHEDULES)
    rounds = min(MAX_PRICING_ROUNDS, share // (4 * pairs))
    if rounds < MIN_PRICING_ROUNDS:
        return _local_search(order, options, capacity, dict(start), share)
    best, best_total = dict(start), total_utility(start, options)
    # Each step size leads to a different basin; local search polishes each and the best one wins.
    for schedule in STEP_SCHEDULES:
        priced = _price(order, options, capacity, dict(start), rounds, schedule)
        polished = _local_search(order, options, capacity, priced, share - rounds * 2 * pairs)
        polished_total = total_utility(polished, options)
        if polished_total > best_total + MIN_GAIN:
            best, best_total = polished, polished_total
    return best
