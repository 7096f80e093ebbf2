"""uvicorn's httptools protocol with a bound on each request's head.

httptools has no limit of its own: a client that sends one endless header line (or URL) makes
the server buffer all of it — 200 MB of header grew a server by 250 MB in a measurement. Every
Sara HTTP server (FHIR, agent, model) uses :class:`BoundedHttpToolsProtocol` instead:
the request line and headers together may take at most ``MAX_HEAD_BYTES``; beyond that the
client gets ``431 Request Header Fields Too Large`` and the connection is closed. Bodies are
not counted here (each app has its own body limit).

Usage: ``uvicorn.Config(app, http=BoundedHttpToolsProtocol, ...)``; :func:`ensure_port_free`
before any slow start-up work, so a taken port is one clear line, not a failure minutes later.
"""

from __future__ import annotations

import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sara.common.errors import UserError

MAX_HEAD_BYTES = 64 * 1024  # HAPI's Jetty default is 8 KiB; the agent's URLs stay under 8 KiB


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses a request head over :data:`MAX_HEAD_BYTES`."""

    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes received since the current request began; None while its body is read.
        self._head_bytes: int | None = 0

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._head_bytes is not None
            and self._head_bytes > self.max_head_bytes
            and not self.transport.is_closing()
        ):
            self._refuse()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_bytes = 0  # a pipelined request's head starts counting now
        super().on_message_complete()

    def _refuse(self) -> None:
        msg = b"Request line and headers too large."
        self.logger.warning("Request head over %d bytes refused.", self.max_head_bytes)
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(msg)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + msg
        )
        self.transport.close()


def ensure_port_free(host: str, port: int, flag: str = "--port") -> None:
    """Raise :class:`UserError` naming ``flag`` when nothing can listen on ``host:port``.

    Port 0 (any free port) always passes. Like uvicorn, the probe sets ``SO_REUSEADDR``: the
    lingering connections of a server that just stopped do not count as "in use".
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port} ({exc.strerror}); stop what uses it or "
                f"choose another port with {flag}"
            ) from exc
