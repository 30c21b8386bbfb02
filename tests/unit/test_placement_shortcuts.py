"""The engine's shortcuts decide exactly what the long way decides.

A round skips target filters that cannot reject a workload, computes region verdicts once per distinct
region traits and non-cost scores once per distinct target traits. Each shortcut is only right while the
filters and scorers read no more than the shortcut's key: these properties fail when one starts to.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import SpotPreference, TargetKind, WorkloadType
from mlplacement.core.placement import PlacementRequest
from mlplacement.core.placement.engine import make_context
from mlplacement.core.placement.filters import (
    FREE_DEPENDENT,
    REGION_FILTERS,
    TARGET_FILTERS,
    region_traits,
    static_traits,
    target_filters_for,
)
from mlplacement.core.placement.scores import SCORERS, placement_traits
from tests.builders import edge, make_fleet, make_request, pool, workspace
from tests.unit.test_placement import ANY_REQUEST, PRODUCTS, REGIONS, requests, targets

POLICIES = st.sampled_from(
    [
        PlacementPolicySpec(),
        PlacementPolicySpec.model_validate({"budget": {"maxHourlyCostUSDPerWorkload": 6}}),
        PlacementPolicySpec.model_validate({"spot": {"minPriorityForOnDemandOnly": 500}}),
    ]
)


def first_failure(checks: Any, *args: Any) -> str | None:
    return next((reason for check in checks if (reason := check(*args)) is not None), None)


@settings(max_examples=300, deadline=None)
@given(
    request=ANY_REQUEST,
    fleet=st.lists(targets(), min_size=1, max_size=6),
    free=st.integers(0, 16),
    policy=POLICIES,
    stale=st.booleans(),
)
def test_property_skipped_target_filters_never_change_the_verdict(
    request: Any, fleet: list[Any], free: int, policy: PlacementPolicySpec, stale: bool
) -> None:
    snapshot = make_fleet(*fleet)
    if stale:
        snapshot = replace(snapshot, signals=None)
    context = make_context(request, policy, snapshot)
    for target in snapshot.targets:
        args = (request, target, free, context)
        assert first_failure(target_filters_for(request, target.kind, context), *args) == first_failure(
            TARGET_FILTERS, *args
        )


@settings(max_examples=200, deadline=None)
@given(
    target=targets(),
    other=st.fixed_dictionaries(
        {
            "name": st.text("xyz", min_size=1, max_size=4),
            "capacity": st.integers(0, 64),
            "gpus_total": st.integers(0, 64),
            "gpu_hour_usd": st.floats(0.1, 9),
            "base_hour_usd": st.floats(0, 3),
            "gpu_products": st.frozensets(st.sampled_from(PRODUCTS), max_size=2),
            "healthy": st.booleans(),
        }
    ),
    request=requests(),
)
def test_property_targets_alike_in_traits_score_alike_on_everything_but_cost(
    target: Any, other: dict[str, Any], request: Any
) -> None:
    twin = replace(target, **other)
    assert placement_traits(twin) == placement_traits(target)
    context = make_context(request, PlacementPolicySpec(), make_fleet(target, twin))
    for name, scorer in SCORERS:
        if name != "cost":
            assert scorer(request, twin, 1.0, context) == scorer(request, target, 1.0, context), name


@settings(max_examples=200, deadline=None)
@given(first=requests(), second=requests(), policy=POLICIES)
def test_property_requests_alike_in_region_traits_get_the_same_region_verdicts(
    first: Any, second: Any, policy: PlacementPolicySpec
) -> None:
    second = replace(second, data_region=first.data_region, latency_target_ms=first.latency_target_ms)
    assert region_traits(first) == region_traits(second)
    snapshot = make_fleet()
    one, two = make_context(first, policy, snapshot), make_context(second, policy, snapshot)
    for kind in TargetKind:
        for region in REGIONS:
            assert first_failure(REGION_FILTERS, first, kind, region, one) == first_failure(
                REGION_FILTERS, second, kind, region, two
            )


# A request's fields (but its key): the second request of a pair takes a random few of them from a third.
FIELDS = sorted(f.name for f in dataclasses.fields(PlacementRequest) if f.init and f.name != "key")


@settings(max_examples=600, deadline=None)
@given(
    first=ANY_REQUEST,
    other=ANY_REQUEST,
    taken=st.sets(st.sampled_from(FIELDS), min_size=1, max_size=2),
    fleet=st.lists(targets(), min_size=1, max_size=6),
    policy=POLICIES,
)
def test_property_requests_alike_in_static_traits_get_the_same_verdict_on_every_target(
    first: Any, other: Any, taken: set[str], fleet: list[Any], policy: PlacementPolicySpec
) -> None:
    second = replace(first, key="ns/second", **{name: getattr(other, name) for name in taken})
    assert_alike_means_same_verdicts(first, second, make_fleet(*fleet), policy)


def assert_alike_means_same_verdicts(first: Any, second: Any, snapshot: Any, policy: PlacementPolicySpec) -> None:
    """For every kind: equal static traits must mean the same verdict from those filters on every target."""
    one, two = make_context(first, policy, snapshot), make_context(second, policy, snapshot)
    for kind in TargetKind:
        checks = tuple(f for f in target_filters_for(first, kind, one) if f not in FREE_DEPENDENT)
        if static_traits(first, kind, checks, one) != static_traits(second, kind, checks, two):
            continue
        for target in snapshot.by_kind.get(kind, ()):
            verdicts = {first_failure(checks, r, target, 0, c) for r, c in ((first, one), (second, two))}
            assert len(verdicts) == 1, (first.key, second.key, kind, target.name)


@settings(max_examples=200, deadline=None)
@given(request=ANY_REQUEST, fleet=st.lists(targets(), min_size=1, max_size=6), policy=POLICIES)
def test_property_a_request_is_alike_to_its_copy_with_another_name_priority_and_age(
    request: Any, fleet: list[Any], policy: PlacementPolicySpec
) -> None:
    # What makes the memo pay: names, ages and (without a spot floor) priorities never split the traits.
    twin = replace(request, key="other/name", priority=request.priority + 1, created=None)
    snapshot = make_fleet(*fleet)
    one, two = make_context(request, policy, snapshot), make_context(twin, policy, snapshot)
    if policy.spot.min_priority_for_on_demand_only is None:
        for kind in TargetKind:
            checks = tuple(f for f in target_filters_for(request, kind, one) if f not in FREE_DEPENDENT)
            assert static_traits(request, kind, checks, one) == static_traits(twin, kind, checks, two)


VARIED = [
    make_request(key="ns/plain"),
    make_request(key="ns/a100", gpu_product="NVIDIA-A100", gpus=4),
    make_request(key="ns/l4-pair", gpu_product="NVIDIA-L4", gpus=2, spot=SpotPreference.NEVER, priority=900),
    make_request(
        key="ns/realtime",
        type=WorkloadType.INFERENCE,
        latency_target_ms=30.0,
        data_region="eu-central-1",
        model_size_gb=3.0,
        replicas=2,
    ),
    make_request(
        key="ns/due",
        type=WorkloadType.TRAINING,
        gpus=8,
        expected_gpu_hours=64.0,
        deadline=datetime(2026, 11, 22, 20, 0, tzinfo=UTC),
        checkpoint_interval_minutes=10,
        avoid=frozenset({("GPUPool", "a100")}),
    ),
]
EVERY_KIND_OF_TARGET = [
    pool("a100", free=8, gpus_total=8),
    pool("l4", free=8, gpus_total=16, gpu_products=frozenset({"NVIDIA-L4"})),
    pool("spot", free=8, spot=True, preemption_probability=0.1, gpu_products=frozenset({"NVIDIA-L4"})),
    pool("sick", healthy=False),
    edge("edge-near", free=2, rtt_ms=5.0, max_model_size_gb=4.0),
    edge("edge-far", free=2, rtt_ms=400.0, max_model_size_gb=4.0),
    edge("edge-small", free=2, max_model_size_gb=1.0),
    workspace("dbx"),
]


@pytest.mark.parametrize("policy", [PlacementPolicySpec.model_validate({"spot": {"minPriorityForOnDemandOnly": 500}})])
def test_every_field_a_static_filter_reads_is_in_its_traits(policy: PlacementPolicySpec) -> None:
    # Each request with each field taken from each other request: equal traits must mean equal verdicts.
    snapshot = make_fleet(*EVERY_KIND_OF_TARGET)
    for base in VARIED:
        for other in VARIED:
            for name in FIELDS:
                twin = replace(base, key=f"ns/twin-with-{name}", **{name: getattr(other, name)})
                assert_alike_means_same_verdicts(base, twin, snapshot, policy)
