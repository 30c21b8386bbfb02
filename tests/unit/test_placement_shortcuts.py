"""The engine's shortcuts decide exactly what the long way decides.

A round skips target filters that cannot reject a workload, computes region verdicts once per distinct
region traits and non-cost scores once per distinct target traits. Each shortcut is only right while the
filters and scorers read no more than the shortcut's key: these properties fail when one starts to.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mlplacement.api.policy import PlacementPolicySpec
from mlplacement.api.workload import TargetKind
from mlplacement.core.placement.engine import make_context
from mlplacement.core.placement.filters import REGION_FILTERS, TARGET_FILTERS, region_traits, target_filters_for
from mlplacement.core.placement.scores import SCORERS, placement_traits
from tests.builders import make_fleet
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
