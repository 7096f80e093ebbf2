"""Real processes for the PHI scan: ``sara fhir serve --synthetic``, the reference model server
and ``sara agent serve --write-mode approve``, each on a free port of 127.0.0.1 with its INFO
JSON logs in a file, started once per module and stopped after it. Child processes inherit no
``SARA_AGENT_*`` variable from the test runner; run store, audit sink and logs live in a
temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import SARA, Proc

SIGNER, SIGNER_KEY = "dr-signer", "phi-test-signer-key-0123456789abcdef"
KIOSK, KIOSK_KEY = "front-desk", "phi-test-kiosk-key-0123456789abcdef"
PATIENTS = 20  # synthetic patients: seeded in ~6 s, enough names for a meaningful vocabulary


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
