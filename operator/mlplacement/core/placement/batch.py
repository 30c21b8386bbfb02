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

import bisect
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
# Targets an ejection chain may pass through beyond the first when make_room() frees room.
CHAIN_DEPTH = 2


@dataclass(frozen=True, slots=True)
class Option:
    """A target one workload may use (every filter but capacity passes), its utility and what it claims."""

    utility: float
    need: int


Options = Mapping[str, Mapping[TargetKey, Option]]


def total_utility(assignment: Mapping[str, TargetKey], options: Options) -> float:
    return sum(options[workload][target].utility for workload, target in assignment.items())


# One workload's options as plain tuples (target, utility, need): the pricing loop reads them hundreds of thousands
# of times a batch, and attribute and dict lookups there were most of a contested round's time.
Flat = Sequence[Sequence[tuple[TargetKey, float, int]]]


def _flatten(order: Sequence[str], options: Options) -> list[list[tuple[TargetKey, float, int]]]:
    return [[(target, option.utility, option.need) for target, option in options[w].items()] for w in order]


def _priced_greedy(
    order: Sequence[str], flat: Flat, capacity: Mapping[TargetKey, int], price: Mapping[TargetKey, float]
) -> dict[str, TargetKey] | None:
    """Each workload in order takes its best target with room, by utility minus price; None if one is left out."""
    left = dict(capacity)
    assignment: dict[str, TargetKey] = {}
    for workload, choices in zip(order, flat, strict=True):
        best: TargetKey | None = None
        best_value, best_need = 0.0, 0
        for target, utility, need in choices:
            if need <= left[target]:
                value = utility - price[target] * need
                if best is None or value > best_value:
                    best, best_value, best_need = target, value, need
        if best is None:
            return None
        assignment[workload] = best
        left[best] -= best_need
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
    flat = _flatten(order, options)
    pairs = sum(len(choices) for choices in flat)
    per_unit = sum(abs(utility) / max(need, 1) for choices in flat for _, utility, need in choices) / max(pairs, 1)
    best, best_total = start, total_utility(start, options)
    price = dict.fromkeys(capacity, 0.0)
    for round_number in range(rounds):
        # Demand at current prices with capacity ignored: the subgradient of the Lagrangian dual. The first of
        # equal values wins, as max() would pick it.
        demand = dict.fromkeys(capacity, 0)
        for choices in flat:
            wanted: TargetKey | None = None
            wanted_value, wanted_need = 0.0, 0
            for target, utility, need in choices:
                value = utility - price[target] * need
                if wanted is None or value > wanted_value:
                    wanted, wanted_value, wanted_need = target, value, need
            if wanted is not None:
                demand[wanted] += wanted_need
        step = schedule * per_unit / (1 + round_number) ** 0.5
        for target, room in capacity.items():
            price[target] = max(0.0, price[target] + step * (demand[target] - room) / max(room, 1))
        candidate = _priced_greedy(order, flat, capacity, price)
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


def _at_best(choices: Mapping[TargetKey, Option], chosen: TargetKey) -> bool:
    utility = choices[chosen].utility
    return all(option.utility <= utility + MIN_GAIN for option in choices.values())


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
    if len(order) < 2 or all(_at_best(options[w], start[w]) for w in order):
        # Every workload already has a target none of its others beats: the total is the sum of the
        # individual bests, which no assignment exceeds (the usual case while capacity is not contested).
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


Plan = tuple[float, list[tuple[str, TargetKey]]]  # utility lost by the placed, and their moves in order
Move = tuple[str, TargetKey, TargetKey]  # workload, from, to


