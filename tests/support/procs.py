"""``sara`` subcommands as real child processes on 127.0.0.1, for the tests that need them.

A :class:`Proc` runs ``sara ARGS --host 127.0.0.1 --port PORT`` with its output in a log file,
restartable on the same port (a crash is :meth:`Proc.kill`, a clean stop :meth:`Proc.stop`).
Children inherit no ``SARA_AGENT_*`` variable from the test runner: each test says what it sets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SARA = str(Path(sys.executable).with_name("sara"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Until ``url`` answers 2xx; a process that exits, or a timeout, raises with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5, trust_env=False).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s\n{log.read_text()[-3000:]}")


@dataclass
class Proc:
    """A ``sara`` subcommand as a child process, restartable on the same port."""

    args: list[str]
    ready_path: str
    log: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)  # on top of the runner's, every start
    process: subprocess.Popen[bytes] | None = None
    history: list[int] = field(default_factory=list)  # the pid of every start

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self, extra: list[str] | None = None) -> None:
        """Start without waiting (several at once, then :meth:`wait_ready` each)."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("SARA_AGENT_")}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [SARA, *self.args, "--host", "127.0.0.1", "--port", str(self.port), *(extra or [])],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**inherited, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", **self.env},
            )
        self.history.append(self.process.pid)

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.process is not None
        wait_http(self.root + self.ready_path, self.process, self.log, timeout)

    def start(self, timeout: float = 120, extra: list[str] | None = None) -> None:
        """Start (or start again, with the same arguments and env) and wait until ready."""
        self.spawn(extra)
        self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, like a crashed pod."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
