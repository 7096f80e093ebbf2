"""The agent API behind a real uvicorn on 127.0.0.1: live SSE and cancellation on disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from sara.agent import fakes, sse
from sara.agent.api.app import create_app
from sara.agent.audit import MemoryAuditSink
from sara.agent.settings import AgentSettings

KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


def gauge(service: Any, name: str) -> float | None:
    value: float | None = service.metrics.registry.get_sample_value(name)
    return value


@pytest.fixture
async def blocked_model() -> AsyncIterator[dict[str, Any]]:
    state: dict[str, Any] = {"calls": 0, "cancelled": 0, "entered": asyncio.Event()}

    async def model(request: httpx.Request) -> httpx.Response:
        state["calls"] += 1
        state["entered"].set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            state["cancelled"] += 1
            raise
        return httpx.Response(500)

    state["handler"] = model
    yield state


async def test_client_disconnect_cancels_the_task(blocked_model: dict[str, Any]) -> None:
    settings = AgentSettings(
        fhir_url="http://fhir.test/fhir/", model_url="http://m.test/v1", api_keys=KEY
    )
    app = create_app(
        settings,
        model_transport=httpx.MockTransport(blocked_model["handler"]),
        fhir_transport=httpx.MockTransport(fakes.fhir_handler()),
        audit=MemoryAuditSink(),
    )
    service = app.state.service
    server, task, url = await serve(app)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            async with c.stream(
                "POST",
                "/v1/tasks",
                json={"instruction": "q"},
                headers={**AUTH, "Accept": sse.MEDIA_TYPE},
            ) as r:
                assert r.status_code == 200
                task_id = r.headers["x-task-id"]
                first = await anext(r.aiter_text())
                assert "event: round_started" in first
                await asyncio.wait_for(blocked_model["entered"].wait(), 5)
                assert gauge(service, "sara_sse_streams_open") == 1
                assert service.gate.active == 1
            # the stream is closed: the server must notice, cancel the model call and clean up
            for _ in range(200):
                if blocked_model["cancelled"] and service.gate.active == 0:
                    break
                await asyncio.sleep(0.02)
            assert blocked_model["cancelled"] == 1
            assert service.gate.active == 0
            assert gauge(service, "sara_sse_streams_open") == 0
            assert gauge(service, "sara_tasks_in_flight") == 0
            stored = await service.runner.store.get(task_id)
            assert stored.status == "cancelled" and stored.reason == "client disconnected"

            # the same for a plain JSON request abandoned by its client
            blocked_model["entered"].clear()
            pending = asyncio.create_task(
                c.post("/v1/tasks", json={"instruction": "q"}, headers=AUTH)
            )
            await asyncio.wait_for(blocked_model["entered"].wait(), 5)
            pending.cancel()
            for _ in range(200):
                if blocked_model["cancelled"] == 2 and service.gate.active == 0:
                    break
                await asyncio.sleep(0.02)
            assert blocked_model["cancelled"] == 2 and service.gate.active == 0
            assert gauge(service, "sara_tasks_in_flight") == 0
    finally:
        server.should_exit = True
        await task


async def test_idle_streams_get_keepalive_comments() -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=fakes.completion("FINISH([7])"))

    settings = AgentSettings(
        fhir_url="http://fhir.test/fhir/",
        model_url="http://m.test/v1",
        api_keys=KEY,
        sse_keepalive_seconds=0.05,
    )
    app = create_app(
        settings,
        model_transport=httpx.MockTransport(slow),
        fhir_transport=httpx.MockTransport(fakes.fhir_handler()),
        audit=MemoryAuditSink(),
    )
    server, task, url = await serve(app)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            headers = {**AUTH, "Accept": sse.MEDIA_TYPE}
            async with c.stream(
                "POST", "/v1/tasks", json={"instruction": "q"}, headers=headers
            ) as r:
                text = ""
                async for chunk in r.aiter_text():
                    text += chunk
                    if text.count(": keep-alive") >= 3:
                        release.set()
            frames = list(sse.decode(text))
            assert [k for k, _ in frames] == ["round_started", "model_output", "finished"]
            assert frames[-1][1]["result"]["result"] == "[7]"
    finally:
        server.should_exit = True
        await task
