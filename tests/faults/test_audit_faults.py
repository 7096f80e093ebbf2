"""Audit sink faults: a full disk and an unwritable file fail closed.

Honest faults, not mocks: ``/dev/full`` answers every write with ``ENOSPC`` (what a full disk
does), and sysfs refuses to create a file even for root (``EACCES``), as a read-only
directory does. No FHIR call goes out while the sink cannot write, no read reaches the model
without its record, the task says why, and the metrics and ``/readyz`` say so too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultapp import AUTH, MRN, TASK, agent_app, client, sample

from sara.agent import fakes
from sara.agent.audit import AuditRecord, StreamAuditSink, open_sink
from sara.agent.errors import AuditError

pytestmark = pytest.mark.timeout(60)

FULL = "audit sink unwritable: No space left on device (ENOSPC)"
ORDER = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "BP"},
    "subject": {"reference": f"Patient/{MRN}"},
    "valueString": "118/77 mmHg",
}


def record() -> AuditRecord:
    return AuditRecord(
        ts=datetime.now(UTC).isoformat(),
        task_id="t",
        round=1,
        caller="local",
        method="GET",
        resource_type="Patient",
        patient=None,
        status=200,
        duration_ms=1.0,
        outcome="ok",
    )


def full_sink() -> StreamAuditSink:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    return open_sink("/dev/full")


class Fhir:
    """The fake FHIR server, counting what reaches it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._inner = fakes.fhir_handler()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/metadata"):  # readiness reads no patient data
            self.requests.append(request)
        return self._inner(request)


def models(*replies: str) -> Any:
    """A model answering each task with ``replies`` in order (counted by its history)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # readiness: GET /models
            return httpx.Response(200, json={"data": []})
        seen.append(request)
        asked = sum(1 for m in json.loads(request.content)["messages"] if m["role"] == "user")
        reply = replies[min(asked, len(replies)) - 1]
        return httpx.Response(200, json=fakes.completion(reply))

    handle.seen = seen  # type: ignore[attr-defined]
    return handle


def test_full_disk_raises_and_is_remembered() -> None:
    sink = full_sink()
    with pytest.raises(AuditError, match=r"No space left on device \(ENOSPC\)") as info:
        sink.write(record())
    assert info.value.errno_name == "ENOSPC"
    assert sink.failure == FULL and sink.probe() == FULL  # still full
    sink.close()


async def test_a_read_whose_record_cannot_be_written_is_withheld_then_calls_are_refused() -> None:
    fhir = Fhir()
    model = models(f"GET http://fhir.test/fhir/Patient?identifier={MRN}", "FINISH([1])")
    sink = full_sink()
    async with client(agent_app(model=model, fhir=fhir, audit=sink)) as c:
        first = (await c.post("/v1/tasks", json=TASK, headers=AUTH)).json()
        # the read went out (the sink had not failed yet), but its record could not be
        # written: its answer never reached the model, the task ended in words
        assert first["status"] == "task error" and first["error"] == FULL
        assert len(fhir.requests) == 1 and len(model.seen) == 1
        assert all(h["role"] != "user" or "Here is the response" not in h["content"]
                   for h in first["history"])  # fmt: skip
        stored = (await c.get(f"/v1/tasks/{first['task_id']}", headers=AUTH)).json()
        assert stored["error"] == FULL
        # now the sink is known to fail: the next task is refused before any FHIR call
        second = (await c.post("/v1/tasks", json=TASK, headers=AUTH)).json()
        assert second["status"] == "task error" and second["error"] == FULL
        assert len(fhir.requests) == 1
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["audit"] is False and ready.json()["audit_error"] == FULL
        metrics = (await c.get("/metrics")).text
    assert sample(metrics, "sara_audit_sink_up") == 0
    assert sample(metrics, "sara_audit_write_failures_total", errno="ENOSPC") == 2
    sink.close()


async def test_no_write_goes_out_without_its_intent_record() -> None:
    fhir = Fhir()
    model = models(f"POST http://fhir.test/fhir/Observation\n{json.dumps(ORDER)}", "FINISH([])")
    sink = full_sink()
    app = agent_app(model=model, fhir=fhir, audit=sink, write_mode="execute")
    async with client(app) as c:
        answer = (await c.post("/v1/tasks", json=TASK, headers=AUTH)).json()
    assert answer["status"] == "task error" and answer["error"] == FULL
    assert [r.method for r in fhir.requests] == []  # the POST was never sent
    sink.close()


async def test_an_unwritable_file_keeps_the_agent_unready_and_refuses_calls() -> None:
    sink = open_sink("/sys/sara-audit.jsonl")  # sysfs: no new files, even for root
    if sink.failure is None or "EACCES" not in sink.failure:
        sink.close()
        pytest.skip("this system's /sys lets the file be created")
    expected = (
        "audit sink unwritable: cannot open /sys/sara-audit.jsonl: Permission denied (EACCES)"
    )
    assert sink.failure == expected
    fhir = Fhir()
    model = models(f"GET http://fhir.test/fhir/Patient?identifier={MRN}", "FINISH([1])")
    async with client(agent_app(model=model, fhir=fhir, audit=sink)) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["audit_error"] == expected
        answer = (await c.post("/v1/tasks", json=TASK, headers=AUTH)).json()
        metrics = (await c.get("/metrics")).text
    assert answer["status"] == "task error" and answer["error"].endswith("(EACCES)")
    assert fhir.requests == []
    assert sample(metrics, "sara_audit_sink_up") == 0
    assert sample(metrics, "sara_audit_write_failures_total", errno="EACCES") == 1


async def test_the_sink_recovers_once_its_file_can_be_opened(tmp_path: Path) -> None:
    blocker = tmp_path / "audit"
    blocker.write_text("a file where the audit directory should be")
    path = blocker / "audit.jsonl"
    sink = open_sink(str(path))
    assert sink.failure is not None and sink.failure.startswith("audit sink unwritable: cannot")
    fhir = Fhir()
    model = models(f"GET http://fhir.test/fhir/Patient?identifier={MRN}", "FINISH([1])")
    async with client(agent_app(model=model, fhir=fhir, audit=sink)) as c:
        assert (await c.get("/readyz")).status_code == 503
        blocker.unlink()  # the operator fixes the volume
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["audit"] is True
        answer = (await c.post("/v1/tasks", json=TASK, headers=AUTH)).json()
        metrics = (await c.get("/metrics")).text
    sink.close()
    assert answer["status"] == "completed" and answer["error"] is None
    assert sample(metrics, "sara_audit_sink_up") == 1
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["method"], r["outcome"]) for r in lines] == [("GET", "ok")]


class Breakable(StreamAuditSink):
    """A sink on a file whose disk fills up when the test says so (the kernel's ENOSPC, from
    writing to /dev/full from then on)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.open("a", encoding="utf-8"), owned=True, name=str(path))
        self.path = path

    def fill_disk(self) -> None:
        self.close()
        self._stream = Path("/dev/full").open("a", encoding="utf-8")  # noqa: SIM115


