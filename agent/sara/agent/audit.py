"""Audit records: one JSON line per FHIR call the agent makes, tries, or refuses.

The record names who asked (the API key's id, never the key), which task and round, the
method, resource type, patient reference, HTTP status, duration and outcome. Records go to a
dedicated sink — stdout or a file of JSON lines (``settings.audit_sink``) — separate from the
logs. The loop flushes the sink before it yields a task's final event.

Outcomes: ``ok``, ``http_error``, ``transport_error``, ``blocked``, ``acknowledged``,
``dry_run``, ``dry_run_invalid``, ``denied``, ``invalid``, and ``intent``: written (and flushed)
before a POST is sent, so a write never reaches the FHIR server without a record. A write a
clinician signed (write mode ``approve``) names the signer (``signed_by``); each decision on a
pending write is a :class:`DecisionRecord` (``"kind": "decision"``) in the same stream. A read
the clinician console makes to show a run's artifacts (``sara.agent.api.artifacts``) is marked
``"via": "console"``, its caller the console's user.

Fail closed: :class:`StreamAuditSink` hands each record to the operating system as it is
written (a flush, not an fsync), so a full disk (``ENOSPC``) or an unwritable file shows at
once as :class:`~sara.agent.errors.AuditError`, and ``failure`` keeps the reason until a write
succeeds again. The loop checks ``failure`` before each FHIR call and refuses the call while it
is set (``probe()`` first retries the stream or the open), and withholds a read's answer from
the model when the read's record could not be written; either way the task ends ``task error``
with ``error`` "audit sink unwritable: …". No record, no FHIR access.
"""

from __future__ import annotations

import contextlib
import errno
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from sara.agent.errors import AuditError


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
        data = {name: getattr(self, name) for name in _AUDIT_FIELDS}  # flat: no asdict copies
        for optional in ("signed_by", "via"):
            if data[optional] is None:
                del data[optional]
        return json.dumps(data, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A clinician's decision on a pending write (or its expiry), in the same audit stream.

    ``kind``: ``decision`` (it counted: ``outcome`` approved | denied | expired | cancelled);
    ``decision_request`` (written before the decision counts — a sink that cannot take it
    refuses the decision — ``outcome`` the decision asked for, ``payload_sha256`` as
    presented); ``decision_refused`` (a request the run store then refused, ``reason`` why).
    """

    ts: str
    task_id: str
    action_id: str
    principal: str | None  # who decided; None when it expired
    resource_type: str
    patient: str | None
    payload_sha256: str
    outcome: str  # approved | denied | expired | cancelled (see ``kind``)
    reason: str | None
    kind: str = "decision"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


Record = AuditRecord | DecisionRecord
_AUDIT_FIELDS = tuple(f.name for f in fields(AuditRecord))


class AuditSink(Protocol):
    """Where records go. ``write`` and ``flush`` raise :class:`AuditError` when the record
    cannot be kept; ``failure`` is the last such reason (``None`` while healthy) and
    ``probe()`` tries the sink again and returns it."""

    failure: str | None

    def write(self, record: Record) -> None: ...
    def flush(self) -> None: ...
    def probe(self) -> str | None: ...


class MemoryAuditSink:
    """Keeps records in a list (tests, the benchmark)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.flushes = 0
        self.failure: str | None = None

    def probe(self) -> str | None:
        return self.failure

    def write(self, record: Record) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flushes += 1


class StreamAuditSink:
    """JSON lines on a text stream (stdout or an opened file); thread-safe, fails closed.

    Each record is written and flushed to the OS before ``write`` returns. A sink whose file
    could not be opened (``opener`` raised) starts failed and tries to open it again on each
    write and probe.
    """

    def __init__(
        self,
        stream: IO[str] | None,
        *,
        owned: bool = False,
        opener: Callable[[], IO[str]] | None = None,
        failure: str | None = None,
        name: str = "the audit stream",
    ) -> None:
        self.name = name  # the file, in messages
        self._stream = stream
        self._owned = owned
        self._opener = opener
        self._lock = threading.Lock()
        self.failure: str | None = failure

    def write(self, record: Record) -> None:
        line = record.to_json() + "\n"
        with self._lock:
            self._do(lambda stream: (stream.write(line), stream.flush()))

    def flush(self) -> None:
        with self._lock:
            self._do(lambda stream: stream.flush())

    def probe(self) -> str | None:
        """Try the sink again (flush what is buffered, or open the file); the failure left."""
        if self.failure is not None or self._stream is None:
            with self._lock, contextlib.suppress(AuditError):
                self._do(lambda stream: stream.flush())
        return self.failure

    def _do(self, action: Callable[[IO[str]], object]) -> None:
        opening = self._stream is None
        try:
            if self._stream is None:
                if self._opener is None:
                    raise OSError(errno.EBADF, "no audit stream")
                self._stream = self._opener()
            action(self._stream)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "other")
            where = f"cannot open {self.name}: " if opening else ""
            self.failure = f"audit sink unwritable: {where}{exc.strerror or exc} ({name})"
            raise AuditError(self.failure, errno_name=name) from exc
        except ValueError as exc:  # the stream was closed under us
            self.failure = f"audit sink unwritable: {exc}"
            raise AuditError(self.failure) from exc
        self.failure = None

    def close(self) -> None:
        if self._owned and self._stream is not None:
            with contextlib.suppress(OSError):  # a last buffered line on a full disk
                self._stream.close()


def open_sink(spec: str) -> StreamAuditSink:
    """``stdout`` / ``-`` → standard output; anything else is a file path, appended to.

    A file that cannot be opened (a read-only directory: ``EACCES``) does not stop the agent
    from starting: the sink starts failed — every FHIR call is refused, ``/readyz`` says why —
    and opens the file as soon as it can.
    """
    if spec in ("stdout", "-", ""):
        return StreamAuditSink(sys.stdout)
    path = Path(spec)

    def opener() -> IO[str]:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a", encoding="utf-8")

    sink = StreamAuditSink(None, owned=True, opener=opener, name=str(path))
    with contextlib.suppress(AuditError):  # it says why in ``failure``
        sink.probe()
    return sink


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
