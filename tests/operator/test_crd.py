"""The CRD: generated from the model, valid, pinned copies, examples valid against its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sara.operator import model
from sara.operator.builders import crd

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))


def schema() -> dict[str, Any]:
    return crd.definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def as_jsonschema(node: Any) -> Any:
    """OpenAPI v3.0 (what CRDs use) as JSON Schema draft 4: ``nullable`` becomes a null type."""
    if isinstance(node, list):
        return [as_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def check(doc: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(as_jsonschema(schema())).validate(doc)


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        out += walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        out += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_crd_validates_as_a_kubernetes_object(validate: Any) -> None:
    validate(crd.definition())


def test_schema_is_structural_and_documented() -> None:
    spec = schema()["properties"]["spec"]
    for path, node in walk(spec, "spec"):
        assert "$ref" not in node and "anyOf" not in node and "$defs" not in node, path
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), path
        if "properties" in node:
            assert "additionalProperties" not in node, path
            for name, sub in node["properties"].items():
                assert sub.get("description"), f"{path}.{name} has no description"


def test_schema_carries_enums_defaults_and_ranges() -> None:
    props = schema()["properties"]["spec"]["properties"]
    m = props["model"]["properties"]
    assert m["engine"]["enum"] == ["vllm", "reference", "external"]
    assert m["engine"]["default"] == "vllm"
    assert m["vllm"]["properties"]["enablePrefixCaching"]["default"] is True
    gmu = m["vllm"]["properties"]["gpuMemoryUtilization"]
    assert gmu["exclusiveMinimum"] is True and gmu["maximum"] == 1
    assert m["replicas"]["minimum"] == 0
    assert m["cache"]["properties"]["size"]["x-kubernetes-int-or-string"] is True
    f = props["fhir"]["properties"]
    assert f["mode"]["enum"] == ["managed", "external"]
    assert f["managed"]["properties"]["preset"]["enum"] == ["synthetic", "medagentbench", "empty"]
    a = props["agent"]["properties"]
    assert a["writeMode"]["enum"] == ["acknowledge", "execute", "dry-run", "deny", "approve"]
    assert a["replicas"]["default"] == 1
    assert a["approvalTtlSeconds"] == {
        "default": 900,
        "description": a["approvalTtlSeconds"]["description"],
        "minimum": 1,
        "maximum": 86400,
        "type": "integer",
    }
    store = a["store"]["properties"]
    assert store["type"]["enum"] == ["sqlite", "postgresql"]
    assert store["type"]["default"] == "sqlite"
    assert store["sqlite"]["properties"]["size"]["default"] == "1Gi"
    assert store["postgresql"]["nullable"] is True
    assert store["postgresql"]["required"] == ["urlSecretRef"]
    retention = a["retention"]["properties"]
    assert retention["days"]["default"] == 30 and retention["maxTasks"]["default"] == 100000
    assert props["podDefaults"]["properties"]["securityContext"][
        "x-kubernetes-preserve-unknown-fields"
    ]


def test_crd_names_columns_and_status_subresource() -> None:
    d = crd.definition()
    assert d["metadata"]["name"] == "clinicalagents.clinical.sara.dev"
    assert d["spec"]["names"]["shortNames"] == ["cla"]
    [v] = d["spec"]["versions"]
    assert v["name"] == "v1alpha1" and v["subresources"] == {"status": {}}
    cols = {c["name"]: c.get("priority", 0) for c in v["additionalPrinterColumns"]}
    assert cols == {
        "Model": 0,
        "FHIR": 0,
        "Ready": 0,
        "Reason": 0,
        "Age": 0,
        "GPU": 1,
        "Replicas": 1,
        "Endpoint": 1,
    }


def test_manifest_and_chart_copies_equal_the_generated_crd() -> None:
    generated = crd.definition()
    manifest = yaml.safe_load((REPO / "manifests" / "crd.yaml").read_text())
    assert manifest == generated, "regenerate: sara operator crd > manifests/crd.yaml"
    chart_copy = REPO / "charts" / "sara" / "crds" / "clinicalagents.yaml"
    assert chart_copy.read_text() == (REPO / "manifests" / "crd.yaml").read_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate_against_the_crd_schema_and_the_model(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == model.API_VERSION and doc["kind"] == model.KIND
    check(doc)
    model.parse(doc["metadata"]["name"], doc["spec"])


def test_examples_cover_the_three_deployments() -> None:
    engines = {yaml.safe_load(p.read_text())["spec"]["model"]["engine"]: p.name for p in EXAMPLES}
    assert set(engines) == {"vllm", "reference", "external"}


def test_schema_accepts_explicit_nulls_where_the_model_does() -> None:
    doc = {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "metadata": {"name": "x"},
        "spec": {
            "model": {"uri": "hf://o/m", "vllm": {"maxModelLen": None}},
            "fhir": {"managed": {"seed": {"synthetic": None}}},
        },
    }
    check(doc)
    assert not model.seeds(model.parse("x", doc["spec"]))


def test_schema_rejects_what_the_model_rejects() -> None:
    bad = {
        "apiVersion": model.API_VERSION,
        "kind": model.KIND,
        "metadata": {"name": "x"},
        "spec": {"model": {"engine": "tgi", "replicas": -1}},
    }
    with pytest.raises(jsonschema.ValidationError):
        check(bad)


def test_docs_reference_lists_every_spec_field() -> None:
    docs = (REPO / "docs" / "operator.md").read_text()
    missing = []
    for path, _node in walk(schema()["properties"]["spec"], "spec"):
        container = path.endswith("[]") or "{}" in path  # items, map values: no own row
        if path != "spec" and not container and f"`{path}`" not in docs:
            missing.append(path)
    assert missing == [], "update the CRD reference table in docs/operator.md"
