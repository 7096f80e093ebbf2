"""The routes the console needs beside the task API, through the ASGI app with fake servers:
``GET /v1/me``, a recorded GET read again (``…/events/{seq}/response``), its trend
(``…/events/{seq}/trend``) and the task's patient (``…/patient``) — guarded, audited, counted."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from sara.agent import fakes
from sara.agent.api.app import create_app
from sara.agent.audit import AuditRecord, MemoryAuditSink
from sara.agent.settings import AgentSettings

BASE = "http://fhir.test/fhir/"
MRN = "S6315806"
SIGNER, KIOSK = "signer-key-0123456789", "kiosk-key-0123456789"
KEYS = f"""
- name: dr-signer
  roles: [run, approve, read]
  key: {SIGNER}
- name: kiosk
  roles: [run]
  key: {KIOSK}
"""
TASK = {"instruction": f"How many magnesium results does {MRN} have?", "context": "now"}
Handler = Callable[[httpx.Request], httpx.Response]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Fhir:
    """The fake FHIR server, recording what it is asked; ``mode`` breaks it on purpose."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.mode = "ok"
        self._inner = fakes.fhir_handler()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.mode == "down" and "metadata" not in request.url.path:
            raise httpx.ConnectError("connection refused")
        if self.mode == "500":
            return httpx.Response(500, json={"resourceType": "OperationOutcome"})
        if self.mode == "text":
            return httpx.Response(200, text="<html>not FHIR</html>")
        return self._inner(request)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, fhir: Fhir, audit: MemoryAuditSink, **kw: Any
) -> AsyncIterator[httpx.AsyncClient]:
    keys = tmp_path / "keys.yaml"
    keys.write_text(KEYS)
    settings = AgentSettings(
        fhir_url=BASE,
        model_url="http://model.test/v1",
        model="fake-model",
        api_keys_file=keys,
        model_max_retries=0,
        **kw,
    )
    app: FastAPI = create_app(
        settings,
        model_transport=httpx.MockTransport(fakes.model_handler()),
        fhir_transport=httpx.MockTransport(fhir),
        audit=audit,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a.test") as c,
    ):
        yield c


def frames(text: str) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        out.append((int(fields["id"]), fields["event"], orjson.loads(fields["data"])))
    return out


async def finished_task(c: httpx.AsyncClient, key: str = SIGNER, **body: Any) -> tuple[str, int]:
    """Run the fake policy's task (GET its Observations, FINISH); its id and the GET's seq."""
    r = await c.post("/v1/tasks", json={**TASK, **body}, headers=auth(key))
    assert r.status_code == 200, r.text
    task_id = r.headers["x-task-id"]
    events = frames((await c.get(f"/v1/tasks/{task_id}/events", headers=auth(key))).text)
    [seq] = [s for s, kind, data in events if kind == "fhir_request" and data["method"] == "GET"]
    return task_id, seq


@pytest.fixture
def fhir() -> Fhir:
    return Fhir()


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


async def test_me_names_the_key_and_its_roles(tmp_path: Path, fhir: Fhir, audit: Any) -> None:
    async with running(tmp_path, fhir, audit, write_mode="approve") as c:
        me = (await c.get("/v1/me", headers=auth(KIOSK))).json()
        assert me == {"name": "kiosk", "roles": ["run"], "auth": "enabled", "write_mode": "approve"}
        assert (await c.get("/v1/me", headers=auth(SIGNER))).json()["roles"] == [
            "approve",
            "read",
            "run",
        ]
        r = await c.get("/v1/me")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_a_recorded_get_is_read_again_audited_and_counted(
    tmp_path: Path, fhir: Fhir, audit: MemoryAuditSink
) -> None:
    async with running(tmp_path, fhir, audit) as c:
        task_id, seq = await finished_task(c)
        sent_by_agent = str(fhir.requests[-1].url)
        before = len(audit.records)
        r = await c.get(f"/v1/tasks/{task_id}/events/{seq}/response", headers=auth(SIGNER))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["url"] == f"Observation?patient={MRN}&code=MG&_format=json"
        assert body["resource"]["resourceType"] == "Bundle"
        assert len(body["resource"]["entry"]) == 3
        assert body["read_at"].endswith("+00:00")
        assert str(fhir.requests[-1].url) == sent_by_agent  # the same request, again
        [record] = audit.records[before:]
        assert isinstance(record, AuditRecord)
        assert (record.caller, record.via, record.method, record.outcome, record.status) == (
            "dr-signer",
            "console",
            "GET",
            "ok",
            200,
        )
        assert record.patient == f"Patient/{MRN}" and record.task_id == task_id
        assert '"via":"console"' in record.to_json()
        metrics = (await c.get("/metrics")).text
        assert 'sara_console_reads_total{outcome="ok"} 1.0' in metrics
        assert (
            'sara_fhir_requests_total{method="GET",resource_type="Observation",status_class="2xx"}'
            " 2.0" in metrics
        )


