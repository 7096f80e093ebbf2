"""Pieces every part of the ClinicalAgent spec shares: the base model, Secret/ConfigMap
references, tolerations, resources (pure)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Quantity = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]
"""A Kubernetes resource quantity (``10Gi``, ``500m``, ``2``)."""

PRESERVE: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class SpecBase(BaseModel):
    """camelCase aliases, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=False,
    )


class SecretKeyRef(SpecBase):
    """A key of a Secret in the ClinicalAgent's namespace."""

    name: str = Field(description="Name of the Secret.", min_length=1, max_length=253)
    key: str = Field(description="Key inside the Secret.", min_length=1, max_length=253)


class ConfigMapKeyRef(SpecBase):
    """A key of a ConfigMap in the ClinicalAgent's namespace."""

    name: str = Field(description="Name of the ConfigMap.", min_length=1, max_length=253)
    key: str = Field("ca.crt", description="Key inside the ConfigMap.", min_length=1)


class Toleration(SpecBase):
    """A Kubernetes toleration (same fields as core/v1 Toleration)."""

    key: str | None = Field(None, description="Taint key; empty with Exists matches all.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="How long a NoExecute taint is tolerated."
    )


class Resources(SpecBase):
    """Container resource requests and limits (core/v1 ResourceRequirements)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Minimum resources, e.g. {cpu: 500m, memory: 1Gi}."
    )
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Maximum resources.")
