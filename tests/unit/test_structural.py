"""The apiserver's structural-schema rules, checked here so a bad CRD fails `make test`, not `helm install`."""

from typing import Any

import pytest

from mlplacement.api.crds import KINDS, render_all
from mlplacement.api.structural import structural_problems


def root(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}}


# The fragment every apiserver refused in the first real run (PlacementPolicy spec.residency.byDataRegion).
BY_DATA_REGION_AS_IT_WAS = {
    "type": "object",
    "maxProperties": 64,
    "patternProperties": {
        "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": {"type": "array", "items": {"type": "string"}, "maxItems": 64}
    },
}

BAD = [
    pytest.param(
        root(byDataRegion=BY_DATA_REGION_AS_IT_WAS),
        "patternProperties is not supported",
        id="patternProperties, as shipped first",
    ),
    pytest.param(
        root(a={"type": "object", "dependencies": {"x": ["y"]}}), "dependencies is not supported", id="dependencies"
    ),
    pytest.param(
        root(a={"type": "array", "items": {"type": "string"}, "additionalItems": False}),
        "additionalItems",
        id="additionalItems",
    ),
    pytest.param(root(a={"$ref": "#/definitions/X"}), "$ref is not supported", id="a $ref left in"),
    pytest.param(
        {**root(), "definitions": {"X": {"type": "string"}}}, "definitions is not supported", id="definitions"
    ),
    pytest.param(
        root(a={"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        "uniqueItems",
        id="uniqueItems true",
    ),
    pytest.param(
        root(a={"type": "object", "properties": {"b": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        "mutual exclusive",
        id="additionalProperties beside properties",
    ),
    pytest.param(
        root(a={"type": "object", "additionalProperties": False}), "must not be false", id="additionalProperties false"
    ),
    pytest.param(root(a={"description": "no type"}), "type: Required value", id="an untyped field"),
    pytest.param(
        root(a={"type": "array", "items": {"description": "no type"}}),
        "items.type: Required value",
        id="untyped array items",
    ),
    pytest.param(root(a={"type": "null"}), "nullable", id="type null"),
    pytest.param(root(a={"type": "array"}), "items: Required value", id="an array without items"),
    pytest.param(root(a={"type": "array", "items": [{"type": "string"}]}), "not an array", id="items as a tuple"),
    pytest.param(
        root(a={"type": "string", "anyOf": [{"type": "string", "maxLength": 3}, {"pattern": "x"}]}),
        "anyOf[0].type: Forbidden",
        id="a type inside anyOf",
    ),
    pytest.param(
        root(
            a={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "properties": {"type": {"type": "string"}}},
            }
        ),
        "must be required or have a default",
        id="a list-map key neither required nor defaulted",
    ),
    pytest.param(
        root(a={"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object", "properties": {}}}),
        "list-map-keys: Required value",
        id="a list-map without keys",
    ),
    pytest.param(
        root(a={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object", "properties": {}}}),
        "set's items must be scalars",
        id="a set of objects",
    ),
    pytest.param(
        root(a={"type": "object", "x-kubernetes-preserve-unknown-fields": False}),
        "must be true",
        id="preserve-unknown-fields false",
    ),
    pytest.param(
        root(a={"type": "string", "x-kubernetes-int-or-string": True}), "must be empty", id="int-or-string with a type"
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}},
        },
        "only restrictions on metadata.name",
        id="restrictions on metadata.labels",
    ),
    pytest.param(
        root(
            a={
                "type": "object",
                "additionalProperties": {"type": "string"},
                "x-kubernetes-validations": [{"rule": "self.all(k, k.matches('^a$'))"}],
            }
        ),
        "CEL cost budget",
        id="a regex over map keys",
    ),
    pytest.param(
        root(
            a={
                "type": "object",
                "additionalProperties": {"type": "number"},
                "x-kubernetes-validations": [{"rule": "self.all(k, size(k) <= 63)"}],
            }
        ),
        "needs maxProperties",
        id="a rule over the entries of an unbounded map (intent.requestsFrom as first written)",
    ),
    pytest.param(
        root(a={"type": "string", "propertyNames": {"maxLength": 3}}), "propertyNames", id="JSON Schema propertyNames"
    ),
]


@pytest.mark.parametrize(("schema", "problem"), BAD)
def test_the_apiserver_would_refuse(schema: dict[str, Any], problem: str) -> None:
    problems = structural_problems(schema)
    assert any(problem in p for p in problems), problems


GOOD = [
    pytest.param(
        root(q={"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
        id="a quantity: int-or-string",
    ),
    pytest.param(
        root(kopf={"type": "object", "x-kubernetes-preserve-unknown-fields": True}), id="preserved, untyped contents"
    ),
    pytest.param(
        root(
            conditions={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
            }
        ),
        id="conditions as a list-map keyed by type",
    ),
    pytest.param(
        root(
            tags={
                "type": "object",
                "additionalProperties": {"type": "string"},
                "maxProperties": 32,
                "x-kubernetes-validations": [{"rule": "self.all(k, size(k) <= 63)"}],
            }
        ),
        id="a bounded map with a key-length rule",
    ),
]


@pytest.mark.parametrize("schema", GOOD)
def test_the_apiserver_would_accept(schema: dict[str, Any]) -> None:
    assert structural_problems(schema) == []


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind.value)
def test_every_generated_crd_is_structural(info: Any) -> None:
    crd = render_all()[f"mlplacement.io_{info.plural}.yaml"]
    assert structural_problems(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]) == []


def test_by_data_region_is_a_map_of_region_lists_without_pattern_properties() -> None:
    schema = render_all()["mlplacement.io_placementpolicies.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    by_region = schema["properties"]["spec"]["properties"]["residency"]["properties"]["byDataRegion"]
    assert "patternProperties" not in by_region
    assert by_region["additionalProperties"]["type"] == "array"


def test_the_checker_refuses_the_placement_policy_crd_as_first_shipped() -> None:
    as_shipped = root(residency={"type": "object", "properties": {"byDataRegion": BY_DATA_REGION_AS_IT_WAS}})
    (problem,) = structural_problems(as_shipped)
    assert problem == (
        "openAPIV3Schema.properties[spec].properties[residency].properties[byDataRegion].patternProperties: "
        "Forbidden: patternProperties is not supported"
    )
