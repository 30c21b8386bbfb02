"""Scarcity, pure: team quotas with borrowing, fair-share order, and preemption victims.

Modelled on Kueue: every team with a quota is a ClusterQueue with a nominal quota, all of them one cohort.
A team may go above its nominal quota only on quota other teams leave unused, and only up to its borrowing
limit. Among equal priorities the team with the smallest dominant share (its largest usage/quota ratio)
goes first. When a workload fits nowhere, the cheapest set of strictly lower-priority workloads on one
target is stopped for it: fewest victims, then lowest priorities, then the most recently started; a team
taking back its nominal quota stops borrowers before anyone working within quota.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlplacement.api.constants import ACTIVE_PHASES
from mlplacement.api.policy import Preemption, QuotaAmounts, TeamQuota
from mlplacement.api.workload import MLWorkload, TargetKind
from mlplacement.core.kinds import claim_of


@dataclass(frozen=True, slots=True)
class Running:
    """A workload that holds capacity now (placed or running): what quotas count and preemption may stop."""

    key: str  # namespace/name
    namespace: str
    priority: int
    target: tuple[str, str]  # (kind, name)
    claim: int  # what it holds on its target: GPUs, or one run slot on Databricks
    gpus: int  # GPUs it counts against its team's quota
    product: str | None  # the GPU product of its target, for per-product quotas
    hourly_usd: float
    started: float  # seconds since the epoch; larger is newer
    preemptible: bool = True

    @property
    def kind(self) -> TargetKind:
        return TargetKind(self.target[0])


def running_from(
    workload: MLWorkload, status: Mapping[str, Any], products: Mapping[tuple[str, str], str | None]
) -> Running | None:
    """What ``workload`` holds now, read from its status (the operator's, or `kubectl get mlw -o yaml`'s):
    None unless it is placed or running on a target. ``products`` maps target keys to their GPU product."""
    placement = status.get("placement") or {}
    target = placement.get("target") or {}
    if status.get("phase") not in ACTIVE_PHASES or not target.get("kind") or not target.get("name"):
        return None
    key = (str(target["kind"]), str(target["name"]))
    spec, meta = workload.spec, workload.metadata
    gpus = spec.resources.gpus * spec.pods
    decided = str(placement.get("decidedAt") or "")
    try:
        started = datetime.fromisoformat(decided.replace("Z", "+00:00")).timestamp() if decided else 0.0
    except ValueError:
        started = 0.0
    try:
        hourly = float(status.get("estimatedHourlyCostUSD") or 0.0)
    except (TypeError, ValueError):
        hourly = 0.0
    return Running(
        key=f"{meta.namespace or ''}/{meta.name}",
        namespace=meta.namespace or "",
        priority=spec.intent.priority,
        target=key,
        claim=claim_of(key[0], gpus),
        gpus=gpus,
        product=products.get(key),
        hourly_usd=hourly,
        started=started,
        preemptible=spec.intent.preemptible,
    )


@dataclass
class Usage:
    gpus: int = 0
    by_product: dict[str, int] = field(default_factory=dict)
    usd: float = 0.0

    def add(self, gpus: int, product: str | None, usd: float, sign: int = 1) -> None:
        self.gpus += sign * gpus
        if product is not None:
            self.by_product[product] = self.by_product.get(product, 0) + sign * gpus
        self.usd += sign * usd


@dataclass(frozen=True, slots=True)
class Need:
    gpus: int
    product: str | None
    usd: float


def _dimensions(
    amounts: QuotaAmounts, need: Need
) -> Iterable[tuple[str, float | None, float]]:  # (label, nominal-or-limit, the need in that dimension)
    yield "GPUs", amounts.gpus, need.gpus
    if need.product is not None:
        yield f"{need.product} GPUs", amounts.gpus_by_product.get(need.product), need.gpus
    yield "$/h", amounts.hourly_cost_usd, need.usd


def _used(usage: Usage, label: str, product: str | None) -> float:
    if label == "GPUs":
        return usage.gpus
    if label == "$/h":
        return usage.usd
    return usage.by_product.get(product or "", 0)


def _amount(value: float, label: str) -> str:
    return f"${value:,.2f}" if label == "$/h" else f"{value:g}"


class QuotaBook:
    """Which team a namespace belongs to, each team's quota and usage; updated as a batch places and preempts."""

    def __init__(
        self,
        quotas: Sequence[TeamQuota],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
        running: Iterable[Running] = (),
        total_gpus: int = 0,
    ) -> None:
        self.quotas = {q.name: q for q in quotas}
        self._order = list(quotas)
        self.namespace_labels = namespace_labels or {}
        self.usage: dict[str, Usage] = {}
        self.total_gpus = max(1, total_gpus)
        self._teams: dict[str, str] = {}
        for workload in running:
            self.add(workload.namespace, Need(workload.gpus, workload.product, workload.hourly_usd))

    def team(self, namespace: str) -> str:
        """The team a namespace belongs to: the first quota naming it or selecting its labels; else itself."""
        team = self._teams.get(namespace)
        if team is None:
            labels = self.namespace_labels.get(namespace) or {}
            team = next((q.name for q in self._order if _claims(q, namespace, labels)), namespace)
            self._teams[namespace] = team
        return team

    def add(self, namespace: str, need: Need, sign: int = 1) -> None:
        self.usage.setdefault(self.team(namespace), Usage()).add(need.gpus, need.product, need.usd, sign)

    def exceeded(self, namespace: str, need: Need) -> str | None:
        """Why ``need`` would take the namespace's team past what it may use, or None. Nominal quota first;
        above it only what other teams leave unused, within the team's borrowing limit."""
        team = self.team(namespace)
        quota = self.quotas.get(team)
        if quota is None:
            return None
        usage = self.usage.get(team) or Usage()
        for label, nominal, wanted in _dimensions(quota.nominal, need):
            if nominal is None or not wanted:
                continue
            used = _used(usage, label, need.product)
            over = used + wanted - nominal
            if over <= 1e-9:
                continue
            head = (
                f"{team} uses {_amount(used, label)}/{_amount(nominal, label)} {label}, needs {_amount(wanted, label)}"
            )
            limits = quota.borrowing_limit
            limit = next((v for lab, v, _ in _dimensions(limits, need) if lab == label), None) if limits else None
            if limit is not None and over > limit + 1e-9:
                return f"{head} (may borrow {_amount(limit, label)})"
            unused = self._unused_elsewhere(team, label, need.product)
            if over > unused + 1e-9:
                return f"{head}; other teams leave {_amount(unused, label)} unused"
        return None

    def _unused_elsewhere(self, team: str, label: str, product: str | None) -> float:
        unused = 0.0
        for name, quota in self.quotas.items():
            if name == team:
                continue
            nominal = next((v for lab, v, _ in _dimensions(quota.nominal, Need(1, product, 1.0)) if lab == label), None)
            if nominal is not None:
                unused += max(0.0, nominal - _used(self.usage.get(name) or Usage(), label, product))
        return unused

    def borrowing(self, namespace: str) -> bool:
        """Whether the team uses more than its nominal quota in some dimension (it borrows)."""
        team = self.team(namespace)
        quota = self.quotas.get(team)
        if quota is None:
            return False
        usage = self.usage.get(team) or Usage()
        nominal = quota.nominal
        if nominal.gpus is not None and usage.gpus > nominal.gpus:
            return True
        if nominal.hourly_cost_usd is not None and usage.usd > nominal.hourly_cost_usd + 1e-9:
            return True
        return any(usage.by_product.get(p, 0) > n for p, n in nominal.gpus_by_product.items())

    def within_nominal(self, namespace: str, need: Need) -> bool:
        """Whether ``need`` keeps the team within its nominal quota: such work may take quota back."""
        team = self.team(namespace)
        quota = self.quotas.get(team)
        if quota is None:
            return False
        usage = self.usage.get(team) or Usage()
        return all(
            nominal is None or _used(usage, label, need.product) + wanted <= nominal + 1e-9
            for label, nominal, wanted in _dimensions(quota.nominal, need)
        )

    def dominant_share(self, namespace: str) -> float:
        """The team's largest usage/quota ratio (GPUs or $/h); a team without quota against the whole fleet."""
        team = self.team(namespace)
        usage = self.usage.get(team) or Usage()
        quota = self.quotas.get(team)
        if quota is None:
            return usage.gpus / self.total_gpus
        shares = [0.0]
        for used, nominal in ((usage.gpus, quota.nominal.gpus), (usage.usd, quota.nominal.hourly_cost_usd)):
            if nominal is not None:
                shares.append(used / nominal if nominal > 0 else (math.inf if used > 0 else 0.0))
        return max(shares)


