"""Server-Sent Events encoding of loop events (``text/event-stream``).

One frame per event::

    id: 3
    event: fhir_response
    data: {"type": "fhir_response", "round": 1, ...}

``data`` is one line of compact JSON (JSON never needs a raw newline), so a frame is always
exactly three field lines and a blank line. :func:`decode` is the inverse, for clients and tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sara.agent.events import Event

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(kind: str, data: dict[str, Any], seq: int | None = None) -> bytes:
    """One SSE frame."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {payload}\n\n".encode()


def raw(kind: str, data: str, seq: int) -> bytes:
    """One SSE frame around JSON text that is already encoded (a stored event)."""
    return f"id: {seq}\nevent: {kind}\ndata: {data}\n\n".encode()


def encode(event: Event, seq: int | None = None) -> bytes:
    return frame(event.kind, event.to_dict(), seq)


def comment(text: str = "keep-alive") -> bytes:
    return f": {text}\n\n".encode()


def decode(stream: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse an event stream into ``(event name, data)`` pairs (comments skipped)."""
    for block in stream.replace("\r\n", "\n").split("\n\n"):
        kind, data = "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
        if data:
            yield kind, json.loads("\n".join(data))
