"""Clinician sign-off end to end: `sara agent serve --write-mode approve`, real processes only.

Everything runs on 127.0.0.1: a FHIR server of this module's own (a fresh copy of the EHR charted
for the real MedAgentBench patients, so the orders signed here never reach the session's shared
server), the reference model server, and agents in write mode ``approve`` with a YAML key file
holding a signer (``run, approve, read``) and a kiosk (``run`` only). Proven here:

1. a low-magnesium task pauses at ``approval_requested``; the signer's approval writes exactly the
   MedicationRequest shown (read back from the FHIR server), the task finishes ``completed`` and
   the audit names the signer (``signed_by``) beside a ``"kind": "decision"`` record;
2. a denial writes nothing and the model is told why;
3. a ``run``-only key gets 403, a wrong hash 409, an unknown action 404, a second decision 409;
4. an agent SIGKILLed while a task waits is restarted on the same store: history still lists
   every task and approving there finishes the task;
5. a task running when its agent is SIGKILLed becomes ``interrupted`` after the restart (worker
   lease 2 s) and is never re-run;
6. two agents on one PostgreSQL database: a task started on A is listed, streamed and signed on B;
7. an events stream dropped and resumed with ``Last-Event-ID`` gives every event exactly once;
8. the 300 official tasks with an auto-approving client grade exactly as in acknowledge mode.

Also: an order nobody signs expires (nothing written, the model told, a late approval 409); and
the audit records of the reads before a pause survive a crash while the task waits (the loop
flushes the audit sink before it pauses).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sara.bench import grader
from sara.bench.groundtruth import GroundTruth

Proc = Any  # tests/integration/conftest.py: a running `sara` child process (root, start, kill)

SIGNER, SIGNER_KEY = "dr-signer", "signoff-test-signer-key-0123456789"
KIOSK, KIOSK_KEY = "kiosk", "signoff-test-kiosk-key-0123456789"
DEADLINE = 60.0  # seconds any single wait in these tests may take
DECLINED = "POST request declined: the clinician did not sign this MedicationRequest"


def auth(key: str = SIGNER_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def body(case: dict[str, Any]) -> dict[str, Any]:
    return {"instruction": case["instruction"], "context": case["context"]}


def digest(payload: Any) -> str:
    """SHA-256 of the canonical JSON of a payload (sorted keys, no spaces)."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


#: A few keys play every client of the 300-task runs: per-key rates and concurrency off.
PER_KEY_LIMITS_OFF = {
    "SARA_AGENT_TASK_RATE_PER_MINUTE": "0",
    "SARA_AGENT_DECISION_RATE_PER_MINUTE": "0",
    "SARA_AGENT_MAX_TASKS_PER_KEY": "0",
    "SARA_AGENT_MAX_STREAMS_PER_KEY": "0",
}


def client(root: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=root, timeout=DEADLINE, trust_env=False)


# --- the module's processes ------------------------------------------------------------------


@dataclass
class Agent:
    proc: Proc
    audit: Path

    @property
    def root(self) -> str:
        return str(self.proc.root)

    def records(self, task_id: str) -> list[dict[str, Any]]:
        lines = self.audit.read_text().splitlines() if self.audit.exists() else []
        return [r for r in map(json.loads, lines) if r["task_id"] == task_id]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("signoff")


@pytest.fixture(scope="module")
def keys_file(tmp: Path) -> Path:
    path = tmp / "api-keys.yaml"
    path.write_text(
        f"- name: {SIGNER}\n  roles: [run, approve, read]\n  key: {SIGNER_KEY}\n"
        f"- name: {KIOSK}\n  roles: [run]\n  key: {KIOSK_KEY}\n"
    )
    return path


@pytest.fixture(scope="module")
def fhir(ehr_fhir_copy: Proc) -> Proc:
    return ehr_fhir_copy