def _claims(quota: TeamQuota, namespace: str, labels: Mapping[str, str]) -> bool:
    if namespace in quota.namespaces:
        return True
    selector = quota.namespace_selector
    return (
        selector is not None
        and bool(selector.match_labels)
        and all(labels.get(k) == v for k, v in selector.match_labels.items())
    )


def eligible_victims(
    running: Iterable[Running], priority: int, rules: Preemption, taken: Iterable[str] = ()
) -> list[Running]:
    """What a workload of ``priority`` may stop under ``rules``: preemptible, strictly (by the gap) lower
    priority, on a kind the policy lets be preempted, not already stopped this round."""
    kinds = {k.value for k in rules.target_kinds}
    gone = set(taken)
    return [
        r
        for r in running
        if r.preemptible
        and r.priority <= priority - rules.min_priority_gap
        and r.target[0] in kinds
        and r.key not in gone
    ]


def _preference(candidate: Running) -> tuple[int, float, str]:
    return (candidate.priority, -candidate.started, candidate.key)


def _fewest(deficit: int, candidates: Sequence[Running]) -> int | None:
    """How many of ``candidates`` it takes at the least to cover ``deficit`` (the largest claims first)."""
    covered = 0
    for size, claim in enumerate(sorted((c.claim for c in candidates), reverse=True), start=1):
        covered += claim
        if covered >= deficit:
            return size
    return None


