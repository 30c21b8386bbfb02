"""CRD schemas as the apiserver applies them, for tests that validate objects without an apiserver."""

from typing import Any


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
