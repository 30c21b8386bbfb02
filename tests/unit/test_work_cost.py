"""Cost per job, not per hour, and deadlines (core.placement.filters: runtime_hours, job_cost_usd,
finishes_in_time): opt in with intent.expectedGPUHours; without it nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mlplacement.api.constants import Reason
from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import Intent, WorkloadType
from mlplacement.core.placement import decide
from tests.builders import make_fleet, make_request, make_signals, pool

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
COST_ONLY = PlacementPolicySpec.model_validate(
    {"weights": {"cost": 100, "latency": 0, "dataGravity": 0, "carbon": 0, "preemption": 0}}
)
A100 = pool("a100", "eu-west-1", free=8, gpus_total=8, gpu_products=frozenset({"NVIDIA-A100"}), gpu_hour_usd=3.0)
L4 = pool("l4", "eu-west-1", free=8, gpus_total=8, gpu_products=frozenset({"NVIDIA-L4"}), gpu_hour_usd=1.0)
CHEAP_L4 = pool("l4", "eu-west-1", free=8, gpus_total=8, gpu_products=frozenset({"NVIDIA-L4"}), gpu_hour_usd=0.5)
# 64 GPU-hours on A100s: 8 h on eight of them, 26.7 h on eight L4s (0.3 of an A100 each).
TRAINING = {"type": WorkloadType.TRAINING, "gpus": 8, "expected_gpu_hours": 64.0, "data_size_gb": 0.0}

CHOICES = [
    pytest.param(
        {**TRAINING},
        (A100, L4),
        "a100",
        id="the cheaper hour loses when its pool is slow enough to cost more per job ($192 vs $213)",
    ),
    pytest.param(
        {**TRAINING, "expected_gpu_hours": None},
        (A100, L4),
        "l4",
        id="without the work of a run, the cheaper hour wins as before",
    ),
    pytest.param(
        {**TRAINING},
        (A100, CHEAP_L4),
        "l4",
        id="half the price per hour makes the slow pool the cheaper job again ($107 vs $192)",
    ),
    pytest.param(
        {**TRAINING, "deadline": NOW + timedelta(hours=10)},
        (A100, CHEAP_L4),
        "a100",
        id="a deadline-bound training goes to the pool that finishes in time, not the cheapest job",
    ),
    pytest.param(
        {**TRAINING, "max_runtime_minutes": 600},
        (A100, CHEAP_L4),
        "a100",
        id="so does one with a maximum runtime",
    ),
]


@pytest.mark.parametrize(("fields", "targets", "expected"), CHOICES)
def test_where_work_goes(fields: dict[str, Any], targets: tuple[Any, ...], expected: str) -> None:
    decision = decide(make_request(**fields), COST_ONLY, make_fleet(*targets))
    assert decision.chosen is not None
    assert decision.chosen.target.name == expected


def test_a_deadline_no_pool_can_meet_is_refused_with_the_reason() -> None:
    request = make_request(**TRAINING, deadline=NOW + timedelta(hours=2))
    decision = decide(request, COST_ONLY, make_fleet(A100, L4))
    assert decision.reason is Reason.NO_FEASIBLE_TARGET
    assert decision.message == (
        "0/2 targets fit: 1 cannot finish by 2026-11-22T14:00Z (a run takes 26.7h), "
        "1 cannot finish by 2026-11-22T14:00Z (a run takes 8.0h)"
    )


def test_the_explanation_shows_dollars_per_hour_and_per_job() -> None:
    decision = decide(make_request(**TRAINING), COST_ONLY, make_fleet(A100, L4))
    assert "$24/h, $192.00/job (8.0h a run)" in decision.message
    assert decision.chosen is not None
    assert decision.chosen.job_cost_usd == 192.0


def test_moving_the_data_every_run_counts_in_dollars() -> None:
    """800 GB from eu-west-1 to a cheaper pool in another region costs $72 a run at $0.09/GB."""
    far = pool(
        "a100-far", "eu-central-1", free=8, gpus_total=8, gpu_products=frozenset({"NVIDIA-A100"}), gpu_hour_usd=2.5
    )
    near = pool(
        "a100-near", "eu-west-1", free=8, gpus_total=8, gpu_products=frozenset({"NVIDIA-A100"}), gpu_hour_usd=3.0
    )
    request = make_request(**{**TRAINING, "data_size_gb": 800.0, "data_region": "eu-west-1"})
    decision = decide(request, COST_ONLY, make_fleet(far, near))
    by_name = {c.target.name: c.job_cost_usd for c in decision.candidates}
    assert by_name == {"a100-near": 192.0, "a100-far": 160.0 + 72.0}
    assert decision.chosen is not None
    assert decision.chosen.target.name == "a100-near"  # the cheaper hour loses to the data's move


def test_signals_can_say_how_fast_a_product_is() -> None:
    faster_l4 = make_signals(gpuThroughputByProduct={"L4": 0.5})  # 64/8/0.5 = 16 h at $8/h = $128 < $192
    decision = decide(make_request(**TRAINING), COST_ONLY, make_fleet(A100, L4, signals=faster_l4))
    assert decision.chosen is not None
    assert decision.chosen.target.name == "l4"


@pytest.mark.parametrize(
    "intent",
    [
        pytest.param({"deadline": "2026-11-23T06:00:00Z"}, id="a deadline without the work of a run"),
        pytest.param({"maxRuntimeMinutes": 60}, id="a maximum runtime without the work of a run"),
        pytest.param({"expectedGPUHours": 8, "deadline": "2026-11-23T06:00:00"}, id="a deadline without a zone"),
    ],
)
def test_intents_that_cannot_be_judged_are_refused(intent: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Intent.model_validate(intent)


def spot_a100(risk: float) -> Any:
    return pool(
        "a100-spot",
        "eu-west-1",
        free=8,
        gpus_total=8,
        gpu_products=frozenset({"NVIDIA-A100"}),
        gpu_hour_usd=1.8,
        spot=True,
        preemption_probability=risk,
    )


@pytest.mark.parametrize(
    ("checkpoint", "expected"),
    [
        pytest.param(10, "a100-spot", id="spot with a 10-minute checkpoint beats on-demand"),
        pytest.param(None, "a100", id="without checkpoints it does not: each preemption redoes half the run"),
    ],
)
def test_spot_is_priced_with_its_rework(checkpoint: int | None, expected: str) -> None:
    """8 h on eight A100s: on-demand $24/h = $192; spot $14.4/h with a 25%/h preemption risk: two preemptions
    expected, each redoing 5 minutes (+5 restart) with checkpoints ($14.4 x 8.33h = $120), or 4 hours without
    ($14.4 x 16.2h = $233)."""
    request = make_request(**TRAINING, checkpoint_interval_minutes=checkpoint)
    decision = decide(request, COST_ONLY, make_fleet(A100, spot_a100(0.25)))
    assert decision.chosen is not None
    assert decision.chosen.target.name == expected


URGENCY = [
    pytest.param(None, 100, id="no deadline: its own priority"),
    pytest.param(NOW + timedelta(hours=40), 100, id="a day or more of slack: no urgency"),
    pytest.param(NOW + timedelta(hours=20), 150, id="half a day of slack: half the bonus"),
    pytest.param(NOW + timedelta(hours=8), 200, id="no slack left: the whole bonus"),
    pytest.param(NOW + timedelta(hours=1), 200, id="already too late on reference GPUs: bounded all the same"),
]


@pytest.mark.parametrize(("deadline", "expected"), URGENCY)
def test_urgency_rises_as_the_deadline_comes_near(deadline: datetime | None, expected: int) -> None:
    from mlplacement.core.placement.engine import effective_priority

    request = make_request(**TRAINING, priority=100, deadline=deadline)  # 8 h a run on eight A100s
    assert effective_priority(request, NOW) == expected


def test_an_urgent_run_goes_before_older_work_of_its_priority_but_not_before_far_higher_priority() -> None:
    from mlplacement.core.placement import decide_many

    room_for_one = make_fleet(pool("a100", free=8, gpus_total=8, gpu_products=frozenset({"NVIDIA-A100"})))
    old = make_request(key="ns/old", gpus=8, priority=100, created=NOW - timedelta(hours=5))
    urgent = make_request(key="ns/urgent", **TRAINING, priority=100, deadline=NOW + timedelta(hours=9), created=NOW)
    placed = [d.request.key for d in decide_many([old, urgent], {None: COST_ONLY}, room_for_one) if d.placed]
    assert placed == ["ns/urgent"]
    vital = make_request(key="ns/vital", gpus=8, priority=250, created=NOW)
    placed = [d.request.key for d in decide_many([vital, urgent], {None: COST_ONLY}, room_for_one) if d.placed]
    assert placed == ["ns/vital"]  # urgency adds at most 100


def test_explain_shows_the_price_of_a_run_beside_the_price_of_an_hour() -> None:
    from mlplacement.core.explain import render_decision

    with_work = render_decision(decide(make_request(**TRAINING), COST_ONLY, make_fleet(A100, L4)))
    assert "$/JOB" in with_work
    assert "192.00" in with_work
    without = render_decision(decide(make_request(), COST_ONLY, make_fleet(A100, L4)))
    assert "$/JOB" not in without


# Inference sized on A100s: 2 replicas of 1 GPU. An L4 serves 0.3 of an A100's load per replica.
SERVING = {"type": WorkloadType.INFERENCE, "gpus": 1, "replicas": 2, "latency_target_ms": 1000.0}

SERVING_CHOICES = [
    pytest.param(
        {**SERVING},
        (A100, L4),
        "a100",
        id="inference goes where a served replica costs least ($3/h on A100s), not the cheaper hour ($3.33 on L4s)",
    ),
    pytest.param(
        {**SERVING},
        (A100, pool("l4", "eu-west-1", free=8, gpu_products=frozenset({"NVIDIA-L4"}), gpu_hour_usd=0.8)),
        "l4",
        id="an L4 cheap enough per served replica ($2.67/h) wins",
    ),
    pytest.param(
        {**SERVING, "reference_gpu_product": "NVIDIA-L4"},
        (A100, L4),
        "a100",
        id="sized on L4s, an A100 replica serves 3.3 of them: $0.90 against $1 per served replica",
    ),
    pytest.param(
        {**SERVING, "gpus": 0},
        (A100, L4),
        "a100",
        id="CPU inference is compared per hour (a tie broken by name)",
    ),
]


@pytest.mark.parametrize(("fields", "targets", "expected"), SERVING_CHOICES)
def test_where_inference_goes(fields: dict[str, Any], targets: tuple[Any, ...], expected: str) -> None:
    decision = decide(make_request(**fields), COST_ONLY, make_fleet(*targets))
    assert decision.chosen is not None
    assert decision.chosen.target.name == expected


def test_the_explanation_shows_dollars_per_hour_and_per_served_replica() -> None:
    decision = decide(make_request(**SERVING), COST_ONLY, make_fleet(A100, L4))
    assert "$6/h, $3.00/h per served replica" in decision.message
    served = {c.target.name: c.served_replica_usd for c in decision.candidates}
    assert served == {"a100": 3.0, "l4": pytest.approx(3.3333, abs=1e-4)}
