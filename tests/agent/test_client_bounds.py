"""Hostile answers on the outbound edges: gzip bombs, trickled bodies, huge or odd model JSON.

Bodies are async streams, as a real network delivers them (an in-memory ``content=`` body is
read and inflated by httpx itself before the client sees it).
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from sara.agent import fakes
from sara.agent.errors import FhirError, ModelError
from sara.agent.fhir_client import KEEPALIVE_SECONDS, FhirClient
from sara.agent.model_client import ModelClient

MIB = 1024 * 1024


def gzipped(size: int, layers: int = 1) -> bytes:
    """``size`` zero bytes gzip-compressed ``layers`` times (64 MiB → about 64 KiB)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zero = bytes(MIB)
    data = b"".join(z.compress(zero) for _ in range(size // MIB)) + z.flush()
    for _ in range(layers - 1):
        z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        data = z.compress(data) + z.flush()
    return data


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def trickle() -> AsyncIterator[bytes]:
    while True:  # a byte now and then, never the end: no single read ever times out
        await asyncio.sleep(0.02)
        yield b" "


def streamed(body: Callable[[], AsyncIterator[bytes]], **headers: str) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=body())

    return httpx.MockTransport(handle)


async def peak_bytes(call: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = await call
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_fhir_gzip_bomb_is_inflated_only_up_to_the_cap() -> None:
    bomb = gzipped(64 * MIB)
    client = FhirClient(
        transport=streamed(lambda: chunks(bomb), **{"content-encoding": "gzip"}),
        max_response_bytes=MIB,
    )
    reply, peak = await peak_bytes(client.get("http://f.test/fhir/Patient"))
    await client.aclose()
    assert reply.truncated and reply.size == MIB
    assert peak < 16 * MIB  # httpx alone inflates each 64 KiB chunk whole: 64 MiB


async def test_fhir_stacked_or_unknown_encodings_are_errors() -> None:
    for encoding, body in (("gzip, gzip", gzipped(64 * MIB, layers=2)), ("br", b"x")):
        client = FhirClient(
            transport=streamed(lambda: chunks(body), **{"content-encoding": encoding})  # noqa: B023
        )
        with pytest.raises(FhirError, match="DecodingError"):
            await client.get("http://f.test/fhir/Patient")
        await client.aclose()


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
async def test_fhir_deflate_with_or_without_zlib_header(wbits: int) -> None:
    z = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = z.compress(b'{"resourceType": "Bundle"}') + z.flush()
    client = FhirClient(
        transport=streamed(lambda: chunks(body, 3), **{"content-encoding": "deflate"})
    )
    reply = await client.get("http://f.test/fhir/Patient")
    await client.aclose()
    assert reply.text == '{"resourceType": "Bundle"}' and not reply.truncated


async def test_fhir_trickled_body_times_out_as_a_whole() -> None:
    client = FhirClient(transport=streamed(trickle), timeout=0.3)
    with pytest.raises(FhirError, match="timed out"):
        await asyncio.wait_for(client.get("http://f.test/fhir/Patient"), 5)
    await client.aclose()


@pytest.mark.parametrize("charset", ["bogus", "zlib", "idna", "punycode"])
async def test_fhir_odd_charset_falls_back_to_utf8(charset: str) -> None:
    body = '{"name": "Zoë"}'.encode()
    client = FhirClient(
        transport=streamed(
            lambda: chunks(body), **{"content-type": f"application/fhir+json; charset={charset}"}
        )
    )
    reply = await client.get("http://f.test/fhir/Patient")  # raised LookupError/UnicodeError
    await client.aclose()
    assert reply.text == '{"name": "Zoë"}'


def model(transport: httpx.MockTransport, **kw: Any) -> ModelClient:
    async def sleep(seconds: float) -> None:
        pass

    return ModelClient(
        base_url="http://m.test/v1", model="m", transport=transport, sleep=sleep, **kw
    )


HISTORY = [{"role": "user", "content": "q"}]


async def test_model_trickled_body_times_out_and_is_retried() -> None:
    client = model(streamed(trickle), timeout=0.2, max_retries=1)
    with pytest.raises(ModelError, match=r"timed out \(no answer within 0.2 s\) after 2 tries"):
        await asyncio.wait_for(client.complete(HISTORY), 5)
    await client.aclose()


async def test_model_answer_is_bounded_in_size() -> None:
    bomb = gzipped(64 * MIB)
    client = model(streamed(lambda: chunks(bomb), **{"content-encoding": "gzip"}))
    with pytest.raises(ModelError, match="exceeds"):
        await client.complete(HISTORY)
    await client.aclose()


@pytest.mark.parametrize(
    "usage",
    # a string crashed the loop (AttributeError), -3 the metrics counter, 1e400 int()
    ["many", {"prompt_tokens": -3}, {"completion_tokens": 1e400}],
)
async def test_model_odd_usage_counts_as_zero(usage: Any) -> None:
    body = {**fakes.completion("FINISH([1])"), "usage": usage}
    text = json.dumps(body).encode()
    client = model(streamed(lambda: chunks(text)))
    out = await client.complete(HISTORY)
    await client.aclose()
    assert out.text == "FINISH([1])" and out.prompt_tokens >= 0 and out.completion_tokens >= 0


async def test_model_deeply_nested_answer_is_a_model_error() -> None:
    text = b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    client = model(streamed(lambda: chunks(text)))
    with pytest.raises(ModelError, match="unexpected body"):
        await client.complete(HISTORY)
    await client.aclose()


async def test_model_readiness_never_reads_the_body() -> None:
    client = model(streamed(trickle), timeout=30)
    assert await asyncio.wait_for(client.reachable(), 5)
    await client.aclose()


async def test_model_lone_surrogates_are_replaced() -> None:
    text = b'{"choices": [{"message": {"content": "FINISH([\\"\\ud83d\\"]) \\u00e9"}}]}'
    client = model(streamed(lambda: chunks(text)))
    out = await client.complete(HISTORY)
    assert out.text == 'FINISH(["?"]) \u00e9'
    history = [*HISTORY, {"role": "agent", "content": out.text}]
    await client.complete(history)  # UnicodeEncodeError when the history went back
    await client.aclose()


async def test_idle_connections_are_dropped_before_uvicorn_drops_them() -> None:
    """uvicorn (the embedded FHIR server, vLLM) closes an idle connection after 5 s; a request
    sent on one at that moment fails before any byte. The clients let go after 4 s: a request
    after 4.3 s idle arrives on a new connection (a new client port), one at once on the same."""
    from inthread import serve_in_thread  # tests/support

    ports: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        ports.append(scope["client"][1])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    with serve_in_thread(app, lifespan="off", log_level="error") as port:
        assert uvicorn_keep_alive() > KEEPALIVE_SECONDS
        base = f"http://127.0.0.1:{port}"
        fhir = FhirClient()  # the model client's pool takes the same KEEPALIVE_SECONDS
        try:
            await fhir.get(f"{base}/Patient")
            await fhir.get(f"{base}/Patient")
            await asyncio.sleep(KEEPALIVE_SECONDS + 0.3)
            await fhir.get(f"{base}/Patient")
            assert ports[0] == ports[1] != ports[2], ports
        finally:
            await fhir.aclose()


def uvicorn_keep_alive() -> float:
    import uvicorn

    return float(uvicorn.Config(app=None).timeout_keep_alive)