class RoomMaker:
    """Places workloads the priority-order greedy leaves out by moving placed ones (see make_room()).

    The greedy calls add() for each workload it places and insert() for each it cannot: moving placed
    workloads never costs anyone a place, and a workload is tried at its turn, before any of lower
    priority is placed, so priority still decides who runs.
    """

    def __init__(self, options: Options, capacity: Mapping[TargetKey, int], budget: int = WORK_BUDGET) -> None:
        # Shared with the caller, who adds each placed workload's options; a workload insert() places joins
        # with its needs and no preference among its targets until the caller gives its real options.
        self.options: dict[str, Mapping[TargetKey, Option]] = options  # type: ignore[assignment]
        self.capacity = dict(capacity)
        self.assignment: dict[str, TargetKey] = {}
        self.used = dict.fromkeys(capacity, 0)
        self.occupants: dict[TargetKey, dict[str, None]] = {t: {} for t in capacity}  # insertion-ordered sets
        # Targets with room left: in a saturated batch a handful, so moves into room are looked for there only.
        self.roomy = {t for t in capacity if capacity[t] > 0}
        # Per target, its occupants by the other targets they may use: who could swap in (see _swap).
        self._movers: dict[TargetKey, dict[TargetKey, list[tuple[int, str]]]] = {}
        # (target, depth) -> the smallest deficit no plan covered, until something there changes.
        self.failed: dict[tuple[TargetKey, int], int] = {}
        self.hopeless: dict[TargetKey, int] = {}  # the same at the deepest search: no chain frees that much
        self.work = 0
        self.budget = budget

    def add(self, workload: str, target: TargetKey) -> None:
        """``workload`` was placed on ``target`` (its options are in the shared mapping)."""
        self.place(workload, target, self.options[workload][target].need)
        self._forget(target)

    def grow(self, target: TargetKey, amount: int) -> None:
        """``amount`` more is free on ``target`` (preempted work stops there)."""
        self.capacity[target] += amount
        self._settle(target)
        self._forget(target)

    def insert(self, workload: str, needs: Mapping[TargetKey, int]) -> tuple[TargetKey, list[Move]] | None:
        """Place ``workload``, which needs ``needs[t]`` on each full target t it may use, by moving placed
        workloads; the target and the moves made (workload, from, to), or None (nothing moved)."""
        if self.work > self.budget:
            return None
        # Ruled out at the deepest search on every target (which includes the shallower ones): next.
        hopeless, used, capacity = self.hopeless, self.used, self.capacity
        if all(need - capacity[t] + used[t] >= hopeless.get(t, capacity[t] + 1) for t, need in needs.items()):
            return None
        free = self.free
        best: tuple[float, TargetKey, list[tuple[str, TargetKey]]] | None = None
        # The shallowest plan wins: fewer moves, less search.
        for depth in range(CHAIN_DEPTH + 1):
            for target, need in needs.items():
                deficit = need - free(target)
                self.work += 1
                if deficit <= 0:
                    best = (0.0, target, [])
                    break
                if need > capacity[target]:
                    continue
                plan = self.plan(target, deficit, depth)
                if plan is not None and (best is None or plan[0] < best[0]):
                    best = (plan[0], target, plan[1])
            if best is not None:
                break
        if best is None:
            return None
        _, target, moves = best
        undo = self.apply(moves)
        made = [(w, origin, destination) for (w, destination), (_, origin) in zip(moves, reversed(undo), strict=True)]
        self.options[workload] = {t: Option(0.0, n) for t, n in needs.items()}
        self.place(workload, target, needs[target])
        # Moves change what a plan may find, most of all on the targets they touched: failures there are
        # forgotten. Elsewhere they stand (a little short-sighted, and bounded work on a busy round).
        for changed in {target, *(t for _, t, _ in made), *(t for _, _, t in made)}:
            self._forget(changed)
        return target, made

    def _forget(self, target: TargetKey) -> None:
        for depth in range(CHAIN_DEPTH + 1):
            self.failed.pop((target, depth), None)
        self.hopeless.pop(target, None)

    def free(self, target: TargetKey) -> int:
        return self.capacity[target] - self.used[target]

    def place(self, workload: str, target: TargetKey, need: int) -> None:
        self.assignment[workload] = target
        self.used[target] += need
        self.occupants[target][workload] = None
        movers = self._movers.get(target)
        if movers is not None:
            for other, option in self.options[workload].items():
                if other != target:
                    bisect.insort(movers.setdefault(other, []), (option.need, workload))
        self._settle(target)

    def apply(self, moves: Sequence[tuple[str, TargetKey]]) -> list[tuple[str, TargetKey]]:
        """Move placed workloads in turn (a target may be over capacity between two moves of one plan, as
        in a swap); returns the moves that undo it."""
        undo: list[tuple[str, TargetKey]] = []
        for workload, target in moves:
            old = self.assignment[workload]
            undo.append((workload, old))
            self.used[old] -= self.options[workload][old].need
            del self.occupants[old][workload]
            movers = self._movers.get(old)
            if movers is not None:
                for other, option in self.options[workload].items():
                    if other != old:
                        movers[other].remove((option.need, workload))
            self._settle(old)
            self.place(workload, target, self.options[workload][target].need)
        undo.reverse()
        return undo

    def _settle(self, target: TargetKey) -> None:
        if self.free(target) > 0:
            self.roomy.add(target)
        else:
            self.roomy.discard(target)

    def plan(
        self, target: TargetKey, deficit: int, depth: int = CHAIN_DEPTH, banned: frozenset[TargetKey] = frozenset()
    ) -> Plan | None:
        """Moves that free ``deficit`` more on ``target``, none onto ``banned``: into room, else one swap,
        else an occupant moving to a target that ``depth`` more such steps make room on (an ejection chain).

        Failures are remembered per target and depth until something moves: ignoring ``banned`` there makes
        the search a little short-sighted and keeps it from growing with the depth."""
        if deficit >= self.failed.get((target, depth), deficit + 1):
            return None
        banned = banned | {target}
        found = self._into_room(target, deficit, banned) or self._swap(target, deficit, banned)
        if found is None and depth > 0:
            found = self._chain(target, deficit, depth, banned)
        if found is None:
            self.failed[(target, depth)] = deficit
            if depth == CHAIN_DEPTH:
                self.hopeless[target] = deficit
        return found

    def _chain(self, target: TargetKey, deficit: int, depth: int, banned: frozenset[TargetKey]) -> Plan | None:
        """One occupant of ``target`` moving to a target that further plans make room on, the smallest that
        frees enough first."""
        for occupant in sorted(self.occupants[target], key=lambda o: (self.options[o][target].need, o)):
            theirs = self.options[occupant]
            if theirs[target].need < deficit:
                continue
            for elsewhere, option in theirs.items():
                if elsewhere in banned or option.need > self.capacity[elsewhere]:
                    continue
                self.work += 1
                further = self.plan(elsewhere, option.need - self.free(elsewhere), depth - 1, banned)
                if further is not None:
                    return further[0] + theirs[target].utility - option.utility, [*further[1], (occupant, elsewhere)]
        return None

    def _into_room(self, target: TargetKey, deficit: int, banned: frozenset[TargetKey]) -> Plan | None:
        movable: list[tuple[float, str]] = []
        for occupant in self.occupants[target]:
            theirs = self.options[occupant]
            here = theirs[target]
            self.work += len(self.roomy)
            losses = [here.utility - theirs[e].utility for e in self.roomy if e not in banned and e in theirs]
            if losses:
                movable.append((min(losses) / max(here.need, 1), occupant))
        if sum(self.options[o][target].need for _, o in movable) < deficit:
            return None
        extra: dict[TargetKey, int] = {}
        moves: list[tuple[str, TargetKey]] = []
        lost = 0.0
        for _, occupant in sorted(movable):
            theirs = self.options[occupant]
            fits = [
                e
                for e in self.roomy
                if e not in banned and e in theirs and theirs[e].need <= self.free(e) - extra.get(e, 0)
            ]
            if not fits:
                continue
            elsewhere = max(fits, key=lambda e: (theirs[e].utility, e))
            extra[elsewhere] = extra.get(elsewhere, 0) + theirs[elsewhere].need
            lost += theirs[target].utility - theirs[elsewhere].utility
            moves.append((occupant, elsewhere))
            deficit -= theirs[target].need
            if deficit <= 0:
                return lost, moves
        return None

    def _swap(self, target: TargetKey, deficit: int, banned: frozenset[TargetKey]) -> Plan | None:
        """A larger occupant of ``target`` trades places with a smaller workload of another full target.

        The usual case: a Databricks run slot counts one whatever a job's size, so an 8-GPU job moving there
        in exchange for a 1-GPU one frees 7 GPUs on the pool.
        """
        best: Plan | None = None
        capacity, used, movers = self.capacity, self.used, self._movers
        for occupant in self.occupants[target]:
            theirs = self.options[occupant]
            mine_here = theirs[target]
            if mine_here.need - 1 < deficit:
                continue
            for elsewhere, option in theirs.items():
                listed = movers.get(elsewhere)
                if listed is None:
                    listed = self._movers_of(elsewhere)
                candidates = listed.get(target)
                if candidates is None or elsewhere in banned:
                    continue
                self.work += 1
                room_there = capacity[elsewhere] - used[elsewhere] - option.need
                for their_need, partner in candidates:  # ascending by what the partner needs here
                    if mine_here.need - their_need < deficit:
                        break
                    partners = self.options[partner]
                    if room_there + partners[elsewhere].need < 0:
                        continue
                    lost = mine_here.utility - option.utility + partners[elsewhere].utility - partners[target].utility
                    if best is None or lost < best[0]:
                        best = (lost, [(occupant, elsewhere), (partner, target)])
                    break
        return best

    def _movers_of(self, target: TargetKey) -> dict[TargetKey, list[tuple[int, str]]]:
        movers = self._movers.get(target)
        if movers is None:
            movers = {}
            for occupant in self.occupants[target]:
                for other, option in self.options[occupant].items():
                    if other != target:
                        movers.setdefault(other, []).append((option.need, occupant))
            for listed in movers.values():
                listed.sort()
            self.work += sum(len(v) for v in movers.values())
            self._movers[target] = movers
        return movers


