"""Limits and abuse (issue 15, section 2): per-key rates and concurrency (429 + Retry-After), the
instruction limit (422), slow SSE clients, CORS, security headers, counted auth failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from sara.agent import fakes, sse
from sara.agent.api import headers as security
from sara.agent.api.app import create_app
from sara.agent.api.limits import Gate, RateLimit
from sara.agent.api.routes import _BoundedStream
from sara.agent.audit import MemoryAuditSink
from sara.agent.settings import AgentSettings

KEY, OTHER = "limits-key-number-one", "limits-key-number-two"
AUTH = {"Authorization": f"Bearer {KEY}"}
AUTH_OTHER = {"Authorization": f"Bearer {OTHER}"}
TASK = {"instruction": "How many results does S6315806 have?"}
ASYNC = {"Prefer": "respond-async"}


def make_app(model: Any = None, **kw: Any) -> FastAPI:
    base: dict[str, Any] = {
        "fhir_url": "http://fhir.test/fhir/",
        "model_url": "http://model.test/v1",
        "model": "fake-model",
        "api_keys": f"{KEY},{OTHER}",
        "model_max_retries": 0,
    }
    return create_app(
        AgentSettings(**{**base, **kw}),
        model_transport=httpx.MockTransport(model or fakes.model_handler()),
        fhir_transport=httpx.MockTransport(fakes.fhir_handler()),
        audit=MemoryAuditSink(),
    )


@contextlib.asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test"
        ) as c,
    ):
        yield c


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """``app`` behind a real uvicorn on 127.0.0.1 (an ephemeral port)."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def blocking_model() -> tuple[Any, asyncio.Event]:
    """A model that answers only once ``release`` is set (tasks stay running until then)."""
    release = asyncio.Event()

    async def model(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=fakes.completion("FINISH([1])"))

    return model, release


def sample(app: FastAPI, name: str, **labels: str) -> float:
    value = app.state.service.metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


# -- the building blocks ----------------------------------------------------------------------


def test_rate_limit_is_a_token_bucket_per_key() -> None:
    now = [0.0]
    limit = RateLimit(60, 3, clock=lambda: now[0])  # one a second, three at once
    assert [limit.take("a") for _ in range(3)] == [0, 0, 0]
    assert limit.take("a") == 1  # empty: the next token is due in a second
    assert limit.take("b") == 0  # another key has its own bucket
    now[0] += 1.0
    assert limit.take("a") == 0 and limit.take("a") == 1
    now[0] += 100.0  # refills up to the burst only
    assert [limit.take("a") for _ in range(4)] == [0, 0, 0, 1]
    slow = RateLimit(1, 1, clock=lambda: now[0])  # one a minute
    assert slow.take("a") == 0 and slow.take("a") == 60
    unlimited = RateLimit(0, 1)
    assert all(unlimited.take("a") == 0 for _ in range(1000))


def test_gate_counts_in_all_and_per_key() -> None:
    gate = Gate(3, per_key=2)
    assert gate.try_enter("a") and gate.try_enter("a")
    assert gate.refusal("a") == "key" and not gate.try_enter("a")
    assert gate.try_enter("b")
    assert gate.refusal("c") == "saturated" and not gate.try_enter("c")
    gate.enter("a")  # a resumed task enters regardless
    assert gate.active == 4 and gate.by_key == {"a": 3, "b": 1}
    for key in ("a", "a", "a", "b"):
        gate.leave(key)
    assert gate.active == 0 and gate.by_key == {}  # no entry left behind per key
    unlimited = Gate(0)
    assert all(unlimited.try_enter("a") for _ in range(1000))


def test_settings_refuse_a_wildcard_origin() -> None:
    for value in ("*", "https://*.example.org", "portal.example.org", "https://a.org/path"):
        with pytest.raises(ValidationError):
            AgentSettings(cors_origins=value)
    settings = AgentSettings(cors_origins=" https://portal.example.org/, http://localhost:3000")
    assert settings.cors_origin_list == ["https://portal.example.org", "http://localhost:3000"]
    assert AgentSettings().cors_origin_list == []


# -- rates and concurrency (429) ----------------------------------------------------------------


