"""Request body limits (413 size, 408 time) as pure ASGI middleware; the gates and rate limits
behind the API's 429s.

All of it is in-process: each replica keeps its own counts (docs/security.md, "Limits"). The
event loop is single-threaded and nothing here awaits, so no locks: a check is a dict lookup.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sara.agent.metrics import AgentMetrics

BODY_TIMEOUT_SECONDS = 60.0


class BodyLimit:
    """Refuses bodies over ``max_bytes`` (by ``Content-Length`` up front, or while reading) and
    bodies still incomplete after ``timeout`` seconds (a trickled body held its connection)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        metrics: AgentMetrics,
        timeout: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        seen = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def limited() -> Message:
            nonlocal seen, complete
            if complete:  # later calls wait for the disconnect, as long as the task runs
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, "request body took too long to arrive") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    self.metrics.api_rejected.labels("body_too_large").inc()
                    raise HTTPException(413, "request body too large")
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, send: Send) -> None:
        self.metrics.api_rejected.labels("body_too_large").inc()
        body = b'{"detail":"request body too large"}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class Gate:
    """At most ``limit`` at once in all (0: no limit), and at most ``per_key`` for one key (0:
    no limit). Nothing waits: ``refusal`` says why not, and the caller answers 429."""

    def __init__(self, limit: int, per_key: int = 0) -> None:
        self.limit = limit
        self.per_key = per_key
        self.active = 0
        self.by_key: dict[str, int] = {}

    def refusal(self, key: str = "") -> str | None:
        """Why ``key`` may not enter now: ``"saturated"`` (all slots taken), ``"key"`` (this
        key's), or None."""
        if self.limit and self.active >= self.limit:
            return "saturated"
        if self.per_key and self.by_key.get(key, 0) >= self.per_key:
            return "key"
        return None

    def try_enter(self, key: str = "") -> bool:
        """Take a slot if there is one."""
        if self.refusal(key) is not None:
            return False
        self.enter(key)
        return True

    def enter(self, key: str = "") -> None:
        """Take a slot even when full: a decision resumes its task, never answered 429."""
        self.active += 1
        self.by_key[key] = self.by_key.get(key, 0) + 1

    def leave(self, key: str = "") -> None:
        self.active -= 1
        left = self.by_key.get(key, 0) - 1
        if left > 0:
            self.by_key[key] = left
        else:
            self.by_key.pop(key, None)  # the map holds only keys with something running


class RateLimit:
    """A token bucket per key: ``per_minute`` requests a minute on average, ``burst`` at once.

    ``per_minute`` 0 means no limit. Buckets exist only for authenticated keys (or the one
    ``anonymous`` caller without auth), so the map is as small as the key ring.
    """

    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str) -> int:
        """Spend one token: 0, or the whole seconds (at least 1) until the next is due."""
        if self.rate <= 0:
            return 0
        now = self.clock()
        tokens, when = self.buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - when) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            return 0
        self.buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))
