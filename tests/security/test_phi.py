"""PHI stays where it belongs: a benchmark slice and the console's API flows through real
processes, then every log line, metric, audit field and error body is scanned for the patients'
identifiers (docs/phi.md).

Processes (tests/security/conftest.py): ``sara fhir serve --synthetic 20``, the reference model
server and ``sara agent serve --write-mode approve``, all at ``--log-level INFO`` with their JSON
logs in files, the agent auditing to a file. Then:

1. ``sara bench --tasks synthetic --n 20 --balanced`` (all ten task types) against the FHIR and
   model servers (its own output captured too);
2. the console's flows through the agent's API: who am I, a task streamed as SSE, two orders
   (a blood pressure to chart, a referral) paused for sign-off and followed on ``/events``, one
   signed and one declined, the history, a task opened, the patient card read again; and the
   refusals: invalid bodies, no key, a wrong key, a key without the role, unknown ids, a second
   decision, a non-readable event; the model server's own refusals;
3. ``/metrics`` of each process that serves it.

The vocabulary is read from the FHIR server (every Patient): MRNs (``identifier.value`` and the
resource id), given and family names, birth dates, street lines, cities and phone numbers.
Matching is case-sensitive on whole tokens (no letter or digit either side), and leaves out
tokens too short or too common to mean a patient — names and cities under 4 characters, and a
few that are ordinary words — and purely numeric postal codes, which cannot be told from a port
number, a count or a duration (a street line or city printed beside one is still caught).

PHI must show where it belongs — the authorised SSE stream, the audit record's ``patient``, the
history, the benchmark's trajectories — so the scan is shown able to find it, and nowhere else:
zero hits in logs, metric names and label values, audit fields other than ``patient``, and the
bodies of 4xx/5xx answers. The operator's Kubernetes Events are checked at unit level: every
message the status logic and the handlers build from a ClinicalAgent (there is no patient data
in a ClinicalAgent; the check pins that they are built from names, counts and fixed words).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sara.operator import model, status

Stack = Any  # tests/security/conftest.py: the running processes (fhir, model, agent, tmp)
SIGNER_KEY = "phi-test-signer-key-0123456789abcdef"  # as in conftest.py
KIOSK_KEY = "phi-test-kiosk-key-0123456789abcdef"
PATIENTS = 20

DEADLINE = 30.0  # seconds any single wait may take
MIN_TOKEN = 4  # shorter names and cities are not scanned (false positives: "Lee", "Ann")
# Names that are also ordinary capitalised words of logs and messages: not scanned alone.
COMMON_WORDS = frozenset(
    {"Will", "Mark", "Hope", "Grace", "June", "Long", "Young", "White", "Green", "Black",
     "Field", "Park", "Lane", "Hill", "Stone", "Rose", "Page", "Case", "Read", "Ready",
     "Price", "Story", "Bell", "Ward"}
)  # fmt: skip


@dataclass
class Vocabulary:
    """PHI terms of the EHR, each with its kind (mrn, name, birth_date, address, city, phone)."""

    terms: dict[str, str]
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        alternation = "|".join(re.escape(t) for t in sorted(self.terms, key=len, reverse=True))
        self.pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternation})(?![A-Za-z0-9])")

    def hits(self, text: str, where: str) -> list[str]:
        """``where: kind 'term' in …context…`` for every PHI term found in ``text``."""
        found = []
        for m in self.pattern.finditer(text):
            context = text[max(0, m.start() - 60) : m.end() + 60].replace("\n", "⏎")
            found.append(f"{where}: {self.terms[m.group()]} {m.group()!r} in …{context}…")
        return found

    def of(self, kind: str) -> set[str]:
        return {t for t, k in self.terms.items() if k == kind}


def vocabulary(patients: list[dict[str, Any]]) -> Vocabulary:
    terms: dict[str, str] = {}

    def add(term: Any, kind: str, *, short_ok: bool = False) -> None:
        if not isinstance(term, str):
            return
        term = term.strip()
        if not term or term in COMMON_WORDS or (not short_ok and len(term) < MIN_TOKEN):
            return
        terms.setdefault(term, kind)

    for p in patients:
        add(p["id"], "mrn", short_ok=True)
        for ident in p.get("identifier", []):
            add(ident.get("value"), "mrn", short_ok=True)
        for name in p.get("name", []):
            add(name.get("family"), "name")
            for given in name.get("given", []):
                add(given, "name")
        add(p.get("birthDate"), "birth_date", short_ok=True)
        for address in p.get("address", []):
            for line in address.get("line", []):
                add(line, "address")
            add(address.get("city"), "city")
        for telecom in p.get("telecom", []):
            add(telecom.get("value"), "phone")
    return Vocabulary(terms)


@dataclass
class Observed:
    vocab: Vocabulary
    tmp: Path
    bench_dir: Path
    sse: list[str] = field(default_factory=list)  # authorised event streams (text)
    history: str = ""  # GET /v1/tasks as the signer read it
    errors: list[tuple[str, int, str]] = field(default_factory=list)  # request, status, body
    metrics: dict[str, str] = field(default_factory=dict)  # process -> /metrics text
    unserved_metrics: list[str] = field(default_factory=list)

    def logs(self) -> dict[str, str]:
        names = ("agent.log", "model.log", "fhir.log", "bench.log")
        return {n: (self.tmp / n).read_text(errors="replace") for n in names}

    def audit(self) -> list[dict[str, Any]]:
        text = (self.tmp / "audit.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def auth(key: str = SIGNER_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def read_patients(stack: Stack) -> list[dict[str, Any]]:
    r = httpx.get(f"{stack.fhir.root}/fhir/Patient?_count=1000", timeout=DEADLINE, trust_env=False)
    r.raise_for_status()
    return [e["resource"] for e in r.json().get("entry", [])]


def run_bench(stack: Stack, out: Path) -> dict[str, Any]:
    """A benchmark slice: 20 balanced synthetic tasks over the ten types."""
    with (stack.tmp / "bench.log").open("wb") as sink:
        subprocess.run(
            [stack.sara, "bench", "--tasks", "synthetic", "--n", "20", "--balanced", "--seed", "1",
             "--fhir-url", f"{stack.fhir.root}/fhir/", "--model-url", f"{stack.model.root}/v1",
             "--model", "sara-reference-policy", "--concurrency", "8",
             "--out", str(out), "--no-progress", "--no-report"],
            stdout=sink, stderr=subprocess.STDOUT, check=True, timeout=120,
        )  # fmt: skip
    return dict(json.loads((out / "summary.json").read_text()))


def until(c: httpx.Client, task_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = c.get(f"/v1/tasks/{task_id}", headers=auth()).json()
        if view["status"] in statuses:
            return view
        time.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {statuses}: {view.get('status')}")


def follow(c: httpx.Client, task_id: str, stop_at: str | None = None) -> str:
    """The task's event stream as text: to its end, or up to the first ``stop_at`` event."""
    lines: list[str] = []
    with c.stream("GET", f"/v1/tasks/{task_id}/events", headers=auth()) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            lines.append(line)
            if stop_at is not None and lines[-2:-1] == [f"event: {stop_at}"]:
                break  # after its data line: the stream stays open while the task waits
    return "\n".join(lines)


