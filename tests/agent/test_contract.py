"""The OpenAPI document tells the truth: statuses, error bodies, media types, this server's limits
(the schemathesis run in tests/fuzz drives every operation; these pin what it found)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
from fastapi import FastAPI

from sara.agent import fakes
from sara.agent.api.app import create_app
from sara.agent.api.contract import ErrorBody
from sara.agent.audit import MemoryAuditSink
from sara.agent.settings import AgentSettings

KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}


def make_app(max_rounds: int = 8, store: Path = Path("unused.db")) -> FastAPI:
    return create_app(
        AgentSettings(
            fhir_url="http://fhir.test/fhir/",
            model_url="http://m.test/v1",
            api_keys=KEY,
            max_rounds=max_rounds,
            store=f"sqlite:///{store}",
        ),
        model_transport=httpx.MockTransport(fakes.model_handler()),
        fhir_transport=httpx.MockTransport(fakes.fhir_handler()),
        audit=MemoryAuditSink(),
    )


def _error_schema(document: dict[str, Any], path: str, method: str, status: str) -> Any:
    response = document["paths"][path][method]["responses"][status]
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def test_max_rounds_in_the_document_is_this_servers_limit() -> None:
    document = make_app(max_rounds=5).openapi()
    field = document["components"]["schemas"]["TaskOptions"]["properties"]["max_rounds"]
    assert [v.get("maximum") for v in field["anyOf"] if v.get("type") == "integer"] == [5]


def test_every_error_a_route_answers_is_documented_as_json() -> None:
    document = make_app().openapi()
    for path, method in [
        ("/v1/tasks", "post"),
        ("/v1/tasks/{task_id}/events", "get"),
        ("/v1/tasks/{task_id}:cancel", "post"),
        ("/v1/tasks/{task_id}/actions/{action_id}", "post"),
        ("/v1/me", "get"),
    ]:
        responses = document["paths"][path][method]["responses"]
        assert "401" in responses and "HTTPValidationError" not in str(responses), path
        assert responses["401"]["content"] == {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
        }
    events = document["paths"]["/v1/tasks/{task_id}/events"]["get"]["responses"]
    assert list(events["200"]["content"]) == ["text/event-stream"]
    created = document["paths"]["/v1/tasks"]["post"]["responses"]
    assert set(created["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"202", "400", "403", "408", "413", "422", "429"} <= set(created)


async def test_both_kinds_of_422_match_the_documented_error_body(tmp_path: Path) -> None:
    app = make_app(store=tmp_path / "runs.db")
    document = app.openapi()
    schema = _error_schema(document, "/v1/tasks", "post", "422")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            too_many = {"instruction": "q", "options": {"max_rounds": 9}}
            malformed = {"instruction": ""}
            for body in (too_many, malformed):
                r = await c.post("/v1/tasks", json=body, headers=AUTH)
                assert r.status_code == 422
                jsonschema.validate(r.json(), schema)
                ErrorBody.model_validate(r.json())
            json_type = {**AUTH, "Content-Type": "application/json"}
            r = await c.post("/v1/tasks", content=b"\xff", headers=json_type)  # not even UTF-8
            assert r.status_code == 400
            jsonschema.validate(r.json(), _error_schema(document, "/v1/tasks", "post", "400"))
            # without a JSON content type the body is validated as bytes: bytes that are not
            # UTF-8 made the error handler itself fail (a 500); the 422 echoes no input (PHI)
            r = await c.post("/v1/tasks", content=b"\xff\xfe", headers=AUTH)
            assert r.status_code == 422
            jsonschema.validate(r.json(), schema)
            assert "input" not in r.json()["detail"][0]
