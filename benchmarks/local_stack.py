"""Real ``sara`` processes on free ports of 127.0.0.1 for the load benchmarks (load_agent.py,
load_fhir.py): start, wait until ready, read their memory, stop. Each logs to a file in the
run's temporary folder; none inherits a ``SARA_AGENT_*`` variable from the caller's shell.
"""

from __future__ import annotations

import os
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


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (psutil when installed, else /proc/PID/status VmRSS)."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {pid}") from None
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (psutil, else /proc/PID/stat)."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass
class Proc:
    """A ``sara`` subcommand as a child process; ``env`` is added to the cleaned environment."""

    args: list[str]
    ready_path: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SARA_AGENT_")}
        env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", **self.env)
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [SARA, *self.args, "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self, timeout: float = 300) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[:2]} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.root + self.ready_path, timeout=5, trust_env=False).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.args[:2]} not ready in {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def fhir(tmp: Path, patients: int, log_level: str = "WARNING") -> Proc:
    """``sara fhir serve`` seeding ``patients`` synthetic patients (seed 1) into ``tmp``."""
    return Proc(
        ["fhir", "serve", "--db", str(tmp / "fhir.db"), "--synthetic", str(patients),
         "--seed", "1", "--log-level", log_level],
        "/fhir/metadata",
        tmp / "fhir.log",
    )  # fmt: skip


def model(tmp: Path, latency: float = 0.0) -> Proc:
    """The reference policy (not a language model) as an OpenAI-compatible server."""
    return Proc(
        ["model", "serve", "--policy", "reference", "--latency", str(latency),
         "--log-level", "WARNING"],
        "/v1/models",
        tmp / "model.log",
    )  # fmt: skip


def stop_all(procs: list[Proc]) -> None:
    for proc in reversed(procs):
        proc.stop()