def make_room(
    placed: Sequence[str],
    assignment: Mapping[str, TargetKey],
    waiting: Sequence[tuple[str, Mapping[TargetKey, int]]],
    options: Options,
    capacity: Mapping[TargetKey, int],
    budget: int = WORK_BUDGET,
) -> dict[str, TargetKey]:
    """``assignment`` plus the ``waiting`` workloads (each with what it needs on its full targets) that fit
    once placed workloads move.

    The priority-order greedy strands capacity: a small workload takes the target only a larger, later one
    could use, while another target would have held the small one. Each waiting workload, in order, takes a
    target with room, or one freed by moving placed workloads: into room elsewhere, by one swap (an 8-GPU
    job trades its pool for a 1-GPU job's Databricks run slot), or by a chain of such moves up to
    CHAIN_DEPTH targets further, whichever is shallowest and then costs the placed the least utility; nobody
    placed loses a place. Where a placed workload then runs best is rebalance()'s business. Deterministic;
    stops after about ``budget`` evaluations. decide_many() does the same inside its greedy (RoomMaker).
    """
    room = RoomMaker(dict(options), capacity, budget)
    for workload in placed:
        room.add(workload, assignment[workload])
    for workload, needs in waiting:
        room.insert(workload, needs)
    return room.assignment
