"""Typed events the loop yields, in order, for one task.

    RoundStarted   a model round begins (1-based)
    ModelOutput    the model answered: its raw text, token counts and the parsed action kind
    FhirRequest    the agent is about to call FHIR (or refused to: ``blocked``)
    FhirResponse   summary of the answer: status, resource type, entry count, size — never the body
    Error          the task failed for a reason the model cannot fix (model server down, a bug)
    Finished       always last: carries the :class:`TaskResult`

Events hold no FHIR bodies and no URLs; ``ModelOutput.text`` is the model's own text, which the
caller also receives in the history. ``to_dict()`` gives the JSON payload of the SSE ``data:``
line; ``kind`` is the SSE ``event:`` name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


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


@dataclass(frozen=True, slots=True)
class Error(_Event):
    kind: ClassVar[str] = "error"
    message: str  # a fixed description, no payloads
    code: str  # model_error | deadline | internal_error


@dataclass(frozen=True, slots=True)
class Finished(_Event):
    kind: ClassVar[str] = "finished"
    result: TaskResult

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "result": self.result.to_dict()}


Event = RoundStarted | ModelOutput | FhirRequest | FhirResponse | Error | Finished
