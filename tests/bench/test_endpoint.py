"""The endpoint transport: headers, a concurrency bound, 429/Retry-After and 5xx backoff."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sara.bench.endpoint import EndpointTransport
from sara.bench.protocols import HARNESS_RETRY, RetryPolicy


class Clock:
    """A fake clock that sleeping advances (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds
        await asyncio.sleep(0)


def endpoint(handler: object, clock: Clock, **kwargs: object) -> httpx.AsyncClient:
    transport = EndpointTransport(
        httpx.MockTransport(handler),  # type: ignore[arg-type]
        sleep=clock.sleep,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    return httpx.AsyncClient(transport=transport, base_url="http://model.test")


async def test_headers_go_with_every_request() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={})

    async with endpoint(handler, Clock(), headers={"X-Title": "sara-bench"}) as client:
        await client.post("/v1/chat/completions", json={})
    assert seen[0]["x-title"] == "sara-bench"


async def test_retry_after_pauses_the_whole_endpoint() -> None:
    clock = Clock()
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"})
        return httpx.Response(200, json={"ok": True})

    async with endpoint(handler, clock) as client:
        first = await client.post("/v1/chat/completions", json={})
        second = await client.post("/v1/chat/completions", json={})
    assert first.status_code == second.status_code == 200
    assert calls == [0.0, 7.0, 7.0]  # the retry waited Retry-After, the next call went at once
    assert clock.slept == [7.0]


async def test_server_errors_back_off_then_the_last_answer_is_returned() -> None:
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502)

    async with endpoint(handler, clock, retry=HARNESS_RETRY) as client:
        response = await client.post("/v1/chat/completions", json={})
    assert response.status_code == 502
    assert clock.slept == [2.0, 4.0, 8.0, 16.0]  # the harness's schedule, 5 tries


async def test_rate_limits_use_their_own_schedule_and_recover() -> None:
    clock = Clock()
    answers = iter([429, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={})

    async with endpoint(handler, clock, retry=HARNESS_RETRY) as client:
        response = await client.post("/v1/chat/completions", json={})
    assert response.status_code == 200
    assert clock.slept == [5.0, 10.0]


async def test_transport_errors_are_retried_then_raised() -> None:
    clock = Clock()
    tries: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        raise httpx.ConnectError("refused", request=request)

    async with endpoint(handler, clock, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("/v1/chat/completions", json={})
    assert len(tries) == 3 and clock.slept == [0.5, 1.0]


async def test_at_most_concurrency_requests_in_flight() -> None:
    in_flight = peak = 0

    class Slow(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return httpx.Response(200, json={})

    transport = EndpointTransport(Slow(), concurrency=3)
    async with httpx.AsyncClient(transport=transport, base_url="http://model.test") as client:
        await asyncio.gather(*(client.post("/x", json={}) for _ in range(12)))
    assert peak == 3
    assert transport.stats.requests == 12 and transport.stats.retries == 0