async def test_a_decision_the_sink_cannot_record_is_refused_and_nothing_is_decided(
    tmp_path: Path,
) -> None:
    full_sink().close()  # skips without /dev/full
    fhir = Fhir()
    model = models(f"POST http://fhir.test/fhir/Observation\n{json.dumps(ORDER)}", "FINISH([])")
    sink = Breakable(tmp_path / "audit.jsonl")
    async with client(agent_app(model=model, fhir=fhir, audit=sink, write_mode="approve")) as c:
        waiting = await c.post("/v1/tasks", json=TASK, headers=AUTH)
        assert waiting.status_code == 202, waiting.text
        task = waiting.json()
        [action] = task["actions"]
        decide = f"/v1/tasks/{task['id']}/actions/{action['id']}"
        body = {"decision": "approve", "payload_sha256": action["payload_sha256"]}
        sink.fill_disk()
        refused = await c.post(decide, json=body, headers=AUTH)
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "audit_unwritable"
        assert refused.json()["detail"] == FULL
        after = (await c.get(f"/v1/tasks/{task['id']}", headers=AUTH)).json()
        assert after["status"] == "awaiting_approval"
        assert after["actions"][0]["status"] == "pending"  # nothing was decided
    assert fhir.requests == []  # and nothing reached the chart
    kinds = [json.loads(line).get("kind") for line in sink.path.read_text().splitlines()]
    assert "decision" not in kinds and "decision_request" not in kinds
    sink.close()


async def test_a_refused_decision_is_on_record_beside_its_request(tmp_path: Path) -> None:
    model = models(f"POST http://fhir.test/fhir/Observation\n{json.dumps(ORDER)}", "FINISH([])")
    sink = StreamAuditSink((tmp_path / "a.jsonl").open("a"), owned=True)
    async with client(agent_app(model=model, audit=sink, write_mode="approve")) as c:
        task = (await c.post("/v1/tasks", json=TASK, headers=AUTH)).json()
        [action] = task["actions"]
        decide = f"/v1/tasks/{task['id']}/actions/{action['id']}"
        wrong = await c.post(decide, json={"decision": "approve", "payload_sha256": "0" * 64},
                             headers=AUTH)  # fmt: skip
        assert wrong.status_code == 409
        right = {"decision": "deny", "payload_sha256": action["payload_sha256"]}
        assert (await c.post(decide, json=right, headers=AUTH)).status_code == 200
    sink.close()
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    decisions = [(r["kind"], r["outcome"]) for r in records if r.get("kind", "").startswith("dec")]
    assert decisions == [
        ("decision_request", "approved"),
        ("decision_refused", "approved"),
        ("decision_request", "denied"),
        ("decision", "denied"),
    ]
    refused = next(r for r in records if r.get("kind") == "decision_refused")
    assert refused["payload_sha256"] == "0" * 64
    assert refused["reason"].startswith("payload_sha256 does not match the payload shown")
