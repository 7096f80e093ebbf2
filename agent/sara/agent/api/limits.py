"""Request body limits (413 size, 408 time) as pure ASGI middleware; the task gate (429)."""

from __future__ import annotations

import asyncio

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
    """At most ``limit`` tasks at once; ``try_enter`` never waits (the caller answers 429)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def try_enter(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def enter(self) -> None:
        """Take a slot even when full: a decision resumes its task, never answered 429."""
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
