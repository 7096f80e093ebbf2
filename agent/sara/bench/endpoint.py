"""One model endpoint as an httpx transport: extra headers, a concurrency bound, retries.

The bench hands :class:`EndpointTransport` to the agent's model client (whose own retries are
then off), so every model call of a run — or of several runs sharing the endpoint — goes
through one place that:

- adds the endpoint's extra headers (``HTTP-Referer``, ``X-Title``, …) to each request;
- holds at most ``concurrency`` requests in flight (waits between tries hold no slot);
- retries a 429, a 5xx, a timeout or a transport error by the protocol's
  :class:`~sara.bench.protocols.RetryPolicy`; after a 429 the *whole endpoint* pauses until its
  ``Retry-After`` (or the policy's wait) has passed, so the other tasks in flight back off too;
- bounds each try in time (``timeout``: until the whole body is in) and the body in size.

The last answer (a 429 or 5xx after the final try) is returned as it is, and the model client
turns it into a task error; a transport error after the final try is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from sara.bench.protocols import RetryPolicy

MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class EndpointStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    waits: list[float] = field(default_factory=list)


class EndpointTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 16,
        retry: RetryPolicy | None = None,
        timeout: float = 120.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max(concurrency, 1), max_keepalive_connections=64)
        )
        self.headers = dict(headers or {})
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.stats = EndpointStats()
        self._slots = asyncio.Semaphore(max(concurrency, 1))
        self._sleep = sleep
        self._clock = clock
        self._paused_until = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for name, value in self.headers.items():
            request.headers[name] = value
        attempt = 0
        while True:
            attempt += 1
            await self._wait_for_pause()
            self.stats.requests += 1
            try:
                async with self._slots, asyncio.timeout(self.timeout):
                    response = await self._send(request)
            except (httpx.TransportError, TimeoutError) as exc:
                self.stats.transport_errors += 1
                if attempt >= self.retry.attempts:
                    if isinstance(exc, TimeoutError):
                        raise httpx.ReadTimeout(
                            "model endpoint timed out", request=request
                        ) from exc
                    raise
                wait = self.retry.wait(attempt, rate_limited=False, retry_after=None)
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                rate_limited = status == 429
                if rate_limited:
                    self.stats.rate_limited += 1
                else:
                    self.stats.server_errors += 1
                if attempt >= self.retry.attempts:
                    return response
                wait = self.retry.wait(
                    attempt, rate_limited=rate_limited, retry_after=retry_after(response)
                )
                if rate_limited:  # everyone on this endpoint backs off, not just this call
                    self._paused_until = max(self._paused_until, self._clock() + wait)
            self.stats.retries += 1
            self.stats.waits.append(wait)
            await self._sleep(wait)

    async def _wait_for_pause(self) -> None:
        while (left := self._paused_until - self._clock()) > 0:
            await self._sleep(left)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """One try, its whole body read (raw: any content-encoding stays for the client)."""
        response = await self.inner.handle_async_request(request)
        chunks: list[bytes] = []
        size = 0
        try:
            raw = response.aiter_raw()
            try:
                first = await anext(raw)
            except httpx.StreamConsumed:  # already in memory (an in-process transport)
                return response
            except StopAsyncIteration:
                first = b""
            async for chunk in _chain(first, raw):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise httpx.RemoteProtocolError(
                        f"model endpoint answer exceeds {MAX_BODY_BYTES} bytes", request=request
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=b"".join(chunks),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number; an HTTP date counts as absent)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
