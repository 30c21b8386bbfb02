"""Shared model machinery: camelCase on the wire, snake_case in Python, strict specs."""

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Bounds the apiserver needs to estimate CEL cost, and that keep one object from exhausting memory.
NAME_MAX = 253
SHORT_TEXT_MAX = 256
LONG_TEXT_MAX = 4096
LIST_MAX = 64

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
REGION_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=DNS_SUBDOMAIN_PATTERN)]
Region = Annotated[str, Field(min_length=1, max_length=63, pattern=REGION_PATTERN)]
ShortText = Annotated[str, Field(max_length=SHORT_TEXT_MAX)]


_ACRONYMS = (("Usd", "USD"), ("Gb", "GB"), ("Kwh", "KWh"), ("Gpus", "GPUs"), ("Gpu", "GPU"))


def wire_name(python_name: str) -> str:
    """snake_case -> the camelCase Kubernetes users expect, with units spelled as units (sizeGB, costUSD)."""
    name = to_camel(python_name)
    for camel, unit in _ACRONYMS:
        name = re.sub(rf"(?<=[a-z]){camel}(?=[A-Z]|$)", unit, name)
    return name


def preserve_unknown(description: str) -> dict[str, Any]:
    """Schema extra for a free-form object the apiserver must keep as is (a passthrough to another API)."""
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "description": description}


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """Schema extra carrying CEL rules as (rule, message) pairs; mirrored by a pydantic validator."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


class WireModel(BaseModel):
    """Base of every spec model: camelCase aliases and unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=wire_name,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """Serialise as the apiserver stores it: camelCase, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(BaseModel):
    """Base of status models: tolerant of fields written by newer operators or by kopf."""

    model_config = ConfigDict(
        alias_generator=wire_name,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: Annotated[str, Field(max_length=316)]
    status: ConditionStatus
    observed_generation: Annotated[int | None, Field(ge=0)] = None
    last_transition_time: datetime
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=REASON_PATTERN)]
    message: Annotated[str, Field(max_length=32768)] = ""


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class SecretKeyRef(WireModel):
    """A key of a Secret in the operator's namespace."""

    name: Name
    key: Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=r"^[-._a-zA-Z0-9]+$")]


class ObjectMeta(BaseModel):
    """The parts of metadata the operator reads; everything else passes through untouched."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None  # noqa: N815 - Kubernetes' own field name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(BaseModel):
    """Common envelope of every mlplacement kind."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["mlplacement.io/v1alpha1"] = Field(default="mlplacement.io/v1alpha1", alias="apiVersion")
    metadata: ObjectMeta
