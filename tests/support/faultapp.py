"""Shared pieces of tests/faults: an agent app over real or injected edges, metric reads.

Every fault test is bounded (a pytest timeout, and the agent's own deadlines), talks only to
127.0.0.1, and proves one row of docs/faults.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from sara.agent import fakes
from sara.agent.api.app import create_app
from sara.agent.audit import AuditSink, MemoryAuditSink
from sara.agent.settings import AgentSettings

KEY = "fault-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MRN = "S6315806"
TASK = {"instruction": f"How many magnesium results does {MRN} have?", "context": "now"}


def agent_settings(**kw: Any) -> AgentSettings:
    base: dict[str, Any] = {
        "fhir_url": "http://fhir.test/fhir/",
        "model_url": "http://model.test/v1",
        "model": "fake-model",
        "api_keys": KEY,
        "model_max_retries": 3,
        "task_timeout_seconds": 30,
    }
    return AgentSettings(**{**base, **kw})


def agent_app(
    *,
    model: Callable[[httpx.Request], Any] | None = None,
    fhir: Callable[[httpx.Request], Any] | None = None,
    audit: AuditSink | None = None,
    real_model: bool = False,
    real_fhir: bool = False,
    **kw: Any,
) -> FastAPI:
    """The agent app; an edge is a real socket (``real_*``: the URL in the settings) or an
    ``httpx.MockTransport`` over a handler (the fakes by default)."""
    return create_app(
        agent_settings(**kw),
        model_transport=None if real_model else httpx.MockTransport(model or fakes.model_handler()),
        fhir_transport=None if real_fhir else httpx.MockTransport(fhir or fakes.fhir_handler()),
        audit=audit if audit is not None else MemoryAuditSink(),
    )


@contextlib.asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An ASGI client with the app's lifespan running (the run store is opened there)."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test", timeout=60
        ) as c,
    ):
        yield c


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from a Prometheus exposition, or None when it is absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None
