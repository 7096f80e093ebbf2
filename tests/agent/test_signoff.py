"""Sign-off of writes (write mode ``approve``), roles, history and resumable event streams,
driven through the agent's ASGI app with its lifespan, a SQLite run store and fake servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sara.agent import fakes, sse
from sara.agent.api.app import create_app
from sara.agent.api.auth import load_keys
from sara.agent.audit import AuditRecord, DecisionRecord, MemoryAuditSink
from sara.agent.errors import ConfigError
from sara.agent.settings import AgentSettings
from sara.agent.store.runs import canonical

BASE = "http://fhir.test/fhir/"
MRN = "S6315806"
SIGNER, KIOSK, READER = "signer-key-0123456789", "kiosk-key-0123456789", "reader-key-0123456789"
KEYS = f"""
- name: dr-signer
  roles: [run, approve, read]
  key: {SIGNER}
- name: kiosk
  roles: [run]
  key: {KIOSK}
- name: auditor
  roles: [read]
  key: {READER}
"""
ORDER = {
    "resourceType": "MedicationRequest",
    "medicationCodeableConcept": {
        "text": "Magnesium sulfate",
        "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0338-1715-40"}],
    },
    "dosageInstruction": [
        {
            "route": "IV",
            "doseAndRate": [
                {
                    "doseQuantity": {"value": 2, "unit": "g"},
                    "rateQuantity": {"value": 2, "unit": "h"},
                }
            ],
        }
    ],
    "status": "active",
    "intent": "order",
    "subject": {"reference": f"Patient/{MRN}"},
}
TASK = {"instruction": f"Check {MRN}'s magnesium; if low, order IV replacement", "context": "now"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def policy(order: dict[str, Any] = ORDER) -> Any:
    """GET the magnesium, POST the order, then FINISH (saying what it was told)."""

    def answer(messages: list[dict[str, str]]) -> str:
        turns = sum(1 for m in messages if m["role"] == "assistant")
        if turns == 0:
            return f"GET {BASE}Observation?patient={MRN}&code=MG"
        if turns == 1:
            return f"POST {BASE}MedicationRequest\n{json.dumps(order)}"
        told = "declined" if "declined" in messages[-1]["content"] else "done"
        return f'FINISH(["{told}"])'

    return answer


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(KEYS)
    return path


@contextlib.asynccontextmanager
async def running(
    keyfile: Path,
    *,
    model: Any = None,
    fhir_posts: list[httpx.Request] | None = None,
    audit: MemoryAuditSink | None = None,
    **kw: Any,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    handler = fakes.fhir_handler()

    def fhir(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and fhir_posts is not None:
            fhir_posts.append(request)
        return handler(request)

    options: dict[str, Any] = {
        "fhir_url": BASE,
        "model_url": "http://model.test/v1",
        "model": "fake-model",
        "api_keys_file": keyfile,
        "write_mode": "approve",
        "model_max_retries": 0,
    }
    settings = AgentSettings(**{**options, **kw})
    app = create_app(
        settings,
        model_transport=httpx.MockTransport(fakes.model_handler(model or policy())),
        fhir_transport=httpx.MockTransport(fhir),
        audit=audit if audit is not None else MemoryAuditSink(),
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://agent.test", timeout=10) as c,
    ):
        yield app, c


async def until(c: httpx.AsyncClient, task_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(500):
        view: dict[str, Any] = (await c.get(f"/v1/tasks/{task_id}", headers=auth(SIGNER))).json()
        if view["status"] in statuses:
            return view
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {task_id} never reached {statuses}: {view['status']}")


async def start(c: httpx.AsyncClient, key: str = SIGNER, **body: Any) -> str:
    r = await c.post(
        "/v1/tasks", json={**TASK, **body}, headers={**auth(key), "Prefer": "respond-async"}
    )
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/v1/tasks/{r.json()['id']}"
    return str(r.json()["id"])


async def test_approve_writes_exactly_the_payload_shown(keyfile: Path) -> None:
    posts: list[httpx.Request] = []
    audit = MemoryAuditSink()
    async with running(keyfile, fhir_posts=posts, audit=audit) as (_app, c):
        task_id = await start(c, key=KIOSK)
        view = await until(c, task_id, "awaiting_approval")
        assert view["patient"] == MRN and view["principal"] == "kiosk"
        (pending,) = view["actions"]
        assert pending["status"] == "pending" and pending["payload"] == ORDER
        assert pending["summary"] == (
            "MedicationRequest: Magnesium sulfate (NDC 0338-1715-40) — 2 g IV over 2 h"
        )
        assert posts == []  # nothing written before a signature
        listed = (await c.get("/v1/tasks?status=awaiting_approval", headers=auth(SIGNER))).json()
        assert [t["id"] for t in listed["items"]] == [task_id]
        assert listed["items"][0]["pending_actions"] == 1
        metrics = (await c.get("/metrics")).text
        assert "sara_approvals_pending 1.0" in metrics

        url = f"/v1/tasks/{task_id}/actions/{pending['id']}"
        body = {"decision": "approve", "payload_sha256": pending["payload_sha256"]}
        assert (await c.post(url, json=body, headers=auth(KIOSK))).status_code == 403
        wrong = {**body, "payload_sha256": "0" * 64}
        assert (await c.post(url, json=wrong, headers=auth(SIGNER))).status_code == 409
        other = await c.post(f"/v1/tasks/{task_id}/actions/nope", json=body, headers=auth(SIGNER))
        assert other.status_code == 404
        signed = await c.post(url, json=body, headers=auth(SIGNER))
        assert signed.status_code == 200, signed.text
        decided = signed.json()
        assert decided["status"] == "approved" and decided["decided_by"] == "dr-signer"
        assert decided["write_status"] == 201 and decided["written_ref"] == "MedicationRequest/9001"
        again = await c.post(url, json=body, headers=auth(SIGNER))
        assert again.status_code == 409 and "approved by dr-signer" in again.json()["detail"]

        done = await until(c, task_id, "finished")
        assert done["outcome"] == "completed" and done["answer"] == '["done"]'
        (post,) = posts
        assert post.content.decode() == canonical(ORDER)  # the signed bytes, exactly
        assert "created MedicationRequest/9001" in done["result"]["history"][-2]["content"]
        metrics = (await c.get("/metrics")).text
        assert 'sara_approval_decisions_total{outcome="approved"} 1.0' in metrics
        assert "sara_approvals_pending 0.0" in metrics
    decisions = [r for r in audit.records if isinstance(r, DecisionRecord)]
    writes = [r for r in audit.records if isinstance(r, AuditRecord) and r.method == "POST"]
    # each attempt is on record before it counts; the wrong hash's was refused
    assert [(d.kind, d.principal, d.outcome, d.payload_sha256) for d in decisions] == [
        ("decision_request", "dr-signer", "approved", "0" * 64),
        ("decision_refused", "dr-signer", "approved", "0" * 64),
        ("decision_request", "dr-signer", "approved", pending["payload_sha256"]),
        ("decision", "dr-signer", "approved", pending["payload_sha256"]),
    ]
    # the intent record is written (and flushed) before the POST is sent: fail closed
    assert [(w.outcome, w.signed_by, w.status, w.caller) for w in writes] == [
        ("intent", "dr-signer", None, "kiosk"),
        ("ok", "dr-signer", 201, "kiosk"),
    ]


async def test_deny_tells_the_model_and_writes_nothing(keyfile: Path) -> None:
    posts: list[httpx.Request] = []
    async with running(keyfile, fhir_posts=posts) as (_app, c):
        task_id = await start(c)
        (pending,) = (await until(c, task_id, "awaiting_approval"))["actions"]
        r = await c.post(
            f"/v1/tasks/{task_id}/actions/{pending['id']}",
            json={
                "decision": "deny",
                "payload_sha256": pending["payload_sha256"],
                "reason": "magnesium was repleted this morning",
            },
            headers=auth(SIGNER),
        )
        assert r.status_code == 200 and r.json()["status"] == "denied"
        done = await until(c, task_id, "finished")
        told = done["result"]["history"][-2]["content"]
        assert "declined" in told and "magnesium was repleted this morning" in told
        assert done["answer"] == '["declined"]' and posts == []


async def test_orders_for_another_patient_are_refused_before_anyone_signs(keyfile: Path) -> None:
    other = {**ORDER, "subject": {"reference": "Patient/S0000001"}}
    async with running(keyfile, model=policy(other)) as (_app, c):
        task_id = await start(c)
        done = await until(c, task_id, "finished")
        assert done["actions"] == []
        assert "this task concerns Patient/S6315806" in done["result"]["history"][-2]["content"]


async def test_an_unsigned_order_expires_and_the_model_hears_it(keyfile: Path) -> None:
    async with running(keyfile, approval_ttl_seconds=0.3, worker_lease_seconds=1.0) as (_app, c):
        task_id = await start(c)
        (pending,) = (await until(c, task_id, "awaiting_approval"))["actions"]
        done = await until(c, task_id, "finished")
        assert done["actions"][0]["status"] == "expired"
        assert "expired" in done["result"]["history"][-2]["content"]
        late = await c.post(
            f"/v1/tasks/{task_id}/actions/{pending['id']}",
            json={"decision": "approve", "payload_sha256": pending["payload_sha256"]},
            headers=auth(SIGNER),
        )
        assert late.status_code == 409


async def test_roles_limit_what_each_key_sees_and_does(keyfile: Path) -> None:
    async with running(keyfile) as (_app, c):
        mine = await start(c, key=KIOSK)
        theirs = await start(c, key=SIGNER)
        await until(c, mine, "awaiting_approval")
        await until(c, theirs, "awaiting_approval")
        assert (await c.get(f"/v1/tasks/{theirs}", headers=auth(KIOSK))).status_code == 404
        assert (await c.get(f"/v1/tasks/{mine}", headers=auth(KIOSK))).status_code == 200
        own = (await c.get("/v1/tasks", headers=auth(KIOSK))).json()["items"]
        assert [t["id"] for t in own] == [mine]
        spying = await c.get("/v1/tasks?principal=dr-signer", headers=auth(KIOSK))
        assert spying.status_code == 403
        everyone = (await c.get("/v1/tasks", headers=auth(READER))).json()["items"]
        assert [t["id"] for t in everyone] == [theirs, mine]
        assert (await c.post("/v1/tasks", json=TASK, headers=auth(READER))).status_code == 403
        assert (await c.post(f"/v1/tasks/{theirs}:cancel", headers=auth(KIOSK))).status_code == 404
        cancelled = await c.post(f"/v1/tasks/{mine}:cancel", headers=auth(KIOSK))
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        view = await until(c, mine, "cancelled")
        assert (
            view["reason"] == "cancelled by kiosk" and view["actions"][0]["status"] == "cancelled"
        )
        again = await c.post(f"/v1/tasks/{mine}:cancel", headers=auth(KIOSK))
        assert again.status_code == 409
        bad = await c.get("/v1/tasks?status=bogus", headers=auth(READER))
        assert bad.status_code == 422
        assert (await c.get("/v1/tasks?cursor=zzz", headers=auth(READER))).status_code == 422
        by_patient = await c.get(f"/v1/tasks?patient=Patient/{MRN}", headers=auth(READER))
        assert len(by_patient.json()["items"]) == 2


async def test_json_waits_then_answers_202_at_the_pause_and_sse_streams_through_it(
    keyfile: Path,
) -> None:
    async with running(keyfile) as (_app, c):
        r = await c.post("/v1/tasks", json=TASK, headers=auth(SIGNER))
        assert r.status_code == 202 and r.json()["status"] == "awaiting_approval"

        async def approve_when_asked() -> None:
            # the ASGI transport hands over a response only once it is complete: find the task
            # by listing what waits for a signature (not the first one, answered 202 above)
            for _ in range(500):
                query = "/v1/tasks?status=awaiting_approval"
                waiting = (await c.get(query, headers=auth(SIGNER))).json()["items"]
                fresh = [t for t in waiting if t["id"] != r.json()["id"]]
                if fresh:
                    break
                await asyncio.sleep(0.01)
            view = (await c.get(f"/v1/tasks/{fresh[0]['id']}", headers=auth(SIGNER))).json()
            (pending,) = view["actions"]
            body = {"decision": "approve", "payload_sha256": pending["payload_sha256"]}
            url = f"/v1/tasks/{view['id']}/actions/{pending['id']}"
            assert (await c.post(url, json=body, headers=auth(SIGNER))).status_code == 200

        signer = asyncio.create_task(approve_when_asked())
        streamed = await asyncio.wait_for(
            c.post("/v1/tasks", json=TASK, headers={**auth(SIGNER), "Accept": sse.MEDIA_TYPE}),
            20,
        )
        await asyncio.wait_for(signer, 5)
        text = streamed.text
        kinds = [k for k, _ in sse.decode(text)]
        assert kinds == [
            "round_started", "model_output", "fhir_request", "fhir_response",
            "round_started", "model_output", "approval_requested", "approval_decided",
            "fhir_request", "fhir_response", "round_started", "model_output", "finished",
        ]  # fmt: skip
        ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
        assert ids == list(range(1, len(kinds) + 1))


async def test_last_event_id_resumes_without_loss_or_duplicates(keyfile: Path) -> None:
    async with running(keyfile, write_mode="execute") as (_app, c):
        task_id = await start(c)
        await until(c, task_id, "finished")
        full = (await c.get(f"/v1/tasks/{task_id}/events", headers=auth(SIGNER))).text
        frames = list(sse.decode(full))
        assert [k for k, _ in frames][-1] == "finished"
        for cut in range(len(frames) + 1):
            head = {**auth(SIGNER), "Last-Event-ID": str(cut)}
            rest = (await c.get(f"/v1/tasks/{task_id}/events", headers=head)).text
            assert list(sse.decode(rest)) == frames[cut:]
        query = await c.get(f"/v1/tasks/{task_id}/events?after=3", headers=auth(SIGNER))
        assert list(sse.decode(query.text)) == frames[3:]
        bad = await c.get(
            f"/v1/tasks/{task_id}/events", headers={**auth(SIGNER), "Last-Event-ID": "x"}
        )
        assert bad.status_code == 422


def test_key_files_plain_or_yaml(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("# comment\nkey-one\nkey-two\n")
    entries = load_keys("", plain)
    assert len(entries) == 2 and all(e.roles == {"run", "approve", "read"} for e in entries)
    hashed = tmp_path / "hashed.yaml"
    import hashlib

    digest = hashlib.sha256(b"a-long-enough-secret").hexdigest()
    hashed.write_text(f"- name: nurse\n  roles: [run]\n  key_sha256: {digest}\n")
    (entry,) = load_keys("", hashed)
    assert entry.name == "nurse" and entry.roles == {"run"}
    for bad in (
        "- name: x\n  roles: [run]\n",  # no key
        "- name: x\n  roles: [fly]\n  key: a-long-enough-secret\n",
        "- name: x\n  roles: [run]\n  key: short\n",
        "- name: x\n  roles: [run]\n  key_sha256: abc\n",
        "- name: x\n  roles: [run]\n  key: a-long-enough-secret\n  extra: 1\n",
        "- name: x\n  roles: [run]\n  key: a-long-enough-secret-1\n"
        "- name: x\n  roles: [run]\n  key: a-long-enough-secret-2\n",
    ):
        hashed.write_text(bad)
        with pytest.raises(ConfigError):
            load_keys("", hashed)
