"""The bounded httptools protocol every Sara HTTP server runs: a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from inthread import serve_in_thread

from sara.common.errors import UserError
from sara.common.http import MAX_HEAD_BYTES, BoundedHttpToolsProtocol, ensure_port_free


async def echo_length(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the number of body bytes it read."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serve_in_thread(echo_length, http=BoundedHttpToolsProtocol, lifespan="off") as bound:
        yield bound


def exchange(port: int, *chunks: bytes, answers: int = 1) -> bytes:
    """Send ``chunks`` on one connection; read until ``answers`` responses came or it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in chunks:  # the server may close while we are still sending
                conn.sendall(chunk)
        out = b""
        with contextlib.suppress(ConnectionResetError):
            while out.count(b"HTTP/1.1 ") < answers or not _complete(out):
                data = conn.recv(65536)
                if not data:
                    break
                out += data
        return out


def _complete(out: bytes) -> bool:
    """The last response's body has arrived (content-length bodies only)."""
    head, _, body = out.rpartition(b"\r\n\r\n")
    length = head.rsplit(b"content-length: ", 1)[-1].split(b"\r\n", 1)[0]
    return length.isdigit() and len(body) >= int(length)


def request(head_extra: bytes = b"", body: bytes = b"") -> bytes:
    return (
        b"POST /x HTTP/1.1\r\nHost: t\r\n"
        + head_extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def test_ordinary_requests_pass(port: int) -> None:
    answer = exchange(port, request(b"X-Note: " + b"a" * 8000 + b"\r\n", b"hello"))
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n5")


def test_an_endless_header_is_refused_early(port: int) -> None:
    head = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: "
    answer = exchange(port, head, *([b"a" * 100_000] * 50))  # 5 MB of one header, never ended
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in answer


def test_an_endless_url_is_refused_early(port: int) -> None:
    answer = exchange(port, b"GET /" + b"p" * (MAX_HEAD_BYTES + 1000) + b" HTTP/1.1\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_bodies_do_not_count_as_head(port: int) -> None:
    body = b"b" * (4 * MAX_HEAD_BYTES)  # arrives with the head in the same chunks
    answer = exchange(port, request(body=body))
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(str(len(body)).encode())


def test_each_pipelined_request_gets_its_own_head_budget(port: int) -> None:
    one = request(b"X-Note: " + b"a" * (MAX_HEAD_BYTES // 2) + b"\r\n", b"xy")
    answer = exchange(
        port, one * 4, answers=4
    )  # 4 heads together > the limit; each alone is within
    assert answer.count(b"HTTP/1.1 200") == 4


def test_ensure_port_free_names_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=rf"127\.0\.0\.1:{port} .*--agent-port$"):
            ensure_port_free("127.0.0.1", port, "--agent-port")
    ensure_port_free("127.0.0.1", port)  # free again
    ensure_port_free("127.0.0.1", 0)  # any free port