@pytest.fixture(scope="module")
def start_agent(
    mab_dir: Path, fhir: Proc, keys_file: Path, start_sara: Any, tmp: Path
) -> Callable[..., Agent]:
    """``start_agent(name, model, store=None, env=None)``: an approve-mode agent (its own SQLite
    store in ``tmp`` unless ``store`` is given), auditing to ``tmp/<name>-audit.jsonl``."""

    def start(
        name: str, model: Proc, store: str | None = None, env: dict[str, str] | None = None
    ) -> Agent:
        audit = tmp / f"{name}-audit.jsonl"
        proc = start_sara(
            [
                "agent", "serve",
                "--fhir-url", f"{fhir.root}/fhir/",
                "--model-url", f"{model.root}/v1",
                "--model", "sara-reference-policy",
                "--protocol", "medagentbench", "--prompt", "medagentbench",
                "--write-mode", "approve",
                "--functions-file", str(mab_dir / "funcs_v1.json"),
                "--api-keys-file", str(keys_file),
                "--audit-sink", str(audit),
                "--store", store or f"sqlite:///{tmp / f'{name}-runs.db'}",
                "--max-concurrent-tasks", "32",
                "--log-level", "WARNING",
            ],
            "/healthz",
            {**PER_KEY_LIMITS_OFF, **(env or {})},
        )  # fmt: skip
        return Agent(proc, audit)

    return start


@pytest.fixture(scope="module")
def agent(start_agent: Callable[..., Agent], reference_model: Proc) -> Agent:
    """The module's main agent (SQLite store); test 4 kills and restarts it."""
    return start_agent("main", reference_model)


