"""Scarcity: victim selection, quota accounting, borrowing and reclaim, fair-share order (core.scarcity and the
engine's use of it)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.api.constants import Reason
from mlplacement.api.policy import PlacementPolicySpec, Preemption, TeamQuota
from mlplacement.api.workload import TargetKind
from mlplacement.core.placement import decide_many
from mlplacement.core.scarcity import Need, QuotaBook, Running, choose_victims, eligible_victims
from tests.builders import make_fleet, make_request, pool

POOL = ("GPUPool", "a100")
RULES = Preemption(enabled=True)


def running(
    key: str,
    priority: int = 10,
    claim: int = 2,
    started: float = 0.0,
    target: tuple[str, str] = POOL,
    preemptible: bool = True,
    product: str | None = "NVIDIA-A100",
    usd: float = 0.0,
) -> Running:
    namespace = key.partition("/")[0]
    return Running(key, namespace, priority, target, claim, claim, product, usd, started, preemptible)


def keys(victims: Any) -> list[str] | None:
    return None if victims is None else [v.key for v in victims]


# --- victim selection ---

VICTIMS = [
    pytest.param(
        4,
        [running("a/small-1", claim=2), running("a/small-2", claim=2), running("a/big", claim=4, priority=20)],
        ["a/big"],
        id="one big job frees the room two small ones would: fewest victims first",
    ),
    pytest.param(
        2,
        [running("a/p30", priority=30), running("a/p10", priority=10), running("a/p20", priority=20)],
        ["a/p10"],
        id="among equally few, the lowest priority goes",
    ),
    pytest.param(
        2,
        [running("a/old", started=100), running("a/new", started=300), running("a/mid", started=200)],
        ["a/new"],
        id="among equal priorities, the most recently started goes",
    ),
    pytest.param(
        4,
        [running("a/four", claim=4, priority=50), running("a/two-1", claim=2), running("a/two-2", claim=2)],
        ["a/four"],
        id="never a victim that is not needed: one job of four, not two of two plus one",
    ),
    pytest.param(
        6,
        [running("a/one", claim=1), running("a/two", claim=2), running("a/four", claim=4, priority=40)],
        ["a/two", "a/four"],
        id="two victims at the least: the lower-priority pair that covers",
    ),
    pytest.param(9, [running("a/x", claim=4), running("a/y", claim=4)], None, id="not enough to take: no victims"),
    pytest.param(0, [running("a/x")], [], id="nothing missing: nobody is stopped"),
]


@pytest.mark.parametrize(("deficit", "candidates", "expected"), VICTIMS)
def test_victim_selection(deficit: int, candidates: list[Running], expected: list[str] | None) -> None:
    assert keys(choose_victims(deficit, candidates, limit=10)) == expected


def test_more_victims_than_a_round_allows_means_none() -> None:
    candidates = [running(f"a/{i}", claim=1) for i in range(5)]
    assert choose_victims(5, candidates, limit=4) is None
    assert keys(choose_victims(4, candidates, limit=4)) is not None


ELIGIBLE = [
    pytest.param(running("a/same", priority=100), RULES, False, id="equal priority is never a victim"),
    pytest.param(running("a/lower", priority=99), RULES, True, id="one below is, with the default gap of one"),
    pytest.param(
        running("a/lower", priority=95), Preemption(enabled=True, min_priority_gap=10), False, id="the gap is honoured"
    ),
    pytest.param(running("a/pinned", priority=1, preemptible=False), RULES, False, id="not preemptible: never"),
    pytest.param(
        running("a/run", priority=1, target=("Databricks", "dbx")),
        RULES,
        False,
        id="a Databricks run only when the policy lists Databricks",
    ),
    pytest.param(
        running("a/run", priority=1, target=("Databricks", "dbx")),
        Preemption(enabled=True, target_kinds=[TargetKind.DATABRICKS]),
        True,
        id="listed: a Databricks run may be cancelled",
    ),
]


@pytest.mark.parametrize(("candidate", "rules", "eligible"), ELIGIBLE)
def test_who_may_be_preempted(candidate: Running, rules: Preemption, eligible: bool) -> None:
    assert bool(eligible_victims([candidate], 100, rules)) is eligible


@settings(max_examples=300, deadline=None)
@given(
    claims=st.lists(st.tuples(st.integers(1, 8), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=7),
    deficit=st.integers(1, 20),
)
def test_the_victim_set_is_minimal_and_covers(claims: list[tuple[int, int, int]], deficit: int) -> None:
    """Compared with brute force on small instances: the fewest victims that cover the deficit, and among sets
    that small none whose highest priority is lower."""
    candidates = [running(f"a/{i}", priority=p, claim=c, started=s) for i, (c, p, s) in enumerate(claims)]
    chosen = choose_victims(deficit, candidates, limit=len(candidates))
    covering = [
        combo
        for size in range(1, len(candidates) + 1)
        for combo in itertools.combinations(candidates, size)
        if sum(c.claim for c in combo) >= deficit
    ]
    if not covering:
        assert chosen is None
        return
    assert chosen is not None
    fewest = min(len(combo) for combo in covering)
    assert len(chosen) == fewest
    assert sum(v.claim for v in chosen) >= deficit
    assert all(sum(v.claim for v in chosen if v is not dropped) < deficit for dropped in chosen)  # each is needed
    lowest_ceiling = min(max(c.priority for c in combo) for combo in covering if len(combo) == fewest)
    assert max(v.priority for v in chosen) == lowest_ceiling


# --- quotas ---


def quota(name: str, namespaces: list[str], **fields: Any) -> TeamQuota:
    return TeamQuota.model_validate({"name": name, "namespaces": namespaces, **fields})


QUOTAS = [
    quota("team-a", ["a"], nominal={"gpus": 16, "gpusByProduct": {"NVIDIA-A100": 16}, "hourlyCostUSD": 100}),
    quota("team-b", ["b"], nominal={"gpus": 8, "gpusByProduct": {"NVIDIA-A100": 8}}),
]

ACCOUNTING = [
    pytest.param([], "a", Need(4, "NVIDIA-A100", 10), None, id="within nominal quota"),
    pytest.param(
        [running("a/x", claim=14), running("b/y", claim=8)],  # both on A100s
        "a",
        Need(4, "NVIDIA-A100", 10),
        "team-a uses 14/16 GPUs, needs 4; other teams leave 0 unused",
        id="over nominal while the other team uses all of its own: waits, and says the numbers",
    ),
    pytest.param(
        [running("a/x", claim=14)],
        "a",
        Need(4, "NVIDIA-A100", 10),
        None,
        id="over nominal on quota team-b leaves unused: borrows",
    ),
    pytest.param(
        [running("a/x", claim=14, product="NVIDIA-A100"), running("b/y", claim=8, product="NVIDIA-L4")],
        "a",
        Need(2, "NVIDIA-A100", 5),
        None,
        id="exactly at nominal is within it",
    ),
    pytest.param(
        [running("a/x", claim=10, usd=98.0)],
        "a",
        Need(2, "NVIDIA-A100", 5.0),
        "team-a uses $98.00/$100.00 $/h, needs $5.00; other teams leave $0.00 unused",
        id="dollars per hour are a quota too (team-b has no $/h quota to lend)",
    ),
    pytest.param(
        [running("c/x", claim=500)], "c", Need(64, None, 1000.0), None, id="a namespace no team claims is not limited"
    ),
]


@pytest.mark.parametrize(("usage", "namespace", "need", "expected"), ACCOUNTING)
def test_quota_accounting(usage: list[Running], namespace: str, need: Need, expected: str | None) -> None:
    assert QuotaBook(QUOTAS, running=usage).exceeded(namespace, need) == expected


def test_the_issue_message_names_product_usage_quota_and_need() -> None:
    quotas = [
        quota("team-a", ["a"], nominal={"gpusByProduct": {"A100": 16}}),
        quota("team-b", ["b"], nominal={"gpusByProduct": {"A100": 4}}),
    ]
    book = QuotaBook(
        quotas, running=[running("a/x", claim=14, product="A100"), running("b/y", claim=4, product="A100")]
    )
    assert (
        book.exceeded("a", Need(4, "A100", 0.0)) == "team-a uses 14/16 A100 GPUs, needs 4; other teams leave 0 unused"
    )


def test_borrowing_stops_at_the_limit() -> None:
    quotas = [
        quota("team-a", ["a"], nominal={"gpus": 4}, borrowingLimit={"gpus": 2}),
        quota("team-b", ["b"], nominal={"gpus": 8}),
    ]
    book = QuotaBook(quotas, running=[running("a/x", claim=4)])
    assert book.exceeded("a", Need(2, None, 0.0)) is None
    assert book.exceeded("a", Need(3, None, 0.0)) == "team-a uses 4/4 GPUs, needs 3 (may borrow 2)"


def test_a_team_is_found_by_namespace_labels() -> None:
    quotas = [quota("ml", [], namespaceSelector={"matchLabels": {"team": "ml"}}, nominal={"gpus": 2})]
    book = QuotaBook(quotas, namespace_labels={"ml-dev": {"team": "ml"}, "web": {"team": "web"}})
    assert book.team("ml-dev") == "ml"
    assert book.team("web") == "web"
    assert book.exceeded("ml-dev", Need(3, None, 0.0)) is not None


# --- the engine: preemption, reclaim, fair share ---

PREEMPTING = PlacementPolicySpec.model_validate({"preemption": {"enabled": True}})


def test_a_high_priority_service_preempts_batch_and_claims_what_it_freed() -> None:
    fleet = make_fleet(pool("a100", free=0, gpus_total=8))
    batch = [running(f"a/batch-{i}", priority=10, claim=2, started=float(i)) for i in range(4)]
    service = make_request(key="a/service", gpus=2, priority=1000)
    waiting = make_request(key="a/other", gpus=2, priority=10)
    decisions = {d.request.key: d for d in decide_many([service, waiting], {None: PREEMPTING}, fleet, running=batch)}
    chosen = decisions["a/service"]
    assert chosen.placed
    assert [v.key for v in chosen.preempts] == ["a/batch-3"]  # the newest of equals
    assert "preempting a/batch-3 (priority 10)" in chosen.message
    assert not decisions["a/other"].placed  # the freed GPUs went to the preemptor, to no one else


def test_without_preemption_the_service_waits() -> None:
    fleet = make_fleet(pool("a100", free=0, gpus_total=8))
    batch = [running(f"a/batch-{i}", priority=10, claim=2) for i in range(4)]
    (decision,) = decide_many(
        [make_request(key="a/service", gpus=2, priority=1000)], {None: PlacementPolicySpec()}, fleet, running=batch
    )
    assert not decision.placed
    assert decision.preempts == ()


def test_a_team_reclaiming_its_quota_stops_borrowers_before_its_own_lower_priority_work() -> None:
    policy = PlacementPolicySpec.model_validate(
        {
            "preemption": {"enabled": True},
            "quotas": [
                {"name": "team-a", "namespaces": ["a"], "nominal": {"gpus": 4}},
                {"name": "team-b", "namespaces": ["b"], "nominal": {"gpus": 4}},
            ],
        }
    )
    fleet = make_fleet(pool("a100", free=0, gpus_total=8))
    now = [
        running("a/own", priority=5, claim=2),  # team-a, within its quota
        running("b/lend-1", priority=10, claim=2),
        running("b/lend-2", priority=10, claim=2),
        running("b/lend-3", priority=10, claim=2, started=5.0),  # team-b uses 6 of 4: borrowing 2
    ]
    (decision,) = decide_many([make_request(key="a/new", gpus=2, priority=20)], {None: policy}, fleet, running=now)
    assert [v.key for v in decision.preempts] == ["b/lend-3"]


def test_over_quota_waits_with_quota_exceeded() -> None:
    policy = PlacementPolicySpec.model_validate(
        {"quotas": [{"name": "team-a", "namespaces": ["a"], "nominal": {"gpus": 2}, "borrowingLimit": {"gpus": 0}}]}
    )
    fleet = make_fleet(pool("a100", free=8))
    decisions = decide_many([make_request(key=f"a/j{i}", gpus=2) for i in range(2)], {None: policy}, fleet)
    assert [d.placed for d in decisions] == [True, False]
    assert decisions[1].reason is Reason.QUOTA_EXCEEDED
    assert decisions[1].message == "team-a uses 2/2 GPUs, needs 2 (may borrow 0)"


def test_fair_share_interleaves_a_burst_with_a_trickle() -> None:
    policy = PlacementPolicySpec.model_validate(
        {
            "quotas": [
                {"name": "burst", "namespaces": ["burst"], "nominal": {"gpus": 8}},
                {"name": "trickle", "namespaces": ["trickle"], "nominal": {"gpus": 8}},
            ]
        }
    )
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    burst = [make_request(key=f"burst/{i:02d}", created=t0 + timedelta(seconds=i)) for i in range(10)]
    trickle = [make_request(key=f"trickle/{i}", created=t0 + timedelta(seconds=100 + i)) for i in range(2)]
    fleet = make_fleet(pool("a100", free=6))
    placed = {d.request.key for d in decide_many(burst + trickle, {None: policy}, fleet) if d.placed}
    assert {"trickle/0", "trickle/1"} <= placed  # though they arrived last
    unfair = PlacementPolicySpec.model_validate({**policy.model_dump(by_alias=True), "fairSharing": False})
    placed = {d.request.key for d in decide_many(burst + trickle, {None: unfair}, fleet) if d.placed}
    assert not placed & {"trickle/0", "trickle/1"}  # arrival order: the burst takes everything


# --- properties of a whole batch ---


@st.composite
def scarce_batches(draw: st.DrawFn) -> tuple[Any, list[Running], list[Any], PlacementPolicySpec]:
    total = draw(st.integers(4, 16))
    now: list[Running] = []
    used = 0
    for index in range(draw(st.integers(0, 8))):
        claim = draw(st.integers(1, 4))
        if used + claim > total:
            break
        used += claim
        namespace = draw(st.sampled_from("ab"))
        now.append(
            running(
                f"{namespace}/run-{index}",
                priority=draw(st.integers(0, 20)),
                claim=claim,
                started=float(draw(st.integers(0, 100))),
                preemptible=draw(st.booleans()),
            )
        )
    requests = [
        make_request(
            key=f"{draw(st.sampled_from('ab'))}/new-{index}",
            gpus=draw(st.integers(1, 4)),
            priority=draw(st.integers(0, 20)),
        )
        for index in range(draw(st.integers(1, 6)))
    ]
    quotas = draw(
        st.sampled_from(
            [
                [],
                [
                    {"name": "team-a", "namespaces": ["a"], "nominal": {"gpus": 4}, "borrowingLimit": {"gpus": 2}},
                    {"name": "team-b", "namespaces": ["b"], "nominal": {"gpus": 4}},
                ],
            ]
        )
    )
    policy = PlacementPolicySpec.model_validate(
        {
            "preemption": {"enabled": True, "minPriorityGap": draw(st.integers(1, 3)), "maxVictimsPerRound": 100},
            "quotas": quotas,
        }
    )
    fleet = make_fleet(pool("a100", free=total - used, gpus_total=total))
    return fleet, now, requests, policy


@settings(max_examples=400, deadline=None)
@given(batch=scarce_batches())
def test_preemption_and_quotas_keep_their_promises(
    batch: tuple[Any, list[Running], list[Any], PlacementPolicySpec],
) -> None:
    fleet, now, requests, policy = batch
    decisions = decide_many(requests, {None: policy}, fleet, running=now)
    gap = policy.preemption.min_priority_gap
    stopped = [v for d in decisions for v in d.preempts]
    # A victim always has a priority at least the gap below its preemptor's, and is stopped once.
    for decision in decisions:
        for victim in decision.preempts:
            assert victim.priority <= decision.request.priority - gap
            assert victim.preemptible
    assert len({v.key for v in stopped}) == len(stopped)
    # With the victims gone, everyone placed fits: the preemptor got what its victims freed.
    (target,) = fleet.targets
    placed = [d for d in decisions if d.placed]
    assert sum(d.request.gpus_needed for d in placed) <= target.capacity + sum(v.claim for v in stopped)
    # Nominal quota is only exceeded by borrowing, within its limit.
    staying = [r for r in now if r.key not in {v.key for v in stopped}]
    for team in policy.quotas:
        namespaces = set(team.namespaces)
        before = sum(r.gpus for r in now if r.namespace in namespaces)
        after = sum(r.gpus for r in staying if r.namespace in namespaces) + sum(
            d.request.gpus_needed for d in placed if d.request.key.partition("/")[0] in namespaces
        )
        limit = team.nominal.gpus + (team.borrowing_limit.gpus if team.borrowing_limit else 10**6)  # type: ignore[operator]
        assert after <= max(limit, before)  # what already ran over it is not this batch's doing
    # No one waits while lower-priority work of its own team (that it may stop) holds the room it needs.
    if not policy.quotas:
        free_after = target.capacity + sum(v.claim for v in stopped) - sum(d.request.gpus_needed for d in placed)
        for decision in decisions:
            if decision.placed:
                continue
            request = decision.request
            team = request.key.partition("/")[0]
            held = sum(
                r.claim
                for r in staying
                if r.namespace == team and r.preemptible and r.priority <= request.priority - gap
            ) + sum(
                d.request.gpus_needed
                for d in placed
                if d.request.key.partition("/")[0] == team and d.request.priority < request.priority
            )
            assert held + free_after < request.gpus_needed


def test_whatif_shows_what_a_quota_would_hold_back_before_it_is_signed() -> None:
    from mlplacement.core.whatif import whatif

    proposed = PlacementPolicySpec.model_validate(
        {"quotas": [{"name": "team-a", "namespaces": ["a"], "nominal": {"gpus": 4}, "borrowingLimit": {"gpus": 0}}]}
    )
    fleet = make_fleet(pool("a100", free=16))
    requests = [make_request(key=f"a/j{i}", gpus=2) for i in range(3)] + [make_request(key="b/other", gpus=2)]
    changes, totals = whatif(requests, fleet, PlacementPolicySpec(), proposed)
    assert [(c.key, c.kind) for c in changes] == [("a/j2", "becomes infeasible")]
    assert changes[0].why == "team-a uses 4/4 GPUs, needs 2 (may borrow 0)"
    assert totals["becomeInfeasible"] == 1


def test_the_scarcity_scenario_shows_fair_share_and_preemption_at_work() -> None:
    """examples/scarcity: a 500-job burst and a trickle on 16 GPUs, a priority-1000 service an hour in."""
    from datetime import UTC, datetime

    from ruamel.yaml import YAML

    from mlplacement.api.fleet import Fleet
    from mlplacement.api.trace import Trace
    from mlplacement.core.simulation import engine_strategy, simulate
    from tests.conftest import REPO

    yaml = YAML(typ="safe", pure=True)
    folder = REPO / "examples" / "scarcity"
    fleet = Fleet.model_validate(yaml.load((folder / "fleet.yaml").read_text()))
    trace = Trace.model_validate(yaml.load((folder / "trace.yaml").read_text()))

    def run(policy_file: str) -> dict[str, Any]:
        policy = PlacementPolicySpec.model_validate(yaml.load((folder / policy_file).read_text())["spec"])
        start = datetime(2026, 11, 22, 8, tzinfo=UTC)
        return simulate(fleet, trace, engine_strategy(policy), policy_file, start).summary()

    fair, arrival, patient = (
        run("policy-fair-share.yaml"),
        run("policy-arrival-order.yaml"),
        run("policy-no-preemption.yaml"),
    )
    trickle = "team-trickle"
    assert fair["waitMinutesByNamespace"][trickle]["p95"] * 10 < arrival["waitMinutesByNamespace"][trickle]["p95"]
    assert fair["waitMinutesByPriority"]["1000"]["max"] == 0  # placed on arrival, by preempting
    assert fair["priorityPreemptions"] == 2  # one two-GPU service, two one-GPU victims
    assert patient["waitMinutesByPriority"]["1000"]["max"] > 60  # without preemption it waits for hours
    assert patient["priorityPreemptions"] == 0


def test_explain_and_whatif_model_preemption_against_what_runs_now(tmp_path: Any) -> None:
    """`--running` takes `kubectl get mlw -A -o yaml` output: the placed workloads, status included."""
    import yaml
    from click.testing import CliRunner

    from mlplacement.cli import cli
    from tests.conftest import REPO

    def manifest(name: str, namespace: str, priority: int) -> dict[str, Any]:
        return {
            "apiVersion": "mlplacement.io/v1alpha1",
            "kind": "MLWorkload",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "type": "Batch",
                "image": "registry.example.com/x:1",
                "resources": {"gpus": 2, "gpuProduct": "NVIDIA-A100"},
                "intent": {"priority": priority, "dataRegion": "eu-west-1"},
                "targets": {"allowed": ["GPUPool"]},
            },
        }

    placed = {
        "phase": "Running",
        "estimatedHourlyCostUSD": 6.0,
        "placement": {"target": {"kind": "GPUPool", "name": "a100-shared", "region": "eu-west-1"}},
    }
    items = [
        {
            **manifest(f"batch-{i}", "team-burst", 100 - i),
            "status": {**placed, "placement": {**placed["placement"], "decidedAt": f"2026-11-22T07:0{i}:00Z"}},
        }
        for i in range(8)
    ]
    (tmp_path / "running.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    (tmp_path / "service.yaml").write_text(yaml.safe_dump(manifest("fraud-scoring", "team-serving", 1000)))
    fleet = (
        (REPO / "examples" / "scarcity" / "fleet.yaml")
        .read_text()
        .replace("gpusTotal: 16\n", "gpusTotal: 16\n    gpusFree: 0\n")
    )
    (tmp_path / "fleet.yaml").write_text(fleet)
    folder = REPO / "examples" / "scarcity"
    common = ["--fleet", str(tmp_path / "fleet.yaml"), "--running", str(tmp_path / "running.yaml")]
    explained = CliRunner().invoke(
        cli, ["explain", str(tmp_path / "service.yaml"), "--policy", str(folder / "policy-fair-share.yaml"), *common]
    )
    assert explained.exit_code == 0, explained.output
    assert "preempting team-burst/batch-7 (priority 93)" in explained.output  # the lowest priority goes
    compared = CliRunner().invoke(
        cli,
        [
            "whatif",
            "--current",
            str(folder / "policy-no-preemption.yaml"),
            "--policy",
            str(folder / "policy-fair-share.yaml"),
            "--workloads",
            str(tmp_path / "service.yaml"),
            *common,
        ],
    )
    assert compared.exit_code == 0, compared.output
    assert "becomes placeable" in compared.output
    assert "1 running workload preempted" in compared.output
