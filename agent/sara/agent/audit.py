"""Audit records: one JSON line per FHIR call the agent makes, tries, or refuses.

The record names who asked (the API key's id, never the key), which task and round, the
method, resource type, patient reference, HTTP status, duration and outcome. Records go to a
dedicated sink — stdout or a file of JSON lines (``settings.audit_sink``) — separate from the
logs. The loop flushes the sink before it yields a task's final event.

Outcomes: ``ok``, ``http_error``, ``transport_error``, ``blocked``, ``acknowledged``,
``dry_run``, ``dry_run_invalid``, ``denied``, ``invalid``. A write a clinician signed (write
mode ``approve``) names the signer (``signed_by``); each decision on a pending write is a
:class:`DecisionRecord` (``"kind": "decision"``) in the same stream. A read the clinician
console makes to show a run's artifacts (``sara.agent.api.artifacts``) is marked
``"via": "console"``, its caller the console's user.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True, slots=True)
class AuditRecord:
    ts: str  # ISO 8601 UTC
    task_id: str | None
    round: int
    caller: str  # "key:<sha256 prefix>", "anonymous", "local"
    method: str
    resource_type: str
    patient: str | None  # "Patient/<id>" when the call concerns one patient
    status: int | None
    duration_ms: float
    outcome: str
    signed_by: str | None = None  # the clinician who signed this write (write mode approve)
    via: str | None = None  # "console": a clinician's console read a task's request again

    def to_json(self) -> str:
        data = asdict(self)
        for optional in ("signed_by", "via"):
            if data[optional] is None:
                del data[optional]
        return json.dumps(data, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A clinician's decision on a pending write (or its expiry), in the same audit stream."""

    ts: str
    task_id: str
    action_id: str
    principal: str | None  # who decided; None when it expired
    resource_type: str
    patient: str | None
    payload_sha256: str
    outcome: str  # approved | denied | expired | cancelled
    reason: str | None
    kind: str = "decision"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


Record = AuditRecord | DecisionRecord


class AuditSink(Protocol):
    def write(self, record: Record) -> None: ...
    def flush(self) -> None: ...


class MemoryAuditSink:
    """Keeps records in a list (tests, the benchmark)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.flushes = 0

    def write(self, record: Record) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flushes += 1


class StreamAuditSink:
    """JSON lines on a text stream (stdout or an opened file); thread-safe."""

    def __init__(self, stream: IO[str], *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned
        self._lock = threading.Lock()

    def write(self, record: Record) -> None:
        line = record.to_json() + "\n"
        with self._lock:
            self._stream.write(line)

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()


def open_sink(spec: str) -> StreamAuditSink:
    """``stdout`` / ``-`` → standard output; anything else is a file path, appended to."""
    if spec in ("stdout", "-", ""):
        return StreamAuditSink(sys.stdout)
    path = Path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    return StreamAuditSink(path.open("a", encoding="utf-8"), owned=True)


def patient_reference(url: str | None, payload: Any = None) -> str | None:
    """The patient a call concerns, as ``Patient/<id>``, from the URL or a POST payload."""
    if isinstance(payload, dict):
        subject = payload.get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("reference"), str):
            return _as_patient(subject["reference"])
    if not url:
        return None
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) >= 2 and segments[-2] == "Patient":
        return _as_patient(segments[-1])
    for key, value in parse_qsl(parts.query):
        if key in ("patient", "subject", "subject:Patient") or (
            key == "identifier" and segments and segments[-1] == "Patient"
        ):
            return _as_patient(value)
    return None


def _as_patient(value: str) -> str | None:
    value = value.strip()[:128]
    if not value:
        return None
    return value if value.startswith("Patient/") else f"Patient/{value}"
