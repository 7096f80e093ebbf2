"""Typed events the loop yields, in order, for one task.

    RoundStarted   a model round begins (1-based)
    ModelOutput    the model answered: its raw text, token counts and the parsed action kind
    FhirRequest    the agent is about to call FHIR (or refused to: ``blocked``): the request line
                   relative to the FHIR base and, for a POST, its payload
    FhirResponse   summary of the answer: status, resource type, entry count, size, and a short
                   ``summary`` (resource type, count or total, a single resource's id) — never
                   the body
    ApprovalRequested  (write mode ``approve``) a POST waits for a clinician's signature
    ApprovalDecided    signed, declined, or expired; the loop goes on
    Error          the task failed for a reason the model cannot fix (model server down, a bug)
    Finished       last, unless the task waits for a decision: carries the :class:`TaskResult`
    Paused         (never streamed) the loop stops at an ApprovalRequested; carries the
                   :class:`Checkpoint` it resumes from, on any replica

Events go to the authorised SSE stream and the run store, never into logs or metrics: the
request line names the patient. ``ModelOutput.text`` is the model's own text, which the caller
also receives in the history. ``to_dict()`` gives the JSON payload of the SSE ``data:`` line;
``kind`` is the SSE ``event:`` name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

Status = Literal[
    "completed",
    "agent invalid action",
    "task limit reached",
    "agent context limit",
    "task error",
]
STATUSES: tuple[Status, ...] = (
    "completed",
    "agent invalid action",
    "task limit reached",
    "agent context limit",
    "task error",
)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The outcome of one task, shaped like MedAgentBench's ``TaskOutput``."""

    status: Status
    result: str | None
    history: list[dict[str, str]]
    rounds: int
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0}
    )
    elapsed_seconds: float = 0.0
    task_id: str | None = None
    error: str | None = None  # why a ``task error`` failed, in words

    def to_dict(self) -> dict[str, Any]:
        """A plain copy (the history's messages and the usage copied, as ``asdict`` would;
        without its per-value deep copies, which cost more than the rest of a round)."""
        return {
            "status": self.status,
            "result": self.result,
            "history": [dict(message) for message in self.history],
            "rounds": self.rounds,
            "usage": dict(self.usage),
            "elapsed_seconds": self.elapsed_seconds,
            "task_id": self.task_id,
            "error": self.error,
        }


_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True, slots=True)
class _Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        # shallow: events are frozen and never changed after they are yielded (asdict's deep
        # copy was the dearest part of persisting an event)
        out: dict[str, Any] = {"type": self.kind}
        for name in _field_names(type(self)):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True, slots=True)
class RoundStarted(_Event):
    kind: ClassVar[str] = "round_started"
    round: int


@dataclass(frozen=True, slots=True)
class ModelOutput(_Event):
    kind: ClassVar[str] = "model_output"
    round: int
    text: str
    action: str  # get | post | finish | invalid
    prompt_tokens: int
    completion_tokens: int
    elapsed_ms: float


@dataclass(frozen=True, slots=True)
class FhirRequest(_Event):
    kind: ClassVar[str] = "fhir_request"
    round: int
    method: str
    resource_type: str
    sent: bool  # False when blocked, denied, acknowledged without sending, or a dry run
    blocked: str | None = None  # the guard's reason code when blocked
    url: str = ""  # path and query relative to the FHIR base (as the model wrote it if foreign)
    payload: Any = None  # a POST's JSON payload


@dataclass(frozen=True, slots=True)
class FhirResponse(_Event):
    kind: ClassVar[str] = "fhir_response"
    round: int
    method: str
    resource_type: str
    status: int | None  # HTTP status; None when nothing was sent or no answer came
    outcome: str  # ok | http_error | transport_error | blocked | acknowledged | dry_run | ...
    entry_count: int | None = None
    size: int = 0
    truncated: bool = False
    elapsed_ms: float = 0.0
    summary: dict[str, Any] | None = None  # {"resource_type", "id"} or {"resource_type", "count"}


@dataclass(frozen=True, slots=True)
class ApprovalRequested(_Event):
    """A POST held for sign-off; ``payload_sha256`` is what a decision must quote."""

    kind: ClassVar[str] = "approval_requested"
    round: int
    action_id: str
    method: str
    url: str
    resource_type: str
    summary: str
    payload: Any
    payload_sha256: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class ApprovalDecided(_Event):
    kind: ClassVar[str] = "approval_decided"
    round: int
    action_id: str
    decision: str  # approved | denied | expired
    decided_by: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Error(_Event):
    kind: ClassVar[str] = "error"
    message: str  # a fixed description, no payloads
    code: str  # model_error | deadline | internal_error


@dataclass(frozen=True, slots=True)
class Finished(_Event):
    kind: ClassVar[str] = "finished"
    result: TaskResult
    patient: str | None = None  # "Patient/<id>" the task concerned (not streamed: the store's)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "result": self.result.to_dict()}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a paused task resumes from: the conversation and the loop's counters."""

    history: list[dict[str, str]]
    rounds: int
    usage: dict[str, int]
    retried: bool
    active_seconds: float
    patient: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Paused(_Event):
    kind: ClassVar[str] = "paused"
    checkpoint: Checkpoint
    pending: ApprovalRequested
    patient: str | None  # the patient the pending write concerns
    body: str  # the canonical JSON payload that payload_sha256 is the hash of

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "action_id": self.pending.action_id}


Event = (
    RoundStarted
    | ModelOutput
    | FhirRequest
    | FhirResponse
    | ApprovalRequested
    | ApprovalDecided
    | Error
    | Finished
    | Paused
)
