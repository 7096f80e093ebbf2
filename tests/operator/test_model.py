"""The typed ClinicalAgent spec: defaults, aliases and the cross-field rules."""

from __future__ import annotations

import pytest

from sara.operator import model


def test_defaults_of_an_almost_empty_vllm_spec() -> None:
    spec = model.parse("a", {"model": {"uri": "hf://org/m"}})
    assert spec.model.engine is model.Engine.VLLM
    assert spec.model.vllm.enable_prefix_caching is True
    assert spec.model.gpu.count == 1
    assert spec.fhir.mode is model.FhirMode.MANAGED
    assert spec.fhir.managed.preset is model.Preset.SYNTHETIC
    assert spec.fhir.managed.seed.synthetic == model.SyntheticSeed(patients=100, seed=1)
    assert spec.agent.max_rounds == 8
    assert spec.agent.replicas == 1  # the SQLite run store takes one replica
    assert spec.agent.store.type is model.StoreType.SQLITE
    assert spec.agent.store.sqlite.size == "1Gi" and spec.agent.store.sqlite.retain_on_delete
    assert spec.agent.approval_ttl_seconds == 900
    assert spec.agent.retention == model.Retention(days=30, max_tasks=100000)
    assert model.seeds(spec)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({}, "needs model.uri"),
        ({"model": {"engine": "vllm"}}, "needs model.uri"),
        ({"model": {"uri": "hf://o/m", "gpu": {"count": 0}}}, "gpu.count >= 1"),
        ({"model": {"uri": "hf://o/m", "replicas": 2}}, "cache.existingClaim"),
        ({"model": {"engine": "external"}}, "external.baseUrl"),
        ({"model": {"engine": "reference"}, "fhir": {"mode": "external"}}, "fhir.external"),
        ({"model": {"engine": "reference", "replicas": -1}}, "model.replicas"),
        ({"model": {"engine": "reference"}, "agent": {"writeMode": "yolo"}}, "agent.writeMode"),
        ({"model": {"engine": "reference", "unknown": 1}}, "model.unknown"),
        ({"model": {"uri": "s3://bucket/m"}}, "model.uri"),
        ({"model": {"uri": "hf://o/m", "vllm": {"gpuMemoryUtilization": 1.5}}}, "gpuMemory"),
        ({"model": {"uri": "hf://o/m", "vllm": {"extraArgs": ["--api-key=s"]}}}, "--api-key"),
        ({"model": {"uri": "hf://o/m", "vllm": {"extraArgs": ["--port", "9"]}}}, "--port"),
        ({"model": {"uri": "hf://o/m", "vllm": {"extraArgs": ["--model=x"]}}}, "model.uri"),
        (
            {"model": {"engine": "reference"}, "agent": {"replicas": 2}},
            "agent.replicas > 1 needs agent.store.type: postgresql",
        ),
        (
            {"model": {"engine": "reference"}, "agent": {"store": {"type": "postgresql"}}},
            "agent.store.postgresql.urlSecretRef",
        ),
        ({"model": {"engine": "reference"}, "agent": {"store": {"type": "mysql"}}}, "store.type"),
        ({"model": {"engine": "reference"}, "agent": {"approvalTtlSeconds": 0}}, "approvalTtl"),
        ({"model": {"engine": "reference"}, "agent": {"retention": {"days": -1}}}, "days"),
    ],
)
def test_invalid_specs_give_a_short_reason(spec: dict[str, object], needle: str) -> None:
    with pytest.raises(model.InvalidSpecError) as err:
        model.parse("ok", spec)
    assert needle in str(err.value)
    assert len(str(err.value)) < 400


def test_vllm_replicas_share_a_cache_only_through_an_existing_claim() -> None:
    shared = {"replicas": 2, "cache": {"existingClaim": "weights-rwx"}}
    assert model.parse("a", {"model": {"uri": "hf://o/m", **shared}}).model.replicas == 2
    assert model.parse("a", {"model": {"engine": "reference", "replicas": 3}}).model.replicas == 3


def test_agent_replicas_share_a_run_store_only_through_postgresql() -> None:
    pg = {"type": "postgresql", "postgresql": {"urlSecretRef": {"name": "db", "key": "url"}}}
    raw = {"model": {"engine": "reference"}, "agent": {"replicas": 4, "store": pg}}
    spec = model.parse("a", raw)
    assert spec.agent.replicas == 4 and spec.agent.store.type is model.StoreType.POSTGRESQL
    for replicas in (0, 1):  # scaled down or one writer: SQLite is fine
        model.parse("a", {"model": {"engine": "reference"}, "agent": {"replicas": replicas}})
    approve = model.parse(
        "a", {"model": {"engine": "reference"}, "agent": {"writeMode": "approve"}}
    )
    assert approve.agent.write_mode is model.WriteMode.APPROVE


@pytest.mark.parametrize("name", ["", "Upper", "a" * 46, "-a", "a_b"])
def test_names_must_keep_children_dns_labels(name: str) -> None:
    with pytest.raises(model.InvalidSpecError, match="DNS label"):
        model.parse(name, {"model": {"engine": "reference"}})


def test_urls_end_as_the_contracts_say() -> None:
    names = model.Names("w", "ns")
    spec = model.parse("w", {"model": {"engine": "reference"}})
    assert model.fhir_base_url(spec, names) == "http://w-fhir.ns.svc:8080/fhir/"
    assert model.model_base_url(spec, names) == "http://w-model.ns.svc:8000/v1"
    ext = model.parse(
        "w",
        {
            "model": {"engine": "external", "external": {"baseUrl": "https://llm.x/v1/"}},
            "fhir": {"mode": "external", "external": {"baseUrl": "https://fhir.x/R4"}},
        },
    )
    assert model.fhir_base_url(ext, names) == "https://fhir.x/R4/"
    assert model.model_base_url(ext, names) == "https://llm.x/v1"
    assert not model.seeds(ext)
