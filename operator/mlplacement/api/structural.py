"""The apiserver's rules for a CRD's OpenAPI v3 schema, as a checker that runs without an apiserver.

Kubernetes accepts only *structural* schemas (the "Specifying a structural schema" section of the
CustomResourceDefinition documentation, and the apiextensions validation it describes). A schema that
breaks one of these rules is refused at `kubectl apply` or `helm install`: this checker makes the same
mistake fail `mlplacement crds` and the test suite instead. Each problem names the JSON path and the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# Keywords of JSON Schema that apiextensions.k8s.io/v1 forbids outright (its validation's own words).
FORBIDDEN_KEYWORDS: Mapping[str, str] = {
    "patternProperties": "patternProperties is not supported",
    "dependencies": "dependencies is not supported",
    "additionalItems": "additionalItems is not supported",
    "$ref": "$ref is not supported",
    "definitions": "definitions is not supported",
    "$defs": "$defs is not a field of a CRD schema",
    "$schema": "$schema is not a field of a CRD schema",
    "propertyNames": "propertyNames is not a field of a CRD schema",
    "const": "const is not a field of a CRD schema (use enum)",
    "examples": "examples is not a field of a CRD schema (use example)",
    "if": "if/then/else is not a field of a CRD schema",
    "then": "if/then/else is not a field of a CRD schema",
    "else": "if/then/else is not a field of a CRD schema",
    "contains": "contains is not a field of a CRD schema",
    "prefixItems": "prefixItems is not a field of a CRD schema",
    "unevaluatedProperties": "unevaluatedProperties is not a field of a CRD schema",
}
TYPES = frozenset({"array", "boolean", "integer", "number", "object", "string"})
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# Inside a junctor only value validations may appear: never what shapes the structure.
NOT_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
LIST_TYPES = frozenset({"atomic", "set", "map"})
MAP_TYPES = frozenset({"atomic", "granular"})
# A regex over a map key whose length the schema cannot bound costs more than the per-rule CEL budget.
_KEY_REGEX = re.compile(r"self\.(all|exists|exists_one)\(\s*\w+\s*,.*\.matches\(")
# A rule that walks a map's entries is priced by how many the map may hold, times every list around it: without
# maxProperties the apiserver assumes a huge map (a map of 16 regions, unbounded, inside a pipeline's stage
# templates was priced 13.5 times over the budget and the CRD refused).
_ITERATES = re.compile(r"self\.(all|exists|exists_one|map|filter)\(")


def structural_problems(schema: Mapping[str, Any], path: str = "openAPIV3Schema") -> list[str]:
    """Every rule of a structural CRD schema that ``schema`` (an ``openAPIV3Schema``) breaks; empty if none."""
    problems = list(_node(schema, path, root=True))
    metadata = (schema.get("properties") or {}).get("metadata")
    if isinstance(metadata, Mapping):
        extra = set(metadata) - {"type", "properties", "description"}
        extra |= set(metadata.get("properties") or {}) - {"name", "generateName"}
        if extra:
            problems.append(
                f"{path}.properties[metadata]: only restrictions on metadata.name and metadata.generateName are "
                f"allowed (found {sorted(extra)})"
            )
    return problems


def _node(node: Any, path: str, root: bool = False, in_junctor: bool = False) -> Iterator[str]:
    if not isinstance(node, Mapping):
        yield f"{path}: must be a schema object"
        return
    for keyword, why in FORBIDDEN_KEYWORDS.items():
        if keyword in node:
            yield f"{path}.{keyword}: Forbidden: {why}"
    if node.get("uniqueItems") is True:
        yield f"{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true (quadratic)"
    if "x-kubernetes-preserve-unknown-fields" in node and node["x-kubernetes-preserve-unknown-fields"] is not True:
        yield f"{path}.x-kubernetes-preserve-unknown-fields: must be true or undefined"
    type_ = node.get("type")
    if type_ is not None and type_ not in TYPES:
        yield f"{path}.type: Unsupported value {type_!r} (null is written as nullable: true)"
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserved = node.get("x-kubernetes-preserve-unknown-fields") is True
    if not in_junctor and not type_ and not int_or_string and not preserved:
        yield f"{path}.type: Required value: must not be empty for specified object fields and array items"
    if int_or_string and type_:
        yield f"{path}.type: must be empty when x-kubernetes-int-or-string is true"
    if "properties" in node and "additionalProperties" in node:
        yield f"{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
    if node.get("additionalProperties") is False:
        yield f"{path}.additionalProperties: Forbidden: must not be false (unknown fields are pruned)"
    if type_ == "array" and "items" not in node and not in_junctor:
        yield f"{path}.items: Required value: must be specified"
    if isinstance(node.get("items"), list):
        yield f"{path}.items: Forbidden: items must be a schema object and not an array"
    for junctor in JUNCTORS:
        if junctor not in node:
            continue
        if junctor == "anyOf" and int_or_string and node[junctor] == INT_OR_STRING:
            continue
        branches = node[junctor] if isinstance(node[junctor], list) else [node[junctor]]
        for index, branch in enumerate(branches):
            for keyword in NOT_IN_JUNCTORS:
                if isinstance(branch, Mapping) and keyword in branch:
                    yield f"{path}.{junctor}[{index}].{keyword}: Forbidden: must not be set inside {junctor}"
            yield from _node(branch, f"{path}.{junctor}[{index}]", in_junctor=True)
    yield from _list_and_map_types(node, path)
    for index, rule in enumerate(node.get("x-kubernetes-validations") or []):
        text = rule.get("rule") if isinstance(rule, Mapping) else None
        if not isinstance(text, str) or not text.strip():
            yield f"{path}.x-kubernetes-validations[{index}].rule: Required value"
        elif _KEY_REGEX.search(text):
            yield (
                f"{path}.x-kubernetes-validations[{index}].rule: Forbidden: matches() over map keys of unbounded "
                "length exceeds the CEL cost budget"
            )
        elif _ITERATES.search(text) and "additionalProperties" in node and "maxProperties" not in node:
            yield (
                f"{path}.x-kubernetes-validations[{index}].rule: Forbidden: a rule over the entries of a map needs "
                "maxProperties on it (the estimated CEL cost of an unbounded map exceeds the budget)"
            )
    for name, child in (node.get("properties") or {}).items():
        yield from _node(child, f"{path}.properties[{name}]", in_junctor=in_junctor)
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from _node(node["additionalProperties"], f"{path}.additionalProperties", in_junctor=in_junctor)
    if isinstance(node.get("items"), Mapping):
        yield from _node(node["items"], f"{path}.items", in_junctor=in_junctor)


def _list_and_map_types(node: Mapping[str, Any], path: str) -> Iterator[str]:
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    found = node.get("items")
    items: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if list_type is not None:
        if node.get("type") != "array":
            yield f"{path}.x-kubernetes-list-type: must only be used on type array"
        if list_type not in LIST_TYPES:
            yield f"{path}.x-kubernetes-list-type: Unsupported value {list_type!r}"
        if (
            list_type == "set"
            and items.get("type") in ("object", "array")
            and items.get("x-kubernetes-map-type") != "atomic"
        ):
            yield f"{path}.items: a set's items must be scalars or atomic"
    if keys is not None and list_type != "map":
        yield f"{path}.x-kubernetes-list-map-keys: must only be used with x-kubernetes-list-type: map"
    if list_type == "map":
        if items.get("type") != "object":
            yield f"{path}.items.type: a list of type map must have items of type object"
        if not keys:
            yield f"{path}.x-kubernetes-list-map-keys: Required value: with x-kubernetes-list-type: map"
        properties = items.get("properties") or {}
        required = set(items.get("required") or [])
        for key in keys or []:
            field = properties.get(key)
            if field is None:
                yield f"{path}.x-kubernetes-list-map-keys: {key!r} is not a property of the items"
                continue
            if field.get("type") not in ("string", "integer", "number", "boolean"):
                yield f"{path}.items.properties[{key}].type: a list-map key must be a scalar"
            if key not in required and "default" not in field:
                yield f"{path}.items.properties[{key}]: a list-map key must be required or have a default"
    map_type = node.get("x-kubernetes-map-type")
    if map_type is not None and (map_type not in MAP_TYPES or node.get("type") != "object"):
        yield f"{path}.x-kubernetes-map-type: must be atomic or granular, on type object"
