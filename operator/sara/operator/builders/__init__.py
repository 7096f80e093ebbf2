"""Pure builders of every child of a ClinicalAgent: typed spec in, plain dicts out.

No client, environment, clock or logger in here; the ``kube`` module applies what these return.
"""

from __future__ import annotations

from typing import Any

from sara.operator import model
from sara.operator.builders import (
    agent,
    crd,
    hapi,
    meta,
    monitoring,
    netpol,
    reference,
    seed,
    vllm,
)
from sara.operator.model import ClinicalAgentSpec, Engine, FhirMode, Images, Names

__all__ = [
    "agent",
    "children",
    "crd",
    "hapi",
    "keep",
    "meta",
    "monitoring",
    "netpol",
    "reference",
    "retained",
    "seed",
    "vllm",
]


def children(
    spec: ClinicalAgentSpec,
    names: Names,
    images: Images,
    *,
    api_key: str,
    include_seed: bool = True,
) -> list[dict[str, Any]]:
    """Every child object, in apply order (config and storage before workloads)."""
    out: list[dict[str, Any]] = []
    if spec.model.engine is Engine.VLLM:
        out += vllm.children(spec, names, images)
    elif spec.model.engine is Engine.REFERENCE:
        out += reference.children(spec, names, images)
    if spec.fhir.mode is FhirMode.MANAGED:
        out += hapi.children(spec, names, images)
        if include_seed and model.seeds(spec):
            out.append(seed.job(spec, names, images))
    out += agent.children(spec, names, images, api_key)
    out += netpol.children(spec, names)
    out += monitoring.children(spec, names)
    return out


def keep(
    spec: ClinicalAgentSpec, names: Names, children: list[dict[str, Any]]
) -> set[tuple[str, str]]:
    """(kind, name) of every child to keep when pruning: those applied, and the seed Job."""
    out = {(c["kind"], c["metadata"]["name"]) for c in children}
    if model.seeds(spec):
        out.add(("Job", names.seed))
    return out


def retained(spec: ClinicalAgentSpec, names: Names) -> set[tuple[str, str]]:
    """(kind, name) of children that outlive their ClinicalAgent: adopted by no owner.

    The weights cache unless ``model.cache.deleteWithAgent``; the SQLite run store (task
    history, sign-offs) unless ``agent.store.sqlite.retainOnDelete`` is false.
    """
    out: set[tuple[str, str]] = set()
    if not spec.model.cache.delete_with_agent:
        out.add(("PersistentVolumeClaim", names.model_cache))
    if spec.agent.store.sqlite.retain_on_delete:
        out.add(("PersistentVolumeClaim", names.agent_runs))
    return out
