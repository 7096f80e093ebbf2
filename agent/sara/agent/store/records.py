"""What the run store hands back: tasks, actions, events (plain frozen records), the
canonical form a payload is hashed in, and the history cursor.

No I/O here: :mod:`sara.agent.store.runs` reads and writes them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

TERMINAL = frozenset({"finished", "interrupted", "cancelled"})
STATUSES = ("running", "awaiting_approval", "finished", "interrupted", "cancelled")


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC): make them aware again."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat(timespec="milliseconds") if value is not None else None


def canonical(payload: Any) -> str:
    """The canonical JSON of a payload (sorted keys, no spaces): what is shown, hashed, written."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Action:
    """A write the model asked for in ``approve`` mode, and what became of it."""

    id: str
    task_id: str
    round: int
    method: str
    url: str
    resource_type: str
    patient: str | None
    summary: str
    payload: str  # canonical JSON
    payload_sha256: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = None
    write_status: int | None = None
    write_outcome: str | None = None
    written_ref: str | None = None

    @classmethod
    def of(cls, row: Any) -> Action:
        values = dict(row._mapping)
        for key in ("created_at", "expires_at", "decided_at"):
            values[key] = as_utc(values[key])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "round": self.round,
            "method": self.method,
            "url": self.url,
            "resource_type": self.resource_type,
            "summary": self.summary,
            "payload": orjson.loads(self.payload),
            "payload_sha256": self.payload_sha256,
            "status": self.status,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "decided_at": _iso(self.decided_at),
            "decided_by": self.decided_by,
            "reason": self.reason,
            "write_status": self.write_status,
            "write_outcome": self.write_outcome,
            "written_ref": self.written_ref,
        }


@dataclass(frozen=True)
class Task:
    """One row of ``tasks`` (``result``/``checkpoint`` decoded on demand)."""

    id: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    status: str
    principal: str
    patient: str | None
    instruction: str
    context: str
    settings: str
    outcome: str | None
    answer: str | None
    result: str | None
    error: str | None
    reason: str | None
    checkpoint: str | None
    owner: str | None
    cancel_requested: bool
    rounds: int
    last_seq: int
    actions: tuple[Action, ...] = field(default=())

    @classmethod
    def of(cls, row: Any, actions: Sequence[Action] = ()) -> Task:
        values = {"result": None, "checkpoint": None, "context": "", **row._mapping}
        for key in ("created_at", "updated_at", "finished_at"):
            values[key] = as_utc(values[key])
        return cls(**values, actions=tuple(actions))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def options(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.settings)
        return data

    def summary(self) -> dict[str, Any]:
        """The list view: no context, no history; long texts shortened."""
        return {
            "id": self.id,
            "status": self.status,
            "outcome": self.outcome,
            "answer": _short(self.answer, 500),
            "instruction": _short(self.instruction, 500),
            "patient": self.patient,
            "principal": self.principal,
            "write_mode": self.options().get("write_mode"),
            "rounds": self.rounds,
            "pending_actions": sum(1 for a in self.actions if a.status == "pending"),
            "error": self.error,
            "reason": self.reason,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "finished_at": _iso(self.finished_at),
        }

    def to_dict(self) -> dict[str, Any]:
        """The full view of ``GET /v1/tasks/{id}``."""
        out = self.summary()
        out.update(
            instruction=self.instruction,
            answer=self.answer,
            context=self.context,
            settings=self.options(),
            last_event_id=self.last_seq,
            actions=[a.to_dict() for a in self.actions],
            result=orjson.loads(self.result) if self.result else None,
        )
        return out


def _short(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    kind: str
    data: str  # JSON text, bounded


class DecisionError(Exception):
    """Why a decision was not taken: ``not_found`` (404) or a conflict (409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Claimed:
    """A decided (or expired) action and the task it resumes, now owned by the caller."""

    action: Action
    task: Task


def encode_cursor(task: Task) -> str:
    raw = f"{_iso_full(task.created_at)}|{task.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _iso_full(value: datetime) -> str:
    utc = as_utc(value)
    assert utc is not None
    return utc.isoformat(timespec="microseconds")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``ValueError`` for a cursor this store did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, task_id = raw.partition("|")
        stamp = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
    if stamp.tzinfo is None or not task_id:
        raise ValueError("invalid cursor")
    return stamp, task_id