def console_flows(stack: Stack, tasks: list[dict[str, Any]], seen: Observed) -> None:
    def keep_errors(response: httpx.Response) -> None:
        if response.status_code >= 400:
            response.read()
            request = f"{response.request.method} {response.request.url.path}"
            seen.errors.append((request, response.status_code, response.text))

    hooks = {"response": [keep_errors]}
    by_type = {t["id"].split("_")[0]: t for t in reversed(tasks)}  # the first of each type
    lookup, mg, bp, referral = (
        by_type["task1"],
        by_type["task4"],
        by_type["task3"],
        by_type["task8"],
    )
    with httpx.Client(
        base_url=stack.agent.root, timeout=DEADLINE, trust_env=False, event_hooks=hooks
    ) as c:
        assert sorted(c.get("/v1/me", headers=auth()).json()["roles"]) == ["approve", "read", "run"]
        # A task streamed to its end (the console's live view).
        for case in (mg, lookup):
            r = c.post(
                "/v1/tasks",
                json={"instruction": case["instruction"], "context": case["context"]},
                headers={**auth(), "Accept": "text/event-stream"},
            )
            assert r.status_code == 200 and "event: finished" in r.text, r.text[-500:]
            seen.sse.append(r.text)
        # Two orders paused for sign-off, followed live; one signed, one declined.
        ids = []
        for case in (bp, referral):
            r = c.post(
                "/v1/tasks",
                json={
                    "instruction": case["instruction"],
                    "context": case["context"],
                    "patient": case["eval_MRN"],
                },
                headers={**auth(), "Prefer": "respond-async"},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        views = [until(c, task_id, "awaiting_approval") for task_id in ids]
        for task_id in ids:
            seen.sse.append(follow(c, task_id, stop_at="approval_requested"))
        (signed, declined) = [v["actions"][0] for v in views]
        for action in (signed, declined):
            assert action["status"] == "pending", action
            assert (
                action["payload_sha256"]
                == hashlib.sha256(
                    orjson.dumps(action["payload"], option=orjson.OPT_SORT_KEYS)
                ).hexdigest()
            )
        decisions = [
            ({"decision": "approve"}, ids[0], signed),
            ({"decision": "deny", "reason": "not indicated at this visit"}, ids[1], declined),
        ]
        for extra, task_id, action in decisions:
            path = f"/v1/tasks/{task_id}/actions/{action['id']}"
            kiosk = c.post(path, json={**extra, "payload_sha256": action["payload_sha256"]},
                           headers=auth(KIOSK_KEY))  # fmt: skip
            assert kiosk.status_code == 403
            r = c.post(path, json={**extra, "payload_sha256": action["payload_sha256"]},
                       headers=auth())  # fmt: skip
            assert r.status_code == 200, r.text
            again = c.post(path, json={**extra, "payload_sha256": action["payload_sha256"]},
                           headers=auth())  # fmt: skip
            assert again.status_code == 409
        for task_id in ids:
            until(c, task_id, "finished")
            seen.sse.append(follow(c, task_id))
        # History, a task opened, the patient card read again, a non-readable event.
        r = c.get("/v1/tasks", params={"limit": 50}, headers=auth())
        assert r.status_code == 200 and len(r.json()["items"]) == 4
        seen.history = r.text
        assert c.get(f"/v1/tasks/{ids[0]}", headers=auth()).json()["status"] == "finished"
        assert c.get(f"/v1/tasks/{ids[0]}/patient", headers=auth()).status_code == 200
        assert c.get(f"/v1/tasks/{ids[0]}/events/1/response", headers=auth()).status_code == 409
        # Refusals, each carrying patient data in what it refuses.
        mrn, name = bp["eval_MRN"], lookup["instruction"]
        phi_body = {"instruction": f"{name} MRN {mrn}", "patient": mrn}
        for request, expected in (
            (c.build_request("POST", "/v1/tasks", json={"patient": mrn, "context": name},
                             headers=auth()), 422),
            (c.build_request("POST", "/v1/tasks",
                             json={**phi_body, "options": {"max_rounds": 999}},
                             headers=auth()), 422),
            (c.build_request("POST", "/v1/tasks", json={**phi_body, "options": {"max_rounds": 0}},
                             headers=auth()), 422),
            (c.build_request("POST", "/v1/tasks", content=f"{name} {mrn}".encode(),
                             headers={**auth(), "Content-Type": "application/json"}), 422),
            (c.build_request("POST", "/v1/tasks", json=phi_body), 401),
            (c.build_request("POST", "/v1/tasks", json=phi_body, headers=auth("wrong-key")), 401),
            (c.build_request("GET", "/v1/tasks", params={"patient": mrn}), 401),
            (c.build_request("GET", f"/v1/tasks/{mrn}", headers=auth()), 404),
            (c.build_request("GET", f"/v1/tasks/{ids[0]}", headers=auth(KIOSK_KEY)), 404),
            (c.build_request("POST", f"/v1/tasks/{ids[0]}/actions/{mrn}",
                             json={"decision": "approve", "payload_sha256": "0" * 64},
                             headers=auth()), 404),
            (c.build_request("POST", f"/v1/tasks/{ids[0]}:cancel", headers=auth()), 409),
        ):  # fmt: skip
            r = c.send(request)
            assert r.status_code == expected, (request.url, r.status_code, r.text)
    # The model server's own refusals, asked about a patient.
    prompt = [{"role": "user", "content": f"{lookup['instruction']} {bp['eval_MRN']}"}]
    with httpx.Client(
        base_url=stack.model.root, timeout=DEADLINE, trust_env=False, event_hooks=hooks
    ) as m:
        assert m.post("/v1/chat/completions", json={"model": "other", "messages": prompt}).is_error
        bad = {"model": "sara-reference-policy", "messages": prompt, "n": 99}
        assert m.post("/v1/chat/completions", json=bad).status_code == 400
        assert m.post("/v1/chat/completions", json={"messages": prompt}).status_code == 400


def scrape(stack: Stack, seen: Observed) -> None:
    for proc, path in (
        (stack.agent, "/metrics"),
        (stack.model, "/metrics"),
        (stack.fhir, "/metrics"),
        (stack.fhir, "/fhir/metrics"),
    ):
        r = httpx.get(proc.root + path, timeout=DEADLINE, trust_env=False)
        name = f"{proc.args[0]} {path}"
        if r.status_code == 200 and "# TYPE" in r.text:
            seen.metrics[name] = r.text
        else:
            seen.unserved_metrics.append(f"{name}: {r.status_code}")


@pytest.fixture(scope="module")
def seen(stack: Stack) -> Iterator[Observed]:
    started = time.monotonic()
    vocab = vocabulary(read_patients(stack))
    out = stack.tmp / "bench"
    summary = run_bench(stack, out)
    assert summary["total"] == 20, summary
    tasks = json.loads((out / "tasks.json").read_text())
    observed = Observed(vocab, stack.tmp, out)
    console_flows(stack, tasks, observed)
    scrape(stack, observed)
    for proc in stack.procs:  # the audit sink and logs are complete once the processes end
        proc.stop()
    assert time.monotonic() - started < 60
    yield observed


def test_the_vocabulary_comes_from_the_ehr(seen: Observed) -> None:
    vocab = seen.vocab
    assert len(vocab.of("mrn")) == PATIENTS
    assert len(vocab.of("birth_date")) >= PATIENTS // 2
    assert len(vocab.of("name")) >= PATIENTS
    assert vocab.of("address") and vocab.of("city") and vocab.of("phone")
    assert all(len(t) >= MIN_TOKEN for t in vocab.of("name") | vocab.of("city"))


def test_phi_shows_where_it_belongs(seen: Observed) -> None:
    """The scan can fail: it finds PHI in the authorised places."""
    vocab = seen.vocab
    for text in seen.sse:
        assert any(h for h in vocab.hits(text, "sse") if " mrn " in h), text[:500]
    assert vocab.hits(seen.history, "history")
    patients = {r["patient"] for r in seen.audit() if r.get("patient")}
    assert patients, "no audit record names a patient"
    assert patients <= {f"Patient/{mrn}" for mrn in vocab.of("mrn")}, patients
    assert any(r.get("kind") == "decision" for r in seen.audit())
    trajectories = (seen.bench_dir / "trajectories.jsonl").read_text()
    kinds = {h.split(": ")[1].split()[0] for h in vocab.hits(trajectories, "trajectories")}
    assert {"mrn", "name", "birth_date"} <= kinds, kinds


def test_no_phi_in_logs(seen: Observed) -> None:
    logs = seen.logs()
    # The scan covers INFO: every process logged its requests or tasks.
    assert '"event": "task_started"' in logs["agent.log"]
    assert '"event": "fhir_call"' in logs["agent.log"]
    assert '"event": "approval_decided"' in logs["agent.log"]
    assert '"event": "chat completion"' in logs["model.log"]
    assert '"event": "fhir.request"' in logs["fhir.log"]
    hits = [h for name, text in logs.items() for h in seen.vocab.hits(text, name)]
    assert hits == [], "\n".join(hits)


def test_no_phi_in_metric_names_or_labels(seen: Observed) -> None:
    assert "agent /metrics" in seen.metrics, seen.unserved_metrics
    hits = []
    for name, text in seen.metrics.items():
        assert "sara_fhir_requests_total" in text or not name.startswith("agent")
        for line in text.splitlines():
            if line and not line.startswith("#"):  # name{labels} value: HELP texts are fixed
                hits += seen.vocab.hits(line.rsplit(" ", 1)[0], name)
    assert hits == [], "\n".join(hits)


def test_no_phi_in_audit_fields_but_patient(seen: Observed) -> None:
    records = seen.audit()
    assert len(records) >= 5
    hits = []
    for record in records:
        rest = {k: v for k, v in record.items() if k != "patient"}
        hits += seen.vocab.hits(json.dumps(rest), "audit")
    assert hits == [], "\n".join(hits)


def test_no_phi_in_error_bodies(seen: Observed) -> None:
    statuses = {code for _, code, _ in seen.errors}
    assert {401, 403, 404, 409, 422} <= statuses, seen.errors
    hits = []
    for request, code, text in seen.errors:
        hits += seen.vocab.hits(text, f"{request} → {code}")
    assert hits == [], "\n".join(hits)


def test_no_phi_in_operator_events(seen: Observed) -> None:
    """Unit level: every Event message the status logic builds from a ClinicalAgent, through
    every condition transition, and the handlers' fixed messages."""
    names = model.Names("ward-agent", "clinic")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    specs = [
        model.parse("ward-agent", {"model": {"uri": "hf://org/model"}}),
        model.parse(
            "ward-agent",
            {
                "model": {"engine": "external", "external": {"baseUrl": "https://m/v1"}},
                "fhir": {"mode": "external", "external": {"baseUrl": "https://f/"}},
            },
        ),
    ]
    w, job = status.Workload, status.JobState
    observations = [
        status.Observed(),
        status.Observed(model=w(1, 0), fhir=w(1, 0), agent=w(2, 1)),
        status.Observed(model=w(1, 1), fhir=w(1, 1), agent=w(2, 2)),
        status.Observed(model=w(1, 1), fhir=w(1, 1), agent=w(2, 2), seed=job()),
        status.Observed(model=w(1, 1), fhir=w(1, 1), agent=w(0, 0), seed=job(failed=True)),
        status.Observed(model=w(1, 1), fhir=w(1, 1), agent=w(2, 2), seed=job(succeeded=True)),
    ]  # fmt: skip
    messages = ["FHIR server ready; seed Job created"]  # handlers.refresh: the seed Event
    for spec in specs:
        previous: dict[str, Any] = {}
        for obs in observations:
            result = status.compute(spec, names, obs, previous, generation=1, now=now)
            messages += [
                f"{t.type}={t.status} ({t.reason}): {t.message}" for t in result.transitions
            ]
            previous = result.status
    with pytest.raises(model.InvalidSpecError) as invalid:
        model.parse("ward-agent", {"model": {"engine": "nope"}})
    rejected = status.compute_rejected("InvalidSpec", str(invalid.value), {}, generation=1, now=now)
    messages += [f"{t.type}={t.status} ({t.reason}): {t.message}" for t in rejected.transitions]
    assert len(messages) > 10
    hits = [h for m in messages for h in seen.vocab.hits(m, "event")]
    assert hits == [], "\n".join(hits)
