"""Real processes for the console's browser test: ``sara fhir serve --synthetic``, the reference
model server and ``sara agent serve --write-mode approve``, each on a free port of 127.0.0.1,
started once per module and stopped after it. Child processes inherit no ``SARA_AGENT_*``
variable from the test runner; the agent's run store and audit log live in a temporary folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from procs import Proc

from sara.common.clock import BENCH_NOW

SIGNER, SIGNER_KEY = "dr-okafor", "console-e2e-signer-key-0123456789"
KIOSK, KIOSK_KEY = "ward-kiosk", "console-e2e-kiosk-key-0123456789"
LATENCY = "1.0"  # seconds per model answer: a run lasts long enough to watch and to reload


@dataclass
class Stack:
    fhir: Proc
    model: Proc
    agent: Proc
    tmp: Path

    def fhir_get(self, path: str) -> dict[str, Any]:
        r = httpx.get(f"{self.fhir.root}/fhir/{path}", timeout=30, trust_env=False)
        r.raise_for_status()
        return dict(r.json())

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {SIGNER_KEY}", **kw.pop("headers", {})}
        return httpx.request(
            method, self.agent.root + path, headers=headers, timeout=30, trust_env=False, **kw
        )

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/v1/tasks/{task_id}").json())

    def until(self, task_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.task(task_id)
            if view["status"] in statuses:
                return view
            time.sleep(0.1)
        raise AssertionError(f"{task_id} never reached {statuses}: {view['status']}")

    def seq_of(self, task_id: str, kind: str) -> int:
        """The id of the task's first ``kind`` event (its stream stays open while it waits)."""
        seq = 0
        with httpx.stream(
            "GET",
            f"{self.agent.root}/v1/tasks/{task_id}/events",
            headers={"Authorization": f"Bearer {SIGNER_KEY}"},
            timeout=30,
            trust_env=False,
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    seq = int(line[4:])
                elif line == f"event: {kind}":
                    return seq
        raise AssertionError(f"{task_id} has no {kind} event")

    def start(self, body: dict[str, Any]) -> str:
        r = self.api("POST", "/v1/tasks", json=body, headers={"Prefer": "respond-async"})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def agent_proc(fhir: Proc, model: Proc, tmp: Path, write_mode: str) -> Proc:
    """``sara agent serve`` in ``write_mode`` with the module's keys (not started yet)."""
    return Proc(
        ["agent", "serve",
         "--fhir-url", f"{fhir.root}/fhir/", "--model-url", f"{model.root}/v1",
         "--model", "sara-reference-policy", "--write-mode", write_mode,
         "--api-keys-file", str(tmp / "keys.yaml"),
         "--store", f"sqlite:///{tmp / f'runs-{write_mode}.db'}",
         "--audit-sink", str(tmp / f"audit-{write_mode}.jsonl"), "--log-level", "WARNING"],
        "/healthz",
        tmp / f"agent-{write_mode}.log",
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("console")
    keys = tmp / "keys.yaml"
    keys.write_text(
        f"- name: {SIGNER}\n  roles: [run, approve, read]\n  key: {SIGNER_KEY}\n"
        f"- name: {KIOSK}\n  roles: [run]\n  key: {KIOSK_KEY}\n"
    )
    fhir = Proc(
        ["fhir", "serve", "--db", str(tmp / "fhir.db"), "--synthetic", "30", "--seed", "1",
         "--log-level", "WARNING"],
        "/fhir/metadata",
        tmp / "fhir.log",
    )  # fmt: skip
    model = Proc(
        ["model", "serve", "--policy", "reference", "--latency", LATENCY],
        "/v1/models",
        tmp / "model.log",
    )
    agent = agent_proc(fhir, model, tmp, "approve")
    started = [fhir, model, agent]
    try:
        fhir.spawn()
        model.spawn()  # both start at once; the agent needs neither to start
        agent.spawn()
        for proc in started:
            proc.wait_ready()
        yield Stack(fhir, model, agent, tmp)
    finally:
        for proc in reversed(started):
            proc.stop()


@dataclass(frozen=True)
class Patient:
    mrn: str
    given: str
    family: str
    birth_date: str
    magnesium: float  # the last within 24 h of the benchmark clock, mg/dL


@pytest.fixture(scope="module")
def low_mg(stack: Stack) -> list[Patient]:
    """Patients whose last magnesium of the last 24 h is low (≤ 1.9 mg/dL): the reference
    policy orders IV replacement for them."""
    since = BENCH_NOW - timedelta(hours=24)
    found = []
    for entry in stack.fhir_get("Patient?_count=100").get("entry", []):
        patient = entry["resource"]
        bundle = stack.fhir_get(f"Observation?patient={patient['id']}&code=MG&_count=5000")
        latest: tuple[datetime, float] | None = None
        for e in bundle.get("entry", []):
            when = datetime.fromisoformat(e["resource"]["effectiveDateTime"])
            value = e["resource"]["valueQuantity"]["value"]
            if when >= since and (latest is None or when > latest[0]):
                latest = (when, value)
        if latest is not None and latest[1] <= 1.9:
            name = patient["name"][0]
            found.append(
                Patient(
                    patient["id"], name["given"][0], name["family"], patient["birthDate"], latest[1]
                )
            )
    assert found, "the synthetic EHR has no patient with a low magnesium in the last 24 h"
    return found


@pytest.fixture(scope="module")
def start_agent(stack: Stack) -> Iterator[Any]:
    """``start_agent(write_mode)``: one more agent on the module's FHIR and model servers."""
    started: list[Proc] = []

    def start(write_mode: str) -> Proc:
        proc = agent_proc(stack.fhir, stack.model, stack.tmp, write_mode)
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.stop()
