"""``sara agent serve`` keeps an idle connection longer than the proxies in front of it do.

An ingress or load balancer reuses its idle upstream connections for up to its own idle timeout
(60 s is common); a server that closes first races the proxy's next request (intermittent 502s).
uvicorn's own default closes after 5 s; the agent's ``keep_alive_seconds`` is 75.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from procs import Proc

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: agent\r\nConnection: keep-alive\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {data!r}")
        data += chunk
    return data


def test_an_idle_connection_outlives_uvicorns_default_keep_alive(tmp_path: Path) -> None:
    agent = Proc(
        ["agent", "serve", "--no-auth", "--store", f"sqlite:///{tmp_path / 'runs.db'}",
         "--audit-sink", str(tmp_path / "audit.jsonl")],
        "/healthz",
        tmp_path / "agent.log",
    )  # fmt: skip
    agent.start(timeout=60)
    try:
        with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as sock:
            sock.sendall(REQUEST)
            assert _answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(6.5)  # past uvicorn's 5 s default, idle
            sock.sendall(REQUEST)
            assert _answer(sock).startswith(b"HTTP/1.1 200")  # the same connection
    finally:
        agent.stop()
