"""Real processes for the PHI scan: ``sara fhir serve --synthetic``, the reference model server
and ``sara agent serve --write-mode approve``, each on a free port of 127.0.0.1 with its INFO
JSON logs in a file, started once per module and stopped after it. Child processes inherit no
``SARA_AGENT_*`` variable from the test runner; run store, audit sink and logs live in a
temporary folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

SARA = str(Path(sys.executable).with_name("sara"))
SIGNER, SIGNER_KEY = "dr-signer", "phi-test-signer-key-0123456789abcdef"
KIOSK, KIOSK_KEY = "front-desk", "phi-test-kiosk-key-0123456789abcdef"
PATIENTS = 20  # synthetic patients: seeded in ~6 s, enough names for a meaningful vocabulary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A ``sara`` subcommand as a child process, stdout and stderr in ``log``."""

    args: list[str]
    ready_path: str
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SARA_AGENT_")}
        env.update(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [SARA, *self.args, "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args[:2]} exited\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.root + self.ready_path, timeout=5, trust_env=False).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.args[:2]} not ready in {timeout}s\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


@dataclass
class Stack:
    fhir: Proc
    model: Proc
    agent: Proc
    tmp: Path
    signer_key: str = SIGNER_KEY  # roles run, approve, read
    kiosk_key: str = KIOSK_KEY  # role run only
    patients: int = PATIENTS
    sara: str = SARA

    @property
    def audit(self) -> Path:
        return self.tmp / "audit.jsonl"

    @property
    def procs(self) -> list[Proc]:
        return [self.fhir, self.model, self.agent]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("phi")
    keys = tmp / "keys.yaml"
    keys.write_text(
        f"- name: {SIGNER}\n  roles: [run, approve, read]\n  key: {SIGNER_KEY}\n"
        f"- name: {KIOSK}\n  roles: [run]\n  key: {KIOSK_KEY}\n"
    )
    fhir = Proc(
        ["fhir", "serve", "--db", str(tmp / "fhir.db"), "--synthetic", str(PATIENTS),
         "--seed", "1", "--log-level", "INFO"],
        "/fhir/metadata",
        tmp / "fhir.log",
    )  # fmt: skip
    model = Proc(
        ["model", "serve", "--policy", "reference", "--log-level", "INFO"],
        "/v1/models",
        tmp / "model.log",
    )
    agent = Proc(
        ["agent", "serve",
         "--fhir-url", f"{fhir.root}/fhir/", "--model-url", f"{model.root}/v1",
         "--model", "sara-reference-policy", "--write-mode", "approve",
         "--api-keys-file", str(keys), "--store", f"sqlite:///{tmp / 'runs.db'}",
         "--audit-sink", str(tmp / "audit.jsonl"), "--log-level", "INFO"],
        "/healthz",
        tmp / "agent.log",
    )  # fmt: skip
    started = [fhir, model, agent]
    try:
        for proc in started:
            proc.spawn()  # all at once: the agent needs neither to start
        for proc in started:
            proc.wait_ready()
        yield Stack(fhir, model, agent, tmp)
    finally:
        for proc in reversed(started):
            proc.stop()
