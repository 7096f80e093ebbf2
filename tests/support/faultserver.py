"""A misbehaving HTTP server on 127.0.0.1, for fault tests: raw bytes on a real socket.

Each request is answered by the next step of a script (the last step repeats):

    Reply(status, body, content_type)   a well-formed answer (``Connection: close``)
    Hold(seconds)                       read the request, answer nothing, then close
    Reset()                             read the request, then close with a TCP reset (RST)
    Truncate(body, declared)            ``Content-Length: declared``, send ``body``, close

The server runs its own event loop in a thread, so a test's loop (and the client under test)
never shares it; ``requests`` records each request's path and arrival time. Resets and short
bodies need a real socket, which is why this is not an ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hold:
    seconds: float = 30.0


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Truncate:
    body: bytes = b'{"choices": [{"mess'
    declared: int = 4096


Step = Reply | Hold | Reset | Truncate
REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}


@dataclass
class Seen:
    method: str
    path: str
    at: float  # time.monotonic()


@dataclass
class FaultServer:
    script: list[Step]
    port: int = 0
    requests: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_script(self, steps: Sequence[Step]) -> None:
        self.script = list(steps)

    def _next(self) -> Step:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            self.requests.append(Seen(method, path, time.monotonic()))
            step = self._next()
            if isinstance(step, Hold):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Reset):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif isinstance(step, Truncate):
                writer.write(_head(200, "application/json", step.declared) + step.body)
                await writer.drain()
            else:
                writer.write(_head(step.status, step.content_type, len(step.body)) + step.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _head(status: int, content_type: str, length: int) -> bytes:
    reason = REASONS.get(status, "Error")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


@contextlib.contextmanager
def fault_server(*steps: Step, port: int = 0) -> Iterator[FaultServer]:
    """Serve ``steps`` on 127.0.0.1 (a free port, or ``port``) in a thread; yield the server."""
    server = FaultServer(list(steps) or [Reply()], port)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        srv = await asyncio.start_server(server._handle, "127.0.0.1", port, reuse_address=True)
        server.port = srv.sockets[0].getsockname()[1]
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        srv.close()
        for task in asyncio.all_tasks():  # handlers still holding an answer back
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0)
        await srv.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the fault server did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(timeout=10)
        loop.close()
