"""`sara up` (what `make run` starts): the whole local stack as real processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _children(parent: int) -> list[int]:
    """PIDs whose parent is ``parent`` (read from /proc: no procps needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    fhir, model, agent = _free_ports(3)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sara.cli", "up",
            "--fhir-port", str(fhir), "--model-port", str(model), "--agent-port", str(agent),
            "--db", str(tmp_path / "fhir.sqlite"), "--runs", str(tmp_path / "runs.db"),
            "--patients", "5",
            "--ready-timeout", "180", "--log-dir", str(tmp_path / "logs"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SARA_UP_API_KEY": "stack-test-key"},
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + 200
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    yield proc, lines, agent
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def test_up_serves_a_task_and_stops_everything_on_ctrl_c(stack) -> None:  # type: ignore[no-untyped-def]
    proc, lines, agent_port = stack
    text = "\n".join(lines)
    assert "not a language model" in text, text
    assert "API key        : stack-test-key" in text
    # The printed example names a patient that exists, and works as printed.
    example = re.search(r"-d '(\{.*\})' (http://\S+/v1/tasks)", text)
    assert example is not None, text
    body, url = json.loads(example.group(1)), example.group(2)
    assert url == f"http://127.0.0.1:{agent_port}/v1/tasks"
    headers = {"Authorization": "Bearer stack-test-key"}
    answer = httpx.post(url, json=body, headers=headers, timeout=60, trust_env=False).json()
    assert answer["status"] == "completed"
    assert answer["result"] not in (None, "[-1]")  # the example patient has glucose results
    assert httpx.post(url, json=body, timeout=10, trust_env=False).status_code == 401

    children = _children(proc.pid)
    assert len(children) == 3
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    from sara.common.errors import UserError
    from sara.stack import StackConfig, check_ports, up

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fhir, agent = _free_ports(2)
        cfg = StackConfig(fhir_port=fhir, model_port=port, agent_port=agent, db=tmp_path / "db")
        with pytest.raises(UserError, match=rf"127\.0\.0\.1:{port} .*--model-port"):
            up(cfg, echo=lambda _: None)  # nothing was started: no process to clean up
    with pytest.raises(UserError, match="its own port"):
        check_ports(StackConfig(fhir_port=9000, model_port=9000))