def choose_victims(
    deficit: int,
    candidates: Sequence[Running],
    limit: int,
    preference: Callable[[Running], tuple[Any, ...]] = _preference,
) -> tuple[Running, ...] | None:
    """The fewest ``candidates`` whose claims cover ``deficit``; among sets that small, the one whose highest
    priority is lowest (kube-scheduler's rule), then lower priorities and newer starts first. None when no set
    of at most ``limit`` covers it. Every victim is needed: no smaller set covers, so none can be dropped."""
    if deficit <= 0:
        return ()
    size = _fewest(deficit, candidates)
    if size is None or size > limit:
        return None
    # The lowest priority ceiling under which a set of that size still covers.
    for ceiling in sorted({c.priority for c in candidates}):
        allowed = [c for c in candidates if c.priority <= ceiling]
        if _fewest(deficit, allowed) == size:
            break
    # Walk in preference order, taking a candidate whenever the set can still be completed at this size.
    preferred = sorted(allowed, key=preference)
    chosen: list[Running] = []
    covered = 0
    for index, candidate in enumerate(preferred):
        if covered >= deficit:
            break
        slots = size - len(chosen) - 1
        rest = sorted((c.claim for c in preferred[index + 1 :]), reverse=True)[:slots] if slots > 0 else []
        if covered + candidate.claim + sum(rest) >= deficit:
            chosen.append(candidate)
            covered += candidate.claim
    return tuple(chosen)


def choose_victims_reclaiming(
    deficit: int, borrowers: Sequence[Running], others: Sequence[Running], limit: int
) -> tuple[Running, ...] | None:
    """A team taking back its nominal quota: borrowers alone if they suffice, else borrowers before the rest."""
    alone = choose_victims(deficit, borrowers, limit)
    if alone is not None or not others:
        return alone
    lending = {b.key for b in borrowers}
    return choose_victims(
        deficit, [*borrowers, *others], limit, preference=lambda c: (c.key not in lending, *_preference(c))
    )


def victim_rank(victims: Sequence[Running]) -> tuple[int, tuple[int, ...], tuple[float, ...]]:
    """Orders victim sets across targets: fewer, then lower priorities, then newer."""
    return (
        len(victims),
        tuple(sorted((v.priority for v in victims), reverse=True)),
        tuple(sorted(-v.started for v in victims)),
    )


__all__ = [
    "Need",
    "QuotaBook",
    "Running",
    "Usage",
    "choose_victims",
    "choose_victims_reclaiming",
    "eligible_victims",
    "running_from",
    "victim_rank",
]