@pytest.fixture(scope="module")
def cases(mab_dir: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads((mab_dir / "test_data_v2.json").read_text())
    assert len(found) == 300
    return found


@dataclass(frozen=True)
class LowMg:
    case: dict[str, Any]
    mrn: str
    value: float  # the latest serum magnesium of the last 24 h, mg/dL


@pytest.fixture(scope="module")
def low_mg(cases: list[dict[str, Any]], fhir: Proc) -> LowMg:
    """An official task5 whose patient's last magnesium in the 24 h window is low (<= 1.9 mg/dL),
    so the reference policy orders IV replacement."""
    since = grader.NOW - timedelta(hours=24)
    for case in cases:
        if not case["id"].startswith("task5_"):
            continue
        mrn = case["eval_MRN"]
        bundle = fhir_get(fhir, f"Observation?patient={mrn}&code=MG&_count=5000")
        latest: tuple[datetime, float] | None = None
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            when = datetime.fromisoformat(resource["effectiveDateTime"])
            if when >= since and (latest is None or when > latest[0]):
                latest = (when, resource["valueQuantity"]["value"])
        if latest is not None and latest[1] <= 1.9:
            return LowMg(case, mrn, latest[1])
    raise AssertionError("no official task5 patient has a low magnesium in the last 24 h")


def fhir_get(fhir: Proc, path: str) -> dict[str, Any]:
    response = httpx.get(f"{fhir.root}/fhir/{path}", timeout=DEADLINE, trust_env=False)
    response.raise_for_status()
    return dict(response.json())


def medication_requests(fhir: Proc, mrn: str) -> int:
    bundle = fhir_get(fhir, f"MedicationRequest?patient={mrn}&_count=5000")
    assert bundle["total"] == len(bundle.get("entry", []))
    return int(bundle["total"])


# --- client helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any]


async def stream(
    http: httpx.AsyncClient,
    task_id: str,
    *,
    key: str = SIGNER_KEY,
    last_event_id: int | None = None,
) -> AsyncIterator[Event]:
    """The task's events (GET /v1/tasks/{id}/events) as they come; leaving the loop closes it."""
    headers = auth(key)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with http.stream("GET", f"/v1/tasks/{task_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):  # keep-alive comment
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                yield Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
            fields = {}


async def read_events(
    http: httpx.AsyncClient,
    task_id: str,
    *,
    until: Callable[[Event], bool] | None = None,
    count: int | None = None,
    last_event_id: int | None = None,
    key: str = SIGNER_KEY,
) -> list[Event]:
    """Events until ``until`` holds for one (included), ``count`` were read or the stream ends."""
    out: list[Event] = []
    frames = stream(http, task_id, key=key, last_event_id=last_event_id)
    async with asyncio.timeout(DEADLINE), aclosing(frames):
        async for event in frames:
            out.append(event)
            if (until is not None and until(event)) or (count is not None and len(out) >= count):
                break  # aclosing: the connection is closed here, not when collected
    return out


async def get_task(http: httpx.AsyncClient, task_id: str, key: str = SIGNER_KEY) -> dict[str, Any]:
    response = await http.get(f"/v1/tasks/{task_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def wait_status(
    http: httpx.AsyncClient, task_id: str, *statuses: str, within: float = DEADLINE
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        task = await get_task(http, task_id)
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task['status']}: {task}"
        await asyncio.sleep(0.1)


async def start_async(http: httpx.AsyncClient, payload: dict[str, Any], key: str) -> str:
    headers = {**auth(key), "Prefer": "respond-async"}
    response = await http.post("/v1/tasks", json=payload, headers=headers)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/tasks/{response.json()['id']}"
    return str(response.json()["id"])


async def decide(
    http: httpx.AsyncClient,
    task_id: str,
    action_id: str,
    decision: str,
    sha: str,
    *,
    key: str = SIGNER_KEY,
    reason: str | None = None,
) -> httpx.Response:
    return await http.post(
        f"/v1/tasks/{task_id}/actions/{action_id}",
        json={"decision": decision, "payload_sha256": sha, "reason": reason},
        headers=auth(key),
    )


async def pending(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """The one pending action of a task that waits for sign-off."""
    task = await wait_status(http, task_id, "awaiting_approval")
    waiting = [a for a in task["actions"] if a["status"] == "pending"]
    assert len(waiting) == 1, task["actions"]
    return dict(waiting[0])


async def history(http: httpx.AsyncClient) -> dict[str, str]:
    """Every task the store lists (GET /v1/tasks, all cursor pages): id -> status."""
    seen: dict[str, str] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await http.get("/v1/tasks", params=params, headers=auth())
        assert response.status_code == 200, response.text
        page = response.json()
        for item in page["items"]:
            assert item["id"] not in seen  # pages never repeat a task
            seen[item["id"]] = item["status"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def assert_written(fhir: Proc, ref: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The resource at ``ref`` carries every field of ``payload`` exactly."""
    rtype, _, rid = ref.partition("/")
    assert rtype == payload["resourceType"] and rid
    resource = fhir_get(fhir, ref)
    assert resource["id"] == rid
    assert {k: resource.get(k) for k in payload} == payload
    return resource


def assert_stream(events: list[Event]) -> None:
    """Ids 1..N, no gap, no repeat; one ``finished``, last."""
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events].count("finished") == 1 and events[-1].kind == "finished"


# --- 1. sign ---------------------------------------------------------------------------------


async def test_signed_order_is_written_exactly_as_shown_and_audited(
    agent: Agent, fhir: Proc, low_mg: LowMg
) -> None:
    async with client(agent.root) as http:
        # JSON mode waits for the task; a task that pauses for sign-off answers 202, its view.
        response = await http.post("/v1/tasks", json=body(low_mg.case), headers=auth())
        assert response.status_code == 202, response.text
        view = response.json()
        task_id = view["id"]
        assert view["status"] == "awaiting_approval" and view["write_mode"] == "approve"
        [action] = view["actions"]
        assert action["status"] == "pending" and action["method"] == "POST"
        assert action["resource_type"] == "MedicationRequest"
        payload = action["payload"]
        assert action["payload_sha256"] == digest(payload)
        assert payload["subject"] == {"reference": f"Patient/{low_mg.mrn}"}
        assert action["decided_by"] is None and action["written_ref"] is None

        # The event the clinician's screen shows is that same action.
        shown = await read_events(http, task_id, until=lambda e: e.kind == "approval_requested")
        request = shown[-1].data
        assert [e.kind for e in shown][-2:] == ["model_output", "approval_requested"]
        assert shown[-2].data["action"] == "post"
        assert request["action_id"] == action["id"]
        assert request["resource_type"] == "MedicationRequest"
        assert (request["payload"], request["payload_sha256"]) == (payload, digest(payload))
        assert request["summary"] == action["summary"] and request["summary"]
        assert request["url"] == "MedicationRequest"
        assert datetime.fromisoformat(request["expires_at"]) > datetime.now(UTC)

        signed = await decide(
            http, task_id, action["id"], "approve", action["payload_sha256"], reason="Mg low"
        )
        assert signed.status_code == 200, signed.text
        decided = signed.json()
        assert decided["status"] == "approved" and decided["decided_by"] == SIGNER
        assert decided["reason"] == "Mg low"
        assert decided["write_status"] == 201 and decided["write_outcome"] == "ok"
        ref = decided["written_ref"]
        assert ref.startswith("MedicationRequest/")

        task = await wait_status(http, task_id, "finished")
        events = await read_events(http, task_id)

    assert task["outcome"] == "completed" and json.loads(task["answer"]) == [low_mg.value]
    assert task["actions"][0]["written_ref"] == ref
    # Exactly what was shown was written.
    written = assert_written(fhir, ref, payload)
    assert written["subject"] == {"reference": f"Patient/{low_mg.mrn}"}
    # After the pause: the decision, the signed POST and its answer, then the model finishes.
    after = [e.kind for e in events[len(shown) :]]
    assert after == [
        "approval_decided",
        "fhir_request",
        "fhir_response",
        "round_started",
        "model_output",
        "finished",
    ]
    assert_stream(events)
    decided_event, post, answer = (e.data for e in events[len(shown) : len(shown) + 3])
    assert decided_event["decision"] == "approved" and decided_event["decided_by"] == SIGNER
    assert (post["method"], post["sent"], post["payload"]) == ("POST", True, payload)
    assert answer["status"] == 201
    assert answer["summary"] == {"resource_type": "MedicationRequest", "id": ref.split("/")[1]}
    # The model heard the write succeeded; the official grader's rules accept the run.
    result = task["result"]
    told = result["history"][-2]["content"]
    assert told.startswith(f"POST request accepted and executed successfully: created {ref}.")
    async with httpx.AsyncClient(timeout=DEADLINE, trust_env=False) as plain:
        lookup = await GroundTruth(plain, f"{fhir.root}/fhir/").lookup_for(low_mg.case)
    outcome = grader.Outcome(result["status"], result["result"], result["history"])
    assert grader.grade(low_mg.case, outcome, lookup, f"{fhir.root}/fhir/").correct

    # Audit: the write names its signer; the decision is a record of its own.
    records = agent.records(task_id)
    # (the write's intent record, written before the POST was sent, comes first: fail closed)
    intents = [r for r in records if r.get("outcome") == "intent"]
    assert [(r["method"], r["signed_by"]) for r in intents] == [("POST", SIGNER)]
    posts = [r for r in records if r.get("method") == "POST" and r["outcome"] != "intent"]
    assert len(posts) == 1
    assert posts[0]["signed_by"] == SIGNER and posts[0]["caller"] == SIGNER
    assert (posts[0]["outcome"], posts[0]["status"]) == ("ok", 201)
    assert posts[0]["patient"] == f"Patient/{low_mg.mrn}"
    decisions = [r for r in records if r.get("kind") == "decision"]
    assert len(decisions) == 1
    assert decisions[0]["action_id"] == action["id"] and decisions[0]["principal"] == SIGNER
    assert decisions[0]["outcome"] == "approved" and decisions[0]["reason"] == "Mg low"
    assert decisions[0]["payload_sha256"] == digest(payload)
    assert decisions[0]["resource_type"] == "MedicationRequest"
    assert decisions[0]["patient"] == f"Patient/{low_mg.mrn}"
    assert all("signed_by" not in r for r in records if r.get("method") == "GET")


# --- 2. decline ------------------------------------------------------------------------------


async def test_declined_order_writes_nothing_and_the_model_is_told(
    agent: Agent, fhir: Proc, low_mg: LowMg
) -> None:
    before = medication_requests(fhir, low_mg.mrn)
    async with client(agent.root) as http:
        task_id = await start_async(http, body(low_mg.case), KIOSK_KEY)  # the kiosk asks
        action = await pending(http, task_id)
        why = "magnesium recheck ordered first"
        declined = await decide(
            http, task_id, action["id"], "deny", action["payload_sha256"], reason=why
        )
        assert declined.status_code == 200, declined.text
        assert declined.json()["status"] == "denied" and declined.json()["decided_by"] == SIGNER
        assert declined.json()["written_ref"] is None and declined.json()["write_status"] is None
        task = await wait_status(http, task_id, "finished")
        events = await read_events(http, task_id)

    assert medication_requests(fhir, low_mg.mrn) == before
    assert task["outcome"] == "completed" and task["principal"] == KIOSK
    told = [m["content"] for m in task["result"]["history"] if m["role"] == "user"]
    assert any(m.startswith(DECLINED) and f"(reason: {why})" in m for m in told), told
    kinds = [e.kind for e in events]
    paused = kinds.index("approval_decided")
    assert events[paused].data["decision"] == "denied"
    assert "fhir_request" not in kinds[paused:]  # nothing went to the FHIR server after it
    assert_stream(events)
    records = agent.records(task_id)
    assert [r for r in records if r.get("method") == "POST"] == []
    [decision] = [r for r in records if r.get("kind") == "decision"]
    assert (decision["outcome"], decision["principal"], decision["reason"]) == (
        "denied",
        SIGNER,
        why,
    )


# --- 3. who may decide, and only once ----------------------------------------------------------


async def test_decisions_need_the_approve_role_the_shown_hash_and_happen_once(
    agent: Agent, fhir: Proc, low_mg: LowMg
) -> None:
    async with client(agent.root) as http:
        task_id = await start_async(http, body(low_mg.case), KIOSK_KEY)
        action = await pending(http, task_id)
        aid, sha = action["id"], action["payload_sha256"]

        kiosk = await decide(http, task_id, aid, "approve", sha, key=KIOSK_KEY)
        assert kiosk.status_code == 403, kiosk.text
        assert "approve" in kiosk.json()["detail"]
        wrong = await decide(http, task_id, aid, "approve", "0" * 64)
        assert wrong.status_code == 409, wrong.text
        assert "payload_sha256" in wrong.json()["detail"]
        tampered = dict(action["payload"], status="draft")
        other = await decide(http, task_id, aid, "approve", digest(tampered))
        assert other.status_code == 409, other.text
        unknown = await decide(http, task_id, "f" * 32, "approve", sha)
        assert unknown.status_code == 404, unknown.text
        still = await pending(http, task_id)  # none of that decided anything
        assert still["id"] == aid and still["decided_by"] is None

        first = await decide(http, task_id, aid, "approve", sha)
        assert first.status_code == 200, first.text
        again = await decide(http, task_id, aid, "approve", sha)
        assert again.status_code == 409, again.text
        assert "already approved" in again.json()["detail"]
        assert (await decide(http, task_id, aid, "deny", sha)).status_code == 409

        task = await wait_status(http, task_id, "finished")
        assert task["outcome"] == "completed"
        [final] = task["actions"]
        assert final["status"] == "approved" and final["decided_by"] == SIGNER
        assert_written(fhir, final["written_ref"], action["payload"])

        # The kiosk sees its own tasks only; the signer sees them all.
        mine = await http.get("/v1/tasks", params={"limit": 200}, headers=auth(KIOSK_KEY))
        assert mine.status_code == 200
        assert {t["principal"] for t in mine.json()["items"]} == {KIOSK}
    decisions = [r for r in agent.records(task_id) if r.get("kind") == "decision"]
    assert [d["outcome"] for d in decisions] == ["approved"]


# --- 4. the agent dies while a task waits ------------------------------------------------------


async def test_waiting_task_survives_sigkill_and_is_signed_after_restart(
    agent: Agent, fhir: Proc, low_mg: LowMg, cases: list[dict[str, Any]]
) -> None:
    async with client(agent.root) as http:
        age = next(c for c in cases if c["id"] == "task2_1")  # no write: finishes at once
        done = await http.post("/v1/tasks", json=body(age), headers=auth(KIOSK_KEY))
        assert done.status_code == 200 and done.json()["status"] == "completed", done.text
        task_id = await start_async(http, body(low_mg.case), SIGNER_KEY)
        action = await pending(http, task_id)
        before = await history(http)
    assert before[task_id] == "awaiting_approval"
    assert before[done.headers["x-task-id"]] == "finished"
    old = agent.proc.process
    agent.proc.kill()
    try:
        async with client(agent.root) as http:
            with pytest.raises(httpx.TransportError):
                await http.get("/healthz")
    finally:
        agent.proc.start(timeout=120)  # same port, same store, same keys
    assert agent.proc.process.pid != old.pid and old.poll() is not None

    async with client(agent.root) as http:
        assert await history(http) == before  # every earlier task, as it was
        assert (await pending(http, task_id))["id"] == action["id"]
        signed = await decide(http, task_id, action["id"], "approve", action["payload_sha256"])
        assert signed.status_code == 200, signed.text
        ref = signed.json()["written_ref"]
        task = await wait_status(http, task_id, "finished")
        events = await read_events(http, task_id)
    assert task["outcome"] == "completed" and json.loads(task["answer"]) == [low_mg.value]
    assert_written(fhir, ref, action["payload"])
    assert_stream(events)
    kinds = [e.kind for e in events]
    assert kinds.count("approval_requested") == kinds.count("approval_decided") == 1
    assert kinds.index("approval_decided") == kinds.index("approval_requested") + 1
    [post] = [
        r for r in agent.records(task_id) if r.get("method") == "POST" and r["outcome"] != "intent"
    ]
    assert post["signed_by"] == SIGNER and post["status"] == 201


async def test_unsigned_order_expires_writes_nothing_and_a_late_approval_is_refused(
    start_agent: Callable[..., Agent], reference_model: Proc, fhir: Proc, low_mg: LowMg
) -> None:
    ttl = {"SARA_AGENT_APPROVAL_TTL_SECONDS": "2", "SARA_AGENT_WORKER_LEASE_SECONDS": "3"}
    expiring = start_agent("ttl", reference_model, env=ttl)
    before = medication_requests(fhir, low_mg.mrn)
    async with client(expiring.root) as http:
        task_id = await start_async(http, body(low_mg.case), SIGNER_KEY)
        action = await pending(http, task_id)
        task = await wait_status(http, task_id, "finished", within=30)  # nobody signs
        late = await decide(http, task_id, action["id"], "approve", action["payload_sha256"])
    assert late.status_code == 409 and "expired" in late.json()["detail"], late.text
    assert medication_requests(fhir, low_mg.mrn) == before
    [expired] = task["actions"]
    assert (expired["status"], expired["decided_by"], expired["written_ref"]) == (
        "expired",
        None,
        None,
    )
    told = [m["content"] for m in task["result"]["history"] if m["role"] == "user"]
    assert any(m.startswith("POST request not executed") and "expired" in m for m in told)
    [record] = [r for r in expiring.records(task_id) if r.get("kind") == "decision"]
    assert (record["outcome"], record["principal"]) == ("expired", None)


async def test_audit_of_reads_before_a_pause_survives_sigkill(agent: Agent, low_mg: LowMg) -> None:
    async with client(agent.root) as http:
        task_id = await start_async(http, body(low_mg.case), SIGNER_KEY)
        action = await pending(http, task_id)
    agent.proc.kill()
    agent.proc.start(timeout=120)
    try:
        reads = [r for r in agent.records(task_id) if r.get("method") == "GET"]
        assert len(reads) >= 1, "the GET the model made before the pause was never audited"
    finally:
        async with client(agent.root) as http:  # leave nothing waiting
            await decide(http, task_id, action["id"], "deny", action["payload_sha256"])
            await wait_status(http, task_id, "finished")


# --- 5. the agent dies while a task runs -------------------------------------------------------


async def test_running_task_of_a_killed_agent_is_interrupted_never_rerun(
    start_sara: Any, start_agent: Callable[..., Agent], cases: list[dict[str, Any]]
) -> None:
    slow = start_sara(["model", "serve", "--policy", "reference", "--latency", "3"], "/v1/models")
    crashing = start_agent("lease", slow, env={"SARA_AGENT_WORKER_LEASE_SECONDS": "2"})
    case = next(c for c in cases if c["id"] == "task2_1")  # GET Patient, then FINISH: 2 rounds
    async with client(crashing.root) as http:
        task_id = await start_async(http, body(case), SIGNER_KEY)
        await read_events(http, task_id, until=lambda e: e.kind == "round_started")
        assert (await get_task(http, task_id))["status"] == "running"
    crashing.proc.kill()  # round 1's model call (3 s) is in flight
    killed = time.monotonic()
    crashing.proc.start(timeout=120)  # same store, lease still 2 s

    async with client(crashing.root) as http:
        task = await wait_status(http, task_id, "interrupted", within=30)
        took = time.monotonic() - killed
        assert "not re-run" in task["reason"] and "2 s" in task["reason"], task["reason"]
        assert (task["outcome"], task["answer"], task["result"]) == (None, None, None)
        assert task["finished_at"] is not None
        await asyncio.sleep(4)  # longer than a model round: a re-run would show by now
        later = await get_task(http, task_id)
        events = await read_events(http, task_id)  # the stream of an ended task ends
        listed = await http.get("/v1/tasks", params={"status": "interrupted"}, headers=auth())
    assert took < 30
    assert later == task
    assert [e.kind for e in events] in (["round_started"], [])  # what was stored before the kill
    assert task_id in {t["id"] for t in listed.json()["items"]}


# --- 6. two agents, one PostgreSQL -------------------------------------------------------------


async def test_two_agents_on_one_postgres_share_history_events_and_sign_off(
    start_agent: Callable[..., Agent],
    reference_model: Proc,
    postgres_server: Any,
    fhir: Proc,
    low_mg: LowMg,
) -> None:
    store = postgres_server.create_database("sara_signoff_shared")
    a = start_agent("pg-a", reference_model, store=store)
    b = start_agent("pg-b", reference_model, store=store)
    before = medication_requests(fhir, low_mg.mrn)
    signed: dict[str, Any] | None = None
    events: list[Event] = []
    async with client(a.root) as on_a, client(b.root) as on_b:
        task_id = await start_async(on_a, body(low_mg.case), KIOSK_KEY)
        listed = await on_b.get("/v1/tasks", params={"principal": KIOSK}, headers=auth())
        assert task_id in [t["id"] for t in listed.json()["items"]]
        # B follows the task A runs (from the store), and signs when it is asked to.
        async with asyncio.timeout(DEADLINE), aclosing(stream(on_b, task_id)) as frames:
            async for event in frames:
                events.append(event)
                if event.kind == "approval_requested":
                    request = event.data
                    response = await decide(
                        on_b, task_id, request["action_id"], "approve", request["payload_sha256"]
                    )
                    assert response.status_code == 200, response.text
                    signed = response.json()
                elif event.kind == "finished":
                    break
        on_a_view = await wait_status(on_a, task_id, "finished")
        full_on_a = await read_events(on_a, task_id)

    assert signed is not None and signed["decided_by"] == SIGNER
    assert on_a_view["outcome"] == "completed" and on_a_view["actions"][0]["status"] == "approved"
    assert_stream(events)
    assert full_on_a == events  # one stream, whichever agent serves it
    assert_written(fhir, signed["written_ref"], signed["payload"])
    assert medication_requests(fhir, low_mg.mrn) == before + 1
    # A ran the task up to the pause; B took the decision and sent the signed write. (A's
    # records of the reads before the pause reach its file only when A stops: see
    # test_audit_of_reads_before_a_pause_survives_sigkill.)
    a.proc.stop()
    assert {r.get("method") for r in a.records(task_id)} == {"GET"}
    [post] = [
        r for r in b.records(task_id) if r.get("method") == "POST" and r["outcome"] != "intent"
    ]
    assert post["signed_by"] == SIGNER and post["caller"] == KIOSK and post["status"] == 201
    assert [r["outcome"] for r in b.records(task_id) if r.get("kind") == "decision"] == ["approved"]


# --- 7. Last-Event-ID ------------------------------------------------------------------------


async def test_dropped_event_stream_resumes_with_last_event_id_exactly_once(
    agent: Agent, low_mg: LowMg
) -> None:
    async with client(agent.root) as http:
        task_id = await start_async(http, body(low_mg.case), SIGNER_KEY)
        # Live, from the start: the connection drops at the pause.
        head = await read_events(http, task_id, until=lambda e: e.kind == "approval_requested")
        request = head[-1].data
        signed = await decide(
            http, task_id, request["action_id"], "approve", request["payload_sha256"]
        )
        assert signed.status_code == 200, signed.text
        tail = await read_events(http, task_id, last_event_id=head[-1].id)
        full = await read_events(http, task_id)
        assert_stream(full)
        assert head + tail == full
        # Any cut of the stored stream resumes exactly too.
        for cut in range(1, len(full)):
            first = await read_events(http, task_id, count=cut)
            rest = await read_events(http, task_id, last_event_id=first[-1].id)
            assert first + rest == full, cut
        bad = await http.get(
            f"/v1/tasks/{task_id}/events", headers={**auth(), "Last-Event-ID": "x1"}
        )
        assert bad.status_code == 422


# --- 8. approve mode grades as acknowledge -----------------------------------------------------


@pytest.mark.timeout(600)
async def test_300_official_tasks_auto_approved_grade_as_acknowledge(
    agent: Agent, fhir: Proc, cases: list[dict[str, Any]]
) -> None:
    gate = asyncio.Semaphore(16)
    async with client(agent.root) as http:

        async def acknowledged(case: dict[str, Any]) -> dict[str, Any]:
            payload = {**body(case), "options": {"write_mode": "acknowledge"}}
            async with gate, asyncio.timeout(DEADLINE):
                response = await http.post("/v1/tasks", json=payload, headers=auth())
            assert response.status_code == 200, response.text
            return dict(response.json())

        async def approved(case: dict[str, Any]) -> tuple[dict[str, Any], int]:
            signed = 0
            async with gate, asyncio.timeout(2 * DEADLINE):
                task_id = await start_async(http, body(case), SIGNER_KEY)
                async with aclosing(stream(http, task_id)) as frames:
                    async for event in frames:
                        if event.kind == "approval_requested":
                            request = event.data
                            response = await decide(
                                http,
                                task_id,
                                request["action_id"],
                                "approve",
                                request["payload_sha256"],
                            )
                            assert response.status_code == 200, response.text
                            signed += 1
                        elif event.kind == "finished":
                            break
                return await get_task(http, task_id), signed

        baseline = await asyncio.gather(*(acknowledged(c) for c in cases))
        runs = await asyncio.gather(*(approved(c) for c in cases))

    api_base = f"{fhir.root}/fhir/"
    verdicts: dict[str, list[tuple[str, bool, str]]] = {"acknowledge": [], "approve": []}
    async with httpx.AsyncClient(timeout=DEADLINE, trust_env=False) as plain:
        truth = GroundTruth(plain, api_base)
        for case, ack, (task, _) in zip(cases, baseline, runs, strict=True):
            lookup = await truth.lookup_for(case)
            result = task["result"]
            for mode, run in (("acknowledge", ack), ("approve", result)):
                outcome = grader.Outcome(run["status"], run["result"], run["history"])
                verdict = grader.grade(case, outcome, lookup, api_base)
                verdicts[mode].append((case["id"], verdict.correct, verdict.reason))
    assert verdicts["approve"] == verdicts["acknowledge"]
    assert [v for v in verdicts["approve"] if not v[1]] == []  # 300/300

    assert [t["status"] for t, _ in runs] == ["finished"] * 300
    assert [t["outcome"] for t, _ in runs] == [a["status"] for a in baseline]
    assert [t["answer"] for t, _ in runs] == [a["result"] for a in baseline]
    # The model did exactly the same; only the write's answer names the created resource.
    for ack, (task, _) in zip(baseline, runs, strict=True):
        said = [m["content"] for m in task["result"]["history"] if m["role"] == "agent"]
        assert said == [m["content"] for m in ack["history"] if m["role"] == "agent"]
    # Every POST the acknowledge run accepted was shown, signed and written here.
    posts = [
        sum(m["role"] == "agent" and m["content"].startswith("POST") for m in a["history"])
        for a in baseline
    ]
    assert [signed for _, signed in runs] == posts and sum(posts) > 0
    actions = [a for t, _ in runs for a in t["actions"]]
    assert len(actions) == sum(posts)
    assert {(a["status"], a["decided_by"], a["write_status"]) for a in actions} == {
        ("approved", SIGNER, 201)
    }
    refs = [a["written_ref"] for a in actions]
    assert len(set(refs)) == len(refs) and all(refs)
    for ref in refs[:: max(1, len(refs) // 10)]:  # a sample read back
        fhir_get(fhir, ref)