async def test_only_a_get_the_task_sent_and_only_for_who_may_see_it(
    tmp_path: Path, fhir: Fhir, audit: MemoryAuditSink
) -> None:
    async with running(tmp_path, fhir, audit) as c:
        task_id, seq = await finished_task(c)
        url = f"/v1/tasks/{task_id}/events"
        for other in (1, seq + 1):  # round_started, fhir_response
            r = await c.get(f"{url}/{other}/response", headers=auth(SIGNER))
            assert r.status_code == 409 and r.json()["code"] == "not_readable"
        assert (await c.get(f"{url}/999/response", headers=auth(SIGNER))).status_code == 404
        assert (await c.get(f"{url}/0/response", headers=auth(SIGNER))).status_code == 422
        assert (await c.get(f"{url}/{seq}/response", headers=auth(KIOSK))).status_code == 404
        assert (await c.get(f"{url}/{seq}/response")).status_code == 401
        assert (
            await c.get(f"/v1/tasks/nope/events/{seq}/response", headers=auth(SIGNER))
        ).status_code == 404
        # the kiosk sees its own task
        own, own_seq = await finished_task(c, key=KIOSK)
        r = await c.get(f"/v1/tasks/{own}/events/{own_seq}/response", headers=auth(KIOSK))
        assert r.status_code == 200


@pytest.mark.parametrize(
    ("mode", "code", "outcome"),
    [
        ("down", "fhir_unreachable", "transport_error"),
        ("500", "fhir_error", "http_error"),
        ("text", "not_json", "ok"),
    ],
)
async def test_fhir_failures_are_502_with_a_code(
    tmp_path: Path, fhir: Fhir, audit: MemoryAuditSink, mode: str, code: str, outcome: str
) -> None:
    async with running(tmp_path, fhir, audit) as c:
        task_id, seq = await finished_task(c)
        fhir.mode = mode
        r = await c.get(f"/v1/tasks/{task_id}/events/{seq}/response", headers=auth(SIGNER))
        assert r.status_code == 502 and r.json()["code"] == code
        assert audit.records[-1].outcome == outcome  # type: ignore[union-attr]
        metrics = (await c.get("/metrics")).text
        label = {"down": "transport_error", "500": "http_error", "text": "not_json"}[mode]
        assert f'sara_console_reads_total{{outcome="{label}"}} 1.0' in metrics


async def test_an_answer_over_the_cap_is_not_shown_cut(
    tmp_path: Path, fhir: Fhir, audit: MemoryAuditSink
) -> None:
    async with running(tmp_path, fhir, audit, fhir_max_response_bytes=300) as c:
        task_id, seq = await finished_task(c)
        r = await c.get(f"/v1/tasks/{task_id}/events/{seq}/response", headers=auth(SIGNER))
        assert r.status_code == 502 and r.json()["code"] == "too_large"


async def test_the_trend_reads_the_same_patient_and_code_without_a_window(
    tmp_path: Path, fhir: Fhir, audit: MemoryAuditSink
) -> None:
    async with running(tmp_path, fhir, audit) as c:
        task_id, seq = await finished_task(c)
        r = await c.get(f"/v1/tasks/{task_id}/events/{seq}/trend", headers=auth(SIGNER))
        assert r.status_code == 200, r.text
        asked = fhir.requests[-1].url
        assert asked.path == "/fhir/Observation"
        assert dict(asked.params) == {
            "patient": MRN,
            "code": "MG",
            "_sort": "-date",
            "_count": "30",
        }
        assert r.json()["resource"]["resourceType"] == "Bundle"
        assert audit.records[-1].via == "console"  # type: ignore[union-attr]


async def test_the_patient_is_read_by_id_then_by_identifier(
    tmp_path: Path, fhir: Fhir, audit: MemoryAuditSink
) -> None:
    async with running(tmp_path, fhir, audit) as c:
        task_id, _ = await finished_task(c, patient=MRN)
        r = await c.get(f"/v1/tasks/{task_id}/patient", headers=auth(SIGNER))
        assert r.status_code == 200, r.text
        # The fake server knows no Patient/{id}: the MRN is then searched as an identifier.
        paths = [(q.url.path, dict(q.url.params)) for q in fhir.requests[-2:]]
        assert paths == [
            (f"/fhir/Patient/{MRN}", {}),
            ("/fhir/Patient", {"identifier": MRN}),
        ]
        assert r.json()["url"] == f"Patient?identifier={MRN}"
        untold, _ = await finished_task(c)
        # the loop records the first patient it read as the task's patient
        r = await c.get(f"/v1/tasks/{untold}/patient", headers=auth(SIGNER))
        assert r.status_code == 200
