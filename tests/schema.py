"""CRD schemas as the apiserver applies them, for tests that validate objects without an apiserver."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st


def strict_fields(node: Any) -> Any:
    """Mimic the apiserver's strict field validation (kubectl's default): unknown fields are errors."""
    if isinstance(node, list):
        return [strict_fields(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict_fields(value) for key, value in node.items()}
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def documents(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against a CRD's structural OpenAPI schema (the subset CRDs use), for hypothesis.

    hypothesis-jsonschema would do this, but its releases do not run on the hypothesis this suite pins (it
    calls internals hypothesis removed), so this covers what our CRDs use: types, properties, required,
    additionalProperties, enum, pattern, lengths, bounds, item counts, int-or-string, preserve-unknown-fields.
    CEL rules (x-kubernetes-validations) are not applied: documents they would refuse reach the operator too.
    """
    if schema.get("x-kubernetes-int-or-string") or "anyOf" in schema:
        return st.one_of(st.integers(min_value=0, max_value=10**6), st.from_regex(r"\A[0-9]{1,3}%?\Z"))
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    kind = schema.get("type")
    if kind == "object":
        return _objects(schema)
    if kind == "array":
        items = documents(schema.get("items") or {})
        unique_by: Any = None
        if schema.get("x-kubernetes-list-type") == "map":
            keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
            unique_by = lambda item: tuple(str(item.get(k)) for k in keys)  # noqa: E731
        elif schema.get("x-kubernetes-list-type") == "set":
            unique_by = lambda item: repr(item)  # noqa: E731
        return st.lists(
            items,
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 4), 4),
            unique_by=unique_by,
        )
    if kind == "string":
        return _strings(schema)
    if kind == "integer":
        low = schema.get("minimum", -(2**31))
        if schema.get("exclusiveMinimum"):
            low += 1
        return st.integers(min_value=low, max_value=schema.get("maximum", 2**31))
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum"),
            max_value=schema.get("maximum"),
            exclude_min=bool(schema.get("exclusiveMinimum")),
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    # preserve-unknown-fields without a type: any small JSON value
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )


def _objects(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties") or {}
    if not properties:
        values = schema.get("additionalProperties")
        if isinstance(values, Mapping):
            return st.dictionaries(
                st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?\Z"),
                documents(values),
                max_size=min(schema.get("maxProperties", 3), 3),
            )
        return st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2)
    required = set(schema.get("required") or ())
    return st.fixed_dictionaries(
        {k: documents(v) for k, v in properties.items() if k in required},
        optional={k: documents(v) for k, v in properties.items() if k not in required},
    )


def _strings(schema: Mapping[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
    if schema.get("format") == "date-time":
        return st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
            lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    if "pattern" in schema:
        pattern = schema["pattern"]
        return st.from_regex(pattern, fullmatch=True).filter(
            lambda text: low <= len(text) <= schema.get("maxLength", 10**6)
        )
    return st.text(min_size=low, max_size=max(low, high))
