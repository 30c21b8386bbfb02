"""Data gravity in dollars (#32): what moving a run's data costs is said, counted when a run's length is known,
stated as left out when it is not, and the time it takes counts against a deadline."""

from __future__ import annotations

from datetime import timedelta

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import TargetKind, WorkloadType
from mlplacement.core.placement import decide_many
from tests.builders import make_fleet, make_request, make_signals, pool

COST_ONLY = PlacementPolicySpec.model_validate(
    {"weights": {"cost": 100, "latency": 0, "dataGravity": 0, "carbon": 0, "preemption": 0}}
)
GPU_POOL = frozenset({TargetKind.GPU_POOL})
# Local: $3.00/GPU-hour where the data is; far: $2.50 in us-east-1, 800 GB away at $0.09/GB ($72 a run).
LOCAL, FAR = pool("local", region="eu-west-1", gpu_hour_usd=3.0), pool("far", region="us-east-1", gpu_hour_usd=2.5)


def decide(snapshot: object = None, **request: object) -> object:
    fields = {"key": "team-a/train", "type": WorkloadType.TRAINING, "data_size_gb": 800.0, "allowed": GPU_POOL}
    (decision,) = decide_many(
        [make_request(**(fields | request))], {None: COST_ONLY}, snapshot or make_fleet(LOCAL, FAR)
    )
    return decision


def test_moving_the_data_is_said_in_dollars() -> None:
    decision = decide(snapshot=make_fleet(FAR), expected_gpu_hours=8.0, runtime_basis="stated")
    assert "moves 800 GB eu-west-1 -> us-east-1, $72.00 egress a run" in decision.message


def test_egress_decides_when_the_length_of_a_run_is_known() -> None:
    # 8 GPU-hours: local $24, far $20 + $72 of egress: the local pool is cheaper per run.
    decision = decide(expected_gpu_hours=8.0, runtime_basis="stated")
    assert decision.chosen.target.name == "local"
    assert "$24.00/job (8.0h a run, stated)" in decision.message


def test_without_a_run_length_hourly_prices_are_compared_and_that_is_said() -> None:
    decision = decide()
    assert decision.chosen.target.name == "far"
    assert "(compared per hour: no run length stated or learned)" in decision.message
    assert "moves 800 GB eu-west-1 -> us-east-1, $72.00 egress a run" in decision.message


def test_moving_the_data_counts_against_a_deadline() -> None:
    snapshot = make_fleet(FAR)
    # 8 h of work; 800 GB at the default 1 Gbit/s takes 1.8 h: a deadline 9 h away is missed.
    deadline = snapshot.now + timedelta(hours=9)
    missed = decide(snapshot=snapshot, expected_gpu_hours=8.0, deadline=deadline)
    assert missed.chosen is None
    assert "(a run takes 8.0h + 1.8h to move 800 GB)" in missed.message
    fast = make_fleet(FAR, signals=make_signals(bandwidthGbpsOverrides={"eu-west-1": {"us-east-1": 10}}))
    assert decide(snapshot=fast, expected_gpu_hours=8.0, deadline=deadline).chosen is not None


def test_data_in_its_own_region_moves_nowhere() -> None:
    decision = decide(snapshot=make_fleet(LOCAL), expected_gpu_hours=8.0)
    assert "moves" not in decision.message