def assert_429(r: httpx.Response, words: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"
    retry = r.headers["retry-after"]
    assert retry.isdigit() and int(retry) >= 1
    assert words in r.json()["detail"], r.json()


async def test_task_creation_is_rate_limited_per_key() -> None:
    app = make_app(task_rate_per_minute=2, task_rate_burst=2)
    async with client(app) as c:
        for _ in range(2):
            assert (await c.post("/v1/tasks", json=TASK, headers=AUTH)).status_code == 200
        r = await c.post("/v1/tasks", json=TASK, headers=AUTH)
        assert_429(r, "at most 2 tasks a minute per API key")
        assert int(r.headers["retry-after"]) == 30  # one token per 30 s
        # another key is not held back by this one
        assert (await c.post("/v1/tasks", json=TASK, headers=AUTH_OTHER)).status_code == 200
    assert sample(app, "sara_api_rejected_total", reason="rate_tasks") == 1


async def test_decisions_are_rate_limited_per_key() -> None:
    app = make_app(decision_rate_per_minute=1, decision_rate_burst=1)
    decision = {"decision": "deny", "payload_sha256": "0" * 64}
    async with client(app) as c:
        url = "/v1/tasks/nosuchtask/actions/a1"
        assert (await c.post(url, json=decision, headers=AUTH)).status_code == 404
        assert_429(await c.post(url, json=decision, headers=AUTH), "decisions a minute")
        assert (await c.post(url, json=decision, headers=AUTH_OTHER)).status_code == 404


async def test_running_tasks_are_limited_per_key() -> None:
    model, release = blocking_model()
    app = make_app(model=model, max_tasks_per_key=2)
    service = app.state.service
    async with client(app) as c:
        for _ in range(2):
            r = await c.post("/v1/tasks", json=TASK, headers={**AUTH, **ASYNC})
            assert r.status_code == 202
        assert_429(
            await c.post("/v1/tasks", json=TASK, headers={**AUTH, **ASYNC}),
            "too many tasks open for this API key (at most 2 at once)",
        )
        r = await c.post("/v1/tasks", json=TASK, headers={**AUTH_OTHER, **ASYNC})
        assert r.status_code == 202  # the other key still may
        release.set()
        for _ in range(200):
            if service.gate.active == 0:
                break
            await asyncio.sleep(0.01)
        assert service.gate.active == 0 and service.gate.by_key == {}
        assert (await c.post("/v1/tasks", json=TASK, headers=AUTH)).status_code == 200
    assert sample(app, "sara_api_rejected_total", reason="key_tasks") == 1


async def test_instruction_size_is_limited_with_a_clear_message() -> None:
    app = make_app(max_instruction_chars=100)
    async with client(app) as c:
        r = await c.post("/v1/tasks", json={"instruction": "x" * 101}, headers=AUTH)
        assert r.status_code == 422
        assert r.json() == {
            "detail": "the instruction is 101 characters; this server accepts at most 100 "
            "(max_instruction_chars)"
        }
        assert (await c.post("/v1/tasks", json={"instruction": "x" * 100}, headers=AUTH)).is_success
        document = (await c.get("/openapi.json")).json()
    schema = document["components"]["schemas"]["TaskRequest"]["properties"]["instruction"]
    assert schema["maxLength"] == 100
    assert AgentSettings().max_instruction_chars == 8192


async def test_sse_streams_are_limited_per_key_and_freed_when_closed() -> None:
    model, release = blocking_model()
    app = make_app(model=model, max_streams_per_key=1)
    service = app.state.service
    async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        r = await c.post("/v1/tasks", json=TASK, headers={**AUTH, **ASYNC})
        events = f"/v1/tasks/{r.json()['id']}/events"
        async with c.stream("GET", events, headers=AUTH) as first:
            assert first.status_code == 200
            chunks = first.aiter_text()  # held: a dropped iterator closes the response
            assert "event: round_started" in await anext(chunks)
            assert_429(await c.get(events, headers=AUTH), "streams open for this API key")
            streamed = await c.post(
                "/v1/tasks", json=TASK, headers={**AUTH, "Accept": sse.MEDIA_TYPE}
            )
            assert_429(streamed, "streams open for this API key")  # no task was started
            assert service.gate.active == 1
        for _ in range(200):  # the closed stream's slot comes back
            if not service.streams.by_key:
                break
            await asyncio.sleep(0.01)
        assert service.streams.by_key == {}
        release.set()
        async with c.stream("GET", events, headers=AUTH) as again:
            assert again.status_code == 200
            text = "".join([chunk async for chunk in again.aiter_text()])
        assert "event: finished" in text
    assert sample(app, "sara_api_rejected_total", reason="key_streams") == 2


async def test_a_client_that_never_reads_is_dropped_after_the_send_timeout() -> None:
    # A raw socket sends its request and never reads. The server's writes fill the socket
    # buffers, then ``send`` waits for a drain that never comes: after the send timeout the
    # stream is dropped, its generator closed and its key's stream slot freed.
    app = make_app(sse_send_timeout_seconds=0.3, max_streams_per_key=1)
    service = app.state.service
    state = {"chunks": 0, "closed": False}

    async def flood() -> AsyncIterator[bytes]:
        try:
            while True:
                state["chunks"] += 1
                yield b": " + b"x" * 65536 + b"\n\n"
        finally:
            state["closed"] = True

    @app.get("/test-flood", include_in_schema=False)
    async def _flood() -> _BoundedStream:
        service.streams.enter("flood")
        return _BoundedStream(
            flood(), 60.0, service=service, key="flood", media_type=sse.MEDIA_TYPE
        )

    async with served(app) as url:
        port = int(url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            await asyncio.get_running_loop().sock_sendall(
                sock, b"GET /test-flood HTTP/1.1\r\nHost: agent.test\r\n\r\n"
            )
            for _ in range(500):
                if state["closed"]:
                    break
                await asyncio.sleep(0.01)
            assert state["closed"], state
            # bounded: what was produced is what the kernel and the transport buffer hold
            assert state["chunks"] < 1000
            assert service.streams.by_key == {}
            assert sample(app, "sara_sse_streams_dropped_total", reason="slow_client") == 1
            # the server is not blocked by it: others are answered at once
            async with httpx.AsyncClient(base_url=url, timeout=5) as c:
                assert (await c.get("/healthz")).status_code == 200
        finally:
            sock.close()


# -- browsers: CORS and security headers ----------------------------------------------------------

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


async def test_no_cors_by_default() -> None:
    async with client(make_app()) as c:
        origin = {"Origin": "https://evil.example"}
        r = await c.options("/v1/tasks", headers={**origin, **PREFLIGHT})
        assert "access-control-allow-origin" not in r.headers
        r = await c.get("/v1/me", headers={**AUTH, **origin})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_cors_allows_only_listed_origins() -> None:
    portal = "https://portal.example.org"
    async with client(make_app(cors_origins=portal)) as c:
        r = await c.options("/v1/tasks", headers={"Origin": portal, **PREFLIGHT})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == portal
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers  # bearer keys, no cookies
        r = await c.get("/v1/me", headers={**AUTH, "Origin": portal})
        assert r.headers["access-control-allow-origin"] == portal
        assert "retry-after" in r.headers["access-control-expose-headers"].lower()
        for other in ("https://evil.example", "https://portal.example.org.evil.example"):
            r = await c.options("/v1/tasks", headers={"Origin": other, **PREFLIGHT})
            assert "access-control-allow-origin" not in r.headers
            r = await c.get("/v1/me", headers={**AUTH, "Origin": other})
            assert "access-control-allow-origin" not in r.headers
            assert security.DEFAULT_CSP in r.headers["content-security-policy"]


def assert_secure(r: httpx.Response, *, cache: str | None = "no-store") -> None:
    h = r.headers
    assert h["x-content-type-options"] == "nosniff", r.url
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"
    assert h["cross-origin-opener-policy"] == "same-origin"
    assert h["permissions-policy"] == security.PERMISSIONS
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    if cache is not None:
        assert h["cache-control"] == cache, (r.url, h.get("cache-control"))
    assert "strict-transport-security" not in h


async def test_security_headers_on_every_response() -> None:
    model, release = blocking_model()
    app = make_app(model=model, max_body_bytes=1000, max_tasks_per_key=1)
    async with client(app) as c:
        for path in ("/v1/me", "/v1/tasks", "/v1/tasks/nosuch", "/openapi.json", "/healthz"):
            assert_secure(await c.get(path, headers=AUTH))
        assert_secure(await c.get("/v1/me"))  # 401
        assert_secure(await c.get("/no/such/path"))  # 404 from the router
        assert_secure(await c.post("/v1/tasks", content=b"x" * 2000, headers=AUTH))  # 413
        assert_secure(await c.post("/v1/tasks", json={}, headers=AUTH))  # 422
        r = await c.post("/v1/tasks", json=TASK, headers={**AUTH, **ASYNC})
        assert_secure(r)
        assert_secure(await c.post("/v1/tasks", json=TASK, headers={**AUTH, **ASYNC}))  # 429
        release.set()
        # the console keeps its own policy (scripts and styles from this origin) and no-cache
        for path in ("/", "/history", "/console/static/console.css"):
            page = await c.get(path)
            assert page.status_code == 200
            assert_secure(page, cache="no-cache")
            assert "script-src 'self'" in page.headers["content-security-policy"]
        docs = await c.get("/docs")
        assert_secure(docs)
        assert docs.headers["content-security-policy"] == security.DOCS_CSP
        assert (await c.get("/v1/me", headers=AUTH)).headers[
            "content-security-policy"
        ] == security.DEFAULT_CSP
    async with served(make_app()) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        headers = {**AUTH, "Accept": sse.MEDIA_TYPE}
        async with c.stream("POST", "/v1/tasks", json=TASK, headers=headers) as stream:
            assert_secure(stream, cache="no-cache")  # SSE's own
            assert stream.headers["content-type"].startswith(sse.MEDIA_TYPE)


async def test_hsts_only_when_configured() -> None:
    async with client(make_app(hsts_seconds=31536000)) as c:
        r = await c.get("/healthz")
        assert r.headers["strict-transport-security"] == "max-age=31536000"


# -- authentication failures --------------------------------------------------------------------


async def test_auth_failures_are_counted_and_logged_without_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-secret-d41d8cd98f00b204"
    reader = "reader-secret-e3b0c44298fc1c14"
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        f"- name: ward-reader\n  roles: [read]\n  key: {reader}\n"
        f"- name: runner\n  roles: [run, approve, read]\n  key: {KEY}\n"
    )
    app = make_app(api_keys="", api_keys_file=keys)
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        async with client(app) as c:
            assert (await c.post("/v1/tasks", json=TASK)).status_code == 401
            bad = {"Authorization": f"Bearer {wrong}"}
            assert (await c.post("/v1/tasks", json=TASK, headers=bad)).status_code == 401
            basic = {"Authorization": f"Basic {wrong}"}
            assert (await c.get("/v1/me", headers=basic)).status_code == 401
            read_only = {"Authorization": f"Bearer {reader}"}
            assert (await c.post("/v1/tasks", json=TASK, headers=read_only)).status_code == 403
    assert sample(app, "sara_api_auth_failures_total", reason="missing") == 1
    assert sample(app, "sara_api_auth_failures_total", reason="invalid") == 2
    assert sample(app, "sara_api_auth_failures_total", reason="forbidden") == 1
    failures = [e for e in logs if e["event"] == "auth_failed"]
    assert [(e["reason"], e["key"], e["route"]) for e in failures] == [
        ("missing", None, "/v1/tasks"),
        ("invalid", None, "/v1/tasks"),
        ("invalid", None, "/v1/me"),
        ("forbidden", "ward-reader", "/v1/tasks"),
    ]
    assert all(e["log_level"] == "warning" and e["client"] == "127.0.0.1" for e in failures)
    everything = json.dumps(logs, default=str) + caplog.text
    for secret in (wrong, reader, KEY):
        assert secret not in everything
    assert "Bearer" not in everything and "Basic" not in everything


async def test_a_bug_answers_500_in_the_error_body_with_the_security_headers() -> None:
    """Starlette's outermost handler answers an unexpected exception; the headers wrap even it."""
    app = make_app()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug, with PHI S1234567 in its message")

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://agent.test",
        ) as c,
    ):
        r = await c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error", "code": "internal"}
    assert "S1234567" not in r.text
    assert_secure(r)
