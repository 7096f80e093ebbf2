"""The compact protocol's renderings: lossless bundles (less bookkeeping), a shorter function list.

The reference model server reads the compact tables with its own decoder (components never
import each other): a contract test here pins the agent's encoder to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sara.agent import compact, loop, prompts, runtime
from sara.agent.events import Finished
from sara.modelserver import fhirdata


def bookkeeping_free(bundle: dict[str, Any]) -> dict[str, Any]:
    """What the compact form promises to keep: the Bundle less meta/id/self links/fullUrl/
    search and each resource less meta and text."""
    out = {k: v for k, v in bundle.items() if k not in ("id", "meta", "link", "entry")}
    links = [link for link in bundle.get("link", []) if link.get("relation") != "self"]
    if links:
        out["link"] = links
    entries = [
        {"resource": {k: v for k, v in e["resource"].items() if k not in ("meta", "text")}}
        for e in bundle.get("entry", [])
    ]
    if entries:
        out["entry"] = entries
    return out


def observation(i: int, value: float, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": str(i),
        "meta": {"versionId": "1", "lastUpdated": "2024-12-30T20:21:09.273+00:00"},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "K"}], "text": "K"},
        "subject": {"reference": "Patient/S1"},
        "effectiveDateTime": f"2023-11-0{i}T12:00:00+00:00",
        "valueQuantity": {"value": value, "unit": "mmol/L"},
        **extra,
    }


BUNDLE = {
    "resourceType": "Bundle",
    "id": "c530025c",
    "meta": {"lastUpdated": "2026-04-16T22:33:33.922+00:00"},
    "type": "searchset",
    "total": 3,
    "link": [
        {"relation": "self", "url": "http://h/fhir/Observation?code=K"},
        {"relation": "next", "url": "http://h/fhir?_getpages=x&_getpagesoffset=20"},
    ],
    "entry": [
        {"fullUrl": "http://h/fhir/Observation/1", "resource": observation(1, 3.1),
         "search": {"mode": "match"}},
        {"fullUrl": "http://h/fhir/Observation/2",
         "resource": observation(2, 4.0, issued="2023-11-02T13:00:00+00:00")},
        {"fullUrl": "http://h/fhir/Observation/3",
         "resource": observation(3, 3.1, text={"status": "generated"})},
    ],
}  # fmt: skip


def test_a_bundle_becomes_a_table_and_back() -> None:
    shown = compact.bundle(BUNDLE)
    assert shown["common"]["code.text"] == "K" and "id" in shown["columns"]
    assert shown["rows"][0][shown["columns"].index("issued")] is None
    assert shown["link"] == [BUNDLE["link"][1]]  # type: ignore[index]
    assert compact.expand(shown) == bookkeeping_free(BUNDLE)
    assert len(compact.dumps(shown)) < len(json.dumps(BUNDLE, indent=2)) / 3


def test_the_model_server_reads_the_table_as_the_agent_wrote_it() -> None:
    text = compact.render(json.dumps(BUNDLE))
    assert text is not None
    reply = fhirdata.parse_reply(f"Here is the response from the GET request:\n{text}. Please")
    assert reply.data == bookkeeping_free(BUNDLE)
    assert [o.value for o in fhirdata.observations([reply.data])] == [3.1, 4.0, 3.1]


@pytest.mark.parametrize(
    "name", ["patient_given.hapi.json", "patient_identifier.hapi.json", "obs_K_S6329521.hapi.json"]
)
def test_real_hapi_answers_round_trip(mab_dir: Path, name: str) -> None:
    original = json.loads((mab_dir / "hapi_samples" / name).read_text())
    text = compact.render(json.dumps(original))
    assert text is not None and len(text) < len(json.dumps(original, indent=2)) / 2
    assert compact.expand(json.loads(text)) == bookkeeping_free(original)
    assert fhirdata.expand_table(json.loads(text)) == bookkeeping_free(original)


def test_single_resources_and_other_json_stay_readable() -> None:
    assert compact.bundle({"resourceType": "Patient", "id": "S1", "meta": {}}) == {
        "resourceType": "Patient",
        "id": "S1",
    }
    assert compact.bundle([1, 2]) == [1, 2]
    assert compact.render("not json") is None
    one = {**BUNDLE, "entry": BUNDLE["entry"][:1]}  # type: ignore[index]
    assert compact.bundle(one)["entry"] == [
        {"resource": bookkeeping_free(one)["entry"][0]["resource"]}
    ]


def test_the_function_list_keeps_every_parameter_and_value_hint(mab_dir: Path) -> None:
    functions = json.loads((mab_dir / "funcs_v1.json").read_text())
    text = compact.functions(functions)
    assert len(text.splitlines()) == len(functions)
    assert len(text) < len(json.dumps(functions)) / 3
    for needle in (
        'status* (The status of the observation. Only a value of "final" is supported.)',
        'status* (The status of the medication request. Use "active")',
        'priority* (Use "stat")',
        'system (Use "http://hl7.org/fhir/observation-category")',
        "birthdate (The patient's date of birth in the format YYYY-MM-DD.)",
        "GET {api_base}/Observation Observation.Search (Labs) {code*",
    ):
        assert needle in text, needle
    for function in functions:  # every parameter name is there
        for name in function["parameters"].get("properties", {}):
            assert name in text


def test_the_compact_prompt_keeps_what_the_reference_policy_reads() -> None:
    rendered = prompts.render(
        "compact", api_base="http://h/fhir/", functions=[], context="C", question="Q?"
    )
    assert "Note that you should use http://h/fhir/ as the api_base." in rendered
    assert rendered.endswith("Context: C\nQuestion: Q?")


async def test_the_loop_shows_compact_answers_under_protocol_compact() -> None:
    def model(request: httpx.Request) -> httpx.Response:
        turns = len(json.loads(request.content)["messages"])
        text = (
            "GET http://fhir.test/fhir/Observation?patient=S1&code=K"
            if turns == 1
            else "FINISH([3.1])"
        )
        return httpx.Response(200, json={"choices": [{"message": {"content": text}}]})

    def fhir(request: httpx.Request) -> httpx.Response:
        assert str(request.url).endswith("code=K&_format=json")  # requests as the harness
        return httpx.Response(
            200,
            text=json.dumps(BUNDLE, indent=2),
            headers={"Content-Type": "application/fhir+json"},
        )

    config = loop.LoopConfig(
        api_base="http://fhir.test/fhir/", prompt="compact", protocol="compact"
    )
    agent = runtime.build_loop(
        config,
        model_url="http://model.test/v1",
        model="m",
        model_transport=httpx.MockTransport(model),
        fhir_transport=httpx.MockTransport(fhir),
    )
    async with agent:
        events = [e async for e in agent.run(loop.TaskSpec("q"))]
    final = events[-1]
    assert isinstance(final, Finished)
    answer = final.result.history[2]["content"]
    assert answer.startswith("Here is the response from the GET request:\n{")
    assert compact.dumps(compact.bundle(BUNDLE)) in answer
