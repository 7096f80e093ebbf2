"""`sara up`: the whole local stack on 127.0.0.1 — FHIR server, reference model server, agent.

Each component runs as its own ``sara …`` process (components talk only over HTTP, as in a
cluster). The stack waits until every process answers its readiness endpoint, prints the URLs
and an example request, and on Ctrl-C (or when any process dies) stops them all.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from sara.common.errors import UserError
from sara.common.http import ensure_port_free


@dataclass(frozen=True)
class StackConfig:
    """What `sara up` starts, and where."""

    host: str = "127.0.0.1"
    fhir_port: int = 8080
    model_port: int = 8001
    agent_port: int = 8000
    db: Path = Path("var/sara-fhir.sqlite")
    runs: Path = Path("var/runs.db")
    write_mode: str = "approve"
    patients: int = 100
    seed: int = 1
    latency: float = 0.0
    api_key: str | None = None
    ready_timeout: float = 300.0
    log_dir: Path | None = None

    @property
    def fhir_url(self) -> str:
        return f"http://{self.host}:{self.fhir_port}/fhir/"

    @property
    def model_url(self) -> str:
        return f"http://{self.host}:{self.model_port}/v1"

    @property
    def agent_url(self) -> str:
        return f"http://{self.host}:{self.agent_port}"


@dataclass
class Service:
    """One child process and how to tell it is ready."""

    name: str
    argv: list[str]
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


def _sara(*args: str) -> list[str]:
    return [sys.executable, "-m", "sara.cli", *args]


def services(cfg: StackConfig, api_key: str) -> list[Service]:
    """The three processes of the local stack, in start order."""
    fhir = Service(
        "fhir",
        _sara(
            "fhir", "serve", "--host", cfg.host, "--port", str(cfg.fhir_port),
            "--db", str(cfg.db), "--synthetic", str(cfg.patients), "--seed", str(cfg.seed),
        ),
        ready_url=f"{cfg.fhir_url}metadata",
    )  # fmt: skip
    model = Service(
        "model",
        _sara(
            "model", "serve", "--policy", "reference", "--host", cfg.host,
            "--port", str(cfg.model_port), "--latency", str(cfg.latency),
        ),
        ready_url=f"http://{cfg.host}:{cfg.model_port}/health",
    )  # fmt: skip
    agent = Service(
        "agent",
        _sara(
            "agent", "serve", "--host", cfg.host, "--port", str(cfg.agent_port),
            "--fhir-url", cfg.fhir_url, "--model-url", cfg.model_url,
            "--model", "sara-reference-policy", "--store", f"sqlite:///{cfg.runs}",
            "--write-mode", cfg.write_mode,
        ),
        ready_url=f"{cfg.agent_url}/readyz",
        env={"SARA_AGENT_API_KEYS": api_key},
        headers={"Authorization": f"Bearer {api_key}"},
    )  # fmt: skip
    return [fhir, model, agent]


def check_ports(cfg: StackConfig) -> None:
    """Refuse early, naming the flag to change, when a port is taken or repeated."""
    ports = {
        "--fhir-port": cfg.fhir_port,
        "--model-port": cfg.model_port,
        "--agent-port": cfg.agent_port,
    }
    if len(set(ports.values())) < len(ports):
        raise UserError(f"each service needs its own port: {ports}")
    for flag, port in ports.items():
        ensure_port_free(cfg.host, port, flag)


def _wait_ready(
    svc: Service, deadline: float, should_stop: Callable[[], bool], log: Path | None = None
) -> None:
    assert svc.process is not None
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and not should_stop():
            if svc.process.poll() is not None:
                where = f"; its log: {log}" if log is not None else ""
                raise UserError(
                    f"{svc.name} exited with status {svc.process.returncode} during start-up{where}"
                )
            try:
                if client.get(svc.ready_url, headers=svc.headers).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    if should_stop():
        return
    raise UserError(f"{svc.name} was not ready at {svc.ready_url} in time")


def stop(svcs: Sequence[Service], grace: float = 10.0) -> None:
    """SIGTERM every running child (last started first), then SIGKILL stragglers."""
    running = [s.process for s in reversed(svcs) if s.process and s.process.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def example_mrn(cfg: StackConfig) -> str | None:
    """The MRN of the first patient on the FHIR server, for an example that finds data."""
    try:
        bundle = httpx.get(f"{cfg.fhir_url}Patient?_count=1", timeout=10).json()
        return str(bundle["entry"][0]["resource"]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        return None


def banner(cfg: StackConfig, api_key: str, mrn: str | None = None) -> str:
    """What a person needs to start using the stack."""
    question = f"What is the most recent CBG of the patient {mrn or 'S0000000'}?"
    body = json.dumps({"instruction": question})
    return "\n".join(
        [
            "Sara local stack is ready (the model is the deterministic reference policy, "
            "not a language model).",
            f"  FHIR R4 server : {cfg.fhir_url}",
            f"  model server   : {cfg.model_url}",
            f"  console        : {cfg.agent_url}/  (sign in with the API key below)",
            f"  agent API      : {cfg.agent_url}  (docs: {cfg.agent_url}/docs)",
            f"  metrics        : {cfg.agent_url}/metrics",
            f"  run history    : {cfg.runs}  (GET {cfg.agent_url}/v1/tasks)",
            f"  orders         : {cfg.write_mode}"
            + (
                "  (each order waits for a clinician's sign-off)"
                if cfg.write_mode == "approve"
                else ""
            ),
            *(
                [f"  logs           : {cfg.log_dir}/{{fhir,model,agent}}.log"]
                if cfg.log_dir
                else []
            ),
            f"  API key        : {api_key}",
            "Try:",
            f"  curl -N -H 'Authorization: Bearer {api_key}' -H 'Accept: text/event-stream' \\",
            f"       -H 'Content-Type: application/json' -d '{body}' {cfg.agent_url}/v1/tasks",
            "Press Ctrl-C to stop.",
        ]
    )


def up(cfg: StackConfig, echo: Callable[[str], None] = print) -> int:
    """Start the stack, block until interrupted or a child dies; return an exit status."""
    api_key = cfg.api_key or secrets.token_urlsafe(24)
    try:
        cfg.db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the database folder {cfg.db.parent}: {exc.strerror}"
        ) from exc
    check_ports(cfg)
    svcs = services(cfg, api_key)
    logs: list[IO[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        deadline = time.monotonic() + cfg.ready_timeout
        for svc in svcs:
            out: IO[bytes] | None = None
            log = None if cfg.log_dir is None else cfg.log_dir / f"{svc.name}.log"
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                out = open(log, "ab")  # noqa: SIM115
                logs.append(out)
            echo(f"starting {svc.name} …")
            svc.process = subprocess.Popen(
                svc.argv, env={**os.environ, **svc.env}, stdout=out, stderr=out
            )
            _wait_ready(svc, deadline, lambda: stopping, log)
            if stopping:
                return 130
        echo(banner(cfg, api_key, example_mrn(cfg)))
        while not stopping:
            for svc in svcs:
                assert svc.process is not None
                if svc.process.poll() is not None:
                    echo(f"{svc.name} exited with status {svc.process.returncode}; stopping")
                    return 1
            time.sleep(0.3)
        return 0
    finally:
        echo("stopping …")
        stop(svcs)
        for f in logs:
            f.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
