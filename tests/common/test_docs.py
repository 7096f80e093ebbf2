"""/docs works without internet: every asset it loads comes from the app itself (no ReDoc)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sara.agent.api.app import create_app
from sara.agent.settings import AgentSettings
from sara.common.docs import offline_docs
from sara.modelserver.app import create_app as create_model_app
from sara.modelserver.settings import ModelServerSettings

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def agent_app() -> FastAPI:
    settings = AgentSettings(api_keys="k", fhir_url="http://fhir.test/fhir/")
    return create_app(settings)


def model_app() -> FastAPI:
    return create_model_app(ModelServerSettings())


@pytest.mark.parametrize("make", [agent_app, model_app], ids=["agent", "model"])
async def test_doc_pages_load_only_same_origin_assets(make: Any) -> None:
    app, page = make(), "/docs"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sara.test") as client:
        html = (await client.get(page)).text
        urls = [a or b for a, b in ASSET.findall(html)]
        assert urls, html
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            answer = await client.get(url)
            assert answer.status_code == 200, url
        assert "cdn." not in html and "fonts.googleapis" not in html
        assert '"validatorUrl": null' in html  # no spec sent to an online validator
        schema = (await client.get("/openapi.json")).json()
        assert schema["openapi"].startswith("3.1")
        assert (await client.get("/redoc")).status_code == 404  # its page fetches a CDN logo


async def test_swagger_ui_is_a_version_that_renders_openapi_3_1() -> None:
    app = agent_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sara.test") as client:
        bundle = (await client.get("/docs-assets/swagger-ui-bundle.js")).text
    assert bundle.startswith("/*! For license information") and len(bundle) > 500_000
    # Swagger UI 5 carries the OpenAPI 3.1 plugin; 4.x (e.g. swagger-ui-bundle 1.1.0's 4.15.5)
    # shows "Unable to render this definition" for FastAPI's 3.1 schema.
    assert "OAS31ComponentWrapper" in bundle


def test_refuses_an_app_that_still_has_cdn_pages() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        offline_docs(FastAPI())


async def test_agent_schema_declares_its_bearer_keys() -> None:
    transport = httpx.ASGITransport(app=agent_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sara.test") as client:
        schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An agent API key (SARA_AGENT_API_KEYS or --api-keys-file).",
    }
    assert schema["paths"]["/v1/tasks"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]
