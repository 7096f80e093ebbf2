"""The model and FHIR edges with injected transports: retries, errors, timeouts, redirects."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sara.agent import fakes
from sara.agent.audit import AuditRecord, open_sink, patient_reference
from sara.agent.errors import ContextLimitError, FhirError, ModelError
from sara.agent.fhir_client import FhirClient
from sara.agent.model_client import ModelClient

HISTORY = [
    {"role": "user", "content": "q"},
    {"role": "agent", "content": "GET x"},
    {"role": "user", "content": "r"},
]


def model(
    handler: Callable[[httpx.Request], httpx.Response], **kw: Any
) -> tuple[ModelClient, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = ModelClient(
        base_url="http://m.test/v1/",
        model="m",
        transport=httpx.MockTransport(handler),
        sleep=sleep,
        **kw,
    )
    return client, sleeps


async def test_request_shape_and_usage() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json=fakes.completion("FINISH([1])", prompt_tokens=7, completion_tokens=3)
        )

    client, _ = model(handle, api_key="secret", temperature=0.0, max_tokens=2048)
    out = await client.complete(HISTORY)
    assert (out.text, out.prompt_tokens, out.completion_tokens, out.attempts) == (
        "FINISH([1])",
        7,
        3,
        1,
    )
    (req,) = seen
    assert str(req.url) == "http://m.test/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer secret"
    body = json.loads(req.content)
    assert body["messages"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "GET x"},
        {"role": "user", "content": "r"},
    ]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("m", 0.0, 2048)
    await client.aclose()


async def test_retries_with_backoff_and_retry_after() -> None:
    replies: list[Any] = [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(429, headers={"retry-after": "30"}),
        httpx.Response(502),
        httpx.Response(200, json=fakes.completion("FINISH([])")),
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    client, sleeps = model(handle, max_retries=4, backoff=0.5, jitter=lambda: 0.5)
    out = await client.complete(HISTORY)
    assert out.text == "FINISH([])" and out.attempts == 5
    # exponential with (here pinned) full jitter; Retry-After honoured as given, capped at 8 s
    assert sleeps == [0.25, 0.5, 8.0, 2.0]
    await client.aclose()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            httpx.Response(400, json={"error": {"message": "prompt is too long: 9000 tokens"}}),
            ContextLimitError,
        ),
        (httpx.Response(400, json={"error": {"message": "bad temperature"}}), ModelError),
        (httpx.Response(401), ModelError),
        (httpx.Response(200, text="not json"), ModelError),
        (httpx.Response(200, json={"choices": []}), ModelError),
        (httpx.Response(500), ModelError),
    ],
)
async def test_failures(reply: httpx.Response, error: type[Exception]) -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return reply

    client, _ = model(handle, max_retries=1)
    with pytest.raises(error) as info:
        await client.complete(HISTORY)
    assert type(info.value) is error
    retried = reply.status_code == 500 or (reply.status_code == 200)  # 5xx and garbage bodies
    assert len(calls) == (2 if retried else 1)
    await client.aclose()


async def test_fhir_timeout_and_redirects() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    client = FhirClient(transport=httpx.MockTransport(slow), timeout=0.1)
    with pytest.raises(FhirError, match="timed out"):
        await client.get("http://f.test/fhir/Patient")
    await client.aclose()

    seen: list[str] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "http://evil.test/"})

    client = FhirClient(transport=httpx.MockTransport(redirect))
    reply = await client.get("http://f.test/fhir/Patient")
    assert reply.status == 302 and seen == ["http://f.test/fhir/Patient"]
    await client.aclose()


async def test_redirect_is_an_error_for_the_model(harness: Any, scripted: Any) -> None:
    from sara.agent.loop import TaskSpec

    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"location": "http://evil.test/"})

    h = harness(
        model=scripted("GET http://fhir.test:8080/fhir/Patient?name=x", "FINISH([])"), fhir=redirect
    )
    loop = h.loop()
    evs = [e async for e in loop.run(TaskSpec("q"))]
    await loop.aclose()
    assert len(h.fhir.requests) == 1
    assert (
        evs[-1]
        .result.history[2]["content"]
        .startswith(  # type: ignore[union-attr]
            "Error in sending the GET request: 301 redirect not followed"
        )
    )


def test_audit_file_sink_and_patient_reference(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "a" / "audit.jsonl"))
    record = AuditRecord("t", "id", 1, "local", "GET", "Patient", "Patient/S1", 200, 1.5, "ok")
    sink.write(record)
    sink.flush()
    sink.close()
    assert json.loads((tmp_path / "a" / "audit.jsonl").read_text()) == {
        "ts": "t",
        "task_id": "id",
        "round": 1,
        "caller": "local",
        "method": "GET",
        "resource_type": "Patient",
        "patient": "Patient/S1",
        "status": 200,
        "duration_ms": 1.5,
        "outcome": "ok",
    }
    base = "http://f/fhir/"
    assert patient_reference(f"{base}Observation?patient=S1&code=MG") == "Patient/S1"
    assert patient_reference(f"{base}Observation?subject=Patient/S2") == "Patient/S2"
    assert patient_reference(f"{base}Patient/S3") == "Patient/S3"
    assert patient_reference(f"{base}Patient?identifier=S4") == "Patient/S4"
    assert patient_reference(f"{base}Patient?name=x") is None
    assert patient_reference(None, {"subject": {"reference": "Patient/S5"}}) == "Patient/S5"


def test_the_request_body_is_json_even_with_what_utf8_cannot_carry() -> None:
    from sara.agent.model_client import request_body

    plain = {"model": "m", "messages": [{"role": "user", "content": "Mg 1.5 — low"}]}
    assert json.loads(request_body(plain)) == plain
    lone = {"model": "m", "messages": [{"role": "user", "content": "a\ud800b"}]}
    assert json.loads(request_body(lone)) == lone  # json's \ud800 escape, not a crash
