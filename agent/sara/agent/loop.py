"""The agent loop: model → one action → FHIR → answer back, as an async generator of events.

Usage (the bench runner and the API both do exactly this)::

    from sara.agent import loop, runtime

    config = loop.LoopConfig(api_base="http://127.0.0.1:8080/fhir/")   # benchmark defaults
    async with runtime.build_loop(config, model_url="http://127.0.0.1:8001/v1",
                                  model="sara-reference-policy") as agent:
        async for event in agent.run(loop.TaskSpec("What is the age of S6315806?", context="…")):
            ...                      # RoundStarted, ModelOutput, FhirRequest, FhirResponse, Error
        result = event.result        # the last event is always Finished(result: TaskResult)

``LoopConfig`` fields (defaults are the benchmark's):

=================  ==========================================================================
api_base           FHIR base, always ending in ``/`` (added when missing)
max_rounds         8 — model calls per task
prompt             ``medagentbench`` (the benchmark's prompt) | ``sara``
functions          function list shown to the model; ``None`` = Sara's built-in list
                   (``prompts.load_functions(path)`` reads e.g. the benchmark's funcs_v1.json)
parse_mode         ``strict`` (benchmark rules) | ``lenient`` (salvage; one retry on bad format)
write_mode         ``acknowledge`` (benchmark) | ``execute`` | ``dry-run`` | ``deny`` |
                   ``approve`` (a checked POST pauses the task until a clinician decides)
protocol           ``medagentbench`` (raw ``&_format=json``, harness wording) | ``sara`` |
                   ``sara-leaderboard`` (as ``medagentbench``; the model's text is first
                   rewritten by ``parser.salvage`` and that text is what the history keeps) |
                   ``compact`` (as ``medagentbench``; FHIR answers in compact form)
read_types,        resource type allowlists for GET and POST (see ``urlguard``)
write_types
task_timeout_      ``None`` (the benchmark: no limit) or seconds a task may take; checked
seconds            before each model call and each action, and bounding the model call in
                   flight. A FHIR call already sent is never interrupted (its outcome, a write
                   perhaps, is always known and audited), so a task ends at most one FHIR
                   timeout after the deadline.
=================  ==========================================================================

``TaskSpec(instruction, context="", task_id=None, caller="local")``. ``Loop(config, model=,
fhir=, audit=None, metrics=None)`` takes a :class:`~sara.agent.model_client.ModelClient` and a
:class:`~sara.agent.fhir_client.FhirClient`; one ``Loop`` runs any number of tasks concurrently.

Final statuses (``TaskResult.status``), as in MedAgentBench: ``completed`` (FINISH; ``result`` is
the text inside ``FINISH(…)``), ``agent invalid action`` (not one of the three actions; in
lenient mode after one retry), ``task limit reached`` (``max_rounds`` used up),
``agent context limit`` (the model server says the conversation no longer fits),
``task error`` (model server failure after retries, the task deadline, an audit sink that
cannot take records, or a bug; an ``Error`` event precedes it, and ``TaskResult.error`` says
why in words, e.g. "model server failed (HTTP 503) after 4 tries").

Audit fails closed: before a FHIR call is sent the sink must be healthy (``AuditSink.failure``
unset, or cleared by ``probe()``), a POST's ``intent`` record is written first, and a read whose
record cannot be written is not given to the model; the task ends with "audit sink
unwritable: …" instead.

``history`` is the benchmark's: ``{"role": "user"|"agent", "content": str}``, the prompt first,
the model's raw text as ``agent`` entries. FHIR failures and blocked URLs are never task errors:
the model is told and may correct itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from sara.agent import parser, prompts
from sara.agent.actions import (
    PLEASE_FINISH,
    PROTOCOLS,
    Actions,
    Call,
    Outcome,
    PendingWrite,
    Protocol,
)
from sara.agent.audit import AuditRecord, AuditSink, patient_reference
from sara.agent.errors import AuditError, ContextLimitError, ModelError
from sara.agent.events import (
    ApprovalDecided,
    ApprovalRequested,
    Checkpoint,
    Error,
    Event,
    FhirRequest,
    FhirResponse,
    Finished,
    ModelOutput,
    Paused,
    RoundStarted,
    Status,
    TaskResult,
)
from sara.agent.fhir_client import FhirClient
from sara.agent.metrics import AgentMetrics
from sara.agent.model_client import Completion, ModelClient
from sara.agent.settings import ParseMode, WriteMode
from sara.agent.urlguard import DEFAULT_READ_TYPES, DEFAULT_WRITE_TYPES, UrlGuard, parse_base

__all__ = ["Event", "Finished", "Loop", "LoopConfig", "Paused", "Resume", "TaskResult", "TaskSpec"]

RETRY_MESSAGE = (
    "Your response was not in one of the three formats. Reply with exactly one action and no "
    "other text: GET url, POST url followed by a JSON payload, or FINISH([answers])."
)
log = structlog.get_logger("sara.agent.loop")


@dataclass(frozen=True)
class LoopConfig:
    """How the loop behaves; defaults reproduce the MedAgentBench harness."""

    api_base: str
    max_rounds: int = 8
    prompt: str = "medagentbench"
    functions: list[dict[str, Any]] | None = None
    parse_mode: ParseMode = ParseMode.STRICT
    write_mode: WriteMode = WriteMode.ACKNOWLEDGE
    protocol: Protocol = "medagentbench"
    read_types: frozenset[str] = DEFAULT_READ_TYPES
    write_types: frozenset[str] = DEFAULT_WRITE_TYPES
    task_timeout_seconds: float | None = None
    approval_ttl_seconds: float = 900.0  # write mode approve: a pending write expires after

    def __post_init__(self) -> None:
        if not self.api_base.endswith("/"):
            object.__setattr__(self, "api_base", self.api_base + "/")
        object.__setattr__(self, "parse_mode", ParseMode(self.parse_mode))
        object.__setattr__(self, "write_mode", WriteMode(self.write_mode))
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}")
        if self.max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        if self.task_timeout_seconds is not None and not self.task_timeout_seconds > 0:
            raise ValueError("task_timeout_seconds must be positive (or None for no limit)")
        prompts.template(self.prompt)  # unknown profile → ConfigError now, not mid-task
        parse_base(self.api_base)  # not an absolute http(s) base → ValueError now


@dataclass(frozen=True)
class TaskSpec:
    instruction: str
    context: str = ""
    task_id: str | None = None
    caller: str = "local"  # who asked: an API key's name or id, "anonymous", "local"
    patient: str | None = None  # the task's patient, when the caller names it


@dataclass(frozen=True)
class Resume:
    """A paused task's checkpoint and the decision on its pending write."""

    checkpoint: Checkpoint
    action_id: str
    decision: str  # approved | denied | expired
    decided_by: str | None
    reason: str | None
    url: str  # the write's URL relative to the FHIR base
    body: str  # its canonical JSON payload, exactly as shown
    payload_sha256: str


@dataclass
class _State:
    task_id: str
    history: list[dict[str, str]]
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0}
    )
    rounds: int = 0
    retried: bool = False
    active_before: float = 0.0  # seconds the task ran before it last paused
    patient: str | None = None  # "Patient/<id>": given, or the first patient a call concerned
    error: str | None = None

    def checkpoint(self, started: float) -> Checkpoint:
        return Checkpoint(
            history=list(self.history),
            rounds=self.rounds,
            usage=dict(self.usage),
            retried=self.retried,
            active_seconds=self.active_before + (time.perf_counter() - started),
            patient=self.patient,
        )


def _as_patient(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    value = value.strip()
    return value if value.startswith("Patient/") else f"Patient/{value}"


class Loop:
    """Runs tasks; holds the clients, the guard and the sinks, but no per-task state."""

    def __init__(
        self,
        config: LoopConfig,
        *,
        model: ModelClient,
        fhir: FhirClient,
        audit: AuditSink | None = None,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.fhir = fhir
        self.audit = audit
        self.metrics = metrics
        self.guard = UrlGuard(config.api_base, config.read_types, config.write_types)
        self.actions = Actions(
            fhir=fhir, guard=self.guard, write_mode=config.write_mode, protocol=config.protocol
        )
        self.functions = (
            config.functions if config.functions is not None else prompts.load_functions(None)
        )

    async def __aenter__(self) -> Loop:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.model.aclose()
        await self.fhir.aclose()

    def first_message(self, task: TaskSpec) -> str:
        return prompts.render(
            self.config.prompt,
            api_base=self.config.api_base,
            functions=self.functions,
            context=task.context,
            question=task.instruction,
        )

    async def run(self, task: TaskSpec, resume: Resume | None = None) -> AsyncIterator[Event]:
        """Run one task, or go on with a paused one after its decision (``resume``).

        The last event is ``Finished``, or — in write mode ``approve``, at a POST that passed
        its checks — ``ApprovalRequested`` followed by ``Paused`` (the checkpoint to resume from).
        """
        started = time.perf_counter()
        if resume is None:
            state = _State(
                task_id=task.task_id or uuid.uuid4().hex,
                history=[{"role": "user", "content": self.first_message(task)}],
                patient=_as_patient(task.patient),
            )
        else:
            cp = resume.checkpoint
            state = _State(
                task_id=task.task_id or uuid.uuid4().hex,
                history=list(cp.history),
                usage=dict(cp.usage),
                rounds=cp.rounds,
                retried=cp.retried,
                active_before=cp.active_seconds,
                patient=cp.patient,
            )
        tlog = log.bind(task_id=state.task_id)
        status: Status = "task error"
        result: str | None = None
        if self.metrics:
            self.metrics.tasks_in_flight.inc()
        ended = False  # False in `finally` means the consumer went away (cancel, disconnect)
        paused = False
        limit = self.config.task_timeout_seconds
        deadline = (
            None
            if limit is None
            else asyncio.get_running_loop().time() + max(0.0, limit - state.active_before)
        )
        try:
            if resume is not None:
                async for event in self._decided(resume, state, task, tlog):
                    yield event
            status, result = "task limit reached", None
            for rnd in range(state.rounds + 1, self.config.max_rounds + 1):
                if _passed(deadline):
                    yield self._deadline_error(tlog, state.rounds, state)
                    status = "task error"
                    break
                state.rounds = rnd
                yield RoundStarted(round=rnd)
                asked = time.perf_counter()
                try:
                    async with asyncio.timeout_at(deadline):
                        completion = await self.model.complete(state.history)
                except TimeoutError:
                    if not _passed(deadline):
                        raise
                    self._model_metric("error", time.perf_counter() - asked, None)
                    yield self._deadline_error(tlog, rnd, state)
                    status = "task error"
                    break
                except ContextLimitError:
                    self._model_metric("context_limit", time.perf_counter() - asked, None)
                    tlog.info("model_context_limit", round=rnd)
                    status = "agent context limit"
                    break
                except ModelError as exc:
                    self._model_metric("error", time.perf_counter() - asked, None)
                    if self.metrics is not None:
                        self.metrics.model_error(exc.reason)
                    tlog.warning("model_error", round=rnd, error=str(exc))
                    state.error = str(exc)
                    yield Error(message=str(exc), code="model_error")
                    status = "task error"
                    break
                state.usage["prompt_tokens"] += completion.prompt_tokens
                state.usage["completion_tokens"] += completion.completion_tokens
                text = completion.text
                if self.config.protocol == "sara-leaderboard":
                    text = parser.salvage(text)
                state.history.append({"role": "agent", "content": text})
                action = parser.parse(text, self.config.parse_mode.value)
                self._model_metric(
                    "ok" if action.kind != "invalid" else "invalid", completion.elapsed, completion
                )
                yield ModelOutput(
                    round=rnd,
                    text=completion.text,
                    action=action.kind,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    elapsed_ms=round(completion.elapsed * 1000, 3),
                )
                if isinstance(action, parser.Finish):
                    status, result = "completed", action.result
                    break
                if isinstance(action, parser.Invalid):
                    if self.config.parse_mode == ParseMode.LENIENT and not state.retried:
                        state.retried = True
                        state.history.append({"role": "user", "content": RETRY_MESSAGE})
                        continue
                    status = "agent invalid action"
                    break
                if _passed(deadline):  # the model answered too late: its action is not taken
                    yield self._deadline_error(tlog, rnd, state)
                    status = "task error"
                    break
                if isinstance(action, parser.Post) and self.config.write_mode == WriteMode.APPROVE:
                    prepared = self.actions.prepare(action, state.patient)
                    if isinstance(prepared, PendingWrite):
                        request = self._approval(rnd, prepared)
                        if self.metrics is not None:
                            self.metrics.write(prepared.resource_type, "pending")
                        if self.audit is not None:  # the reads so far are on disk before the
                            self.audit.flush()  # pause, which may last the whole TTL
                        yield request
                        ended = paused = True
                        yield Paused(
                            checkpoint=state.checkpoint(started),
                            pending=request,
                            patient=prepared.patient,
                            body=prepared.body,
                        )
                        return
                    outcome = prepared
                    yield FhirRequest(
                        round=rnd,
                        method="POST",
                        resource_type=self._label(outcome.call.resource_type),
                        sent=False,
                        blocked=outcome.call.blocked,
                        url=self.actions.relative(action.url),
                        payload=action.payload if action.valid else None,
                    )
                else:
                    method, ptype, sends, blocked = self.actions.plan(action)
                    if sends:
                        payload = action.payload if isinstance(action, parser.Post) else None
                        self._audit_ready(method, ptype, action.url, payload, state, task, rnd)
                    yield FhirRequest(
                        round=rnd,
                        method=method,
                        resource_type=self._label(ptype),
                        sent=sends,
                        blocked=blocked,
                        url=self.actions.request_line(action),
                        payload=(
                            action.payload
                            if isinstance(action, parser.Post) and action.valid
                            else None
                        ),
                    )
                    outcome = await (
                        self.actions.get(action.url)
                        if isinstance(action, parser.Get)
                        else self.actions.post(action)
                    )
                for event in self._record(outcome.call, state, task, rnd, tlog):
                    yield event
                state.history.append({"role": "user", "content": outcome.message})
            ended = True
        except AuditError as exc:
            ended = True
            if self.metrics is not None:
                self.metrics.audit_failed(exc.errno_name)
            tlog.error("audit_unwritable", round=state.rounds, error=str(exc))
            state.error = str(exc)
            yield Error(message=str(exc), code="audit_unwritable")
            status, result = "task error", None
        except Exception:
            tlog.exception("task_failed", round=state.rounds)
            ended = True
            state.error = "internal error in the agent"
            yield Error(message="internal error in the agent", code="internal_error")
            status, result = "task error", None
        finally:
            if self.metrics:
                self.metrics.tasks_in_flight.dec()
            if not ended:
                if self.metrics:
                    self.metrics.task_finished(
                        "cancelled",
                        state.rounds,
                        state.active_before + time.perf_counter() - started,
                    )
                self._flush_quietly()
                tlog.info("task_cancelled", rounds=state.rounds)
        self._flush_quietly()
        if paused:
            tlog.info("task_awaiting_approval", rounds=state.rounds)
            return
        elapsed = time.perf_counter() - started
        if self.metrics:
            self.metrics.task_finished(status, state.rounds, state.active_before + elapsed)
        tlog.info(
            "task_finished", status=status, rounds=state.rounds, elapsed_ms=round(elapsed * 1000, 1)
        )
        yield Finished(
            TaskResult(
                status=status,
                result=result,
                history=state.history,
                rounds=state.rounds,
                usage=dict(state.usage),
                elapsed_seconds=state.active_before + elapsed,
                task_id=state.task_id,
                error=state.error,
            ),
            patient=state.patient,
        )

    def _approval(self, rnd: int, write: PendingWrite) -> ApprovalRequested:
        ttl = self.config.approval_ttl_seconds
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        return ApprovalRequested(
            round=rnd,
            action_id=uuid.uuid4().hex,
            method="POST",
            url=write.relative,
            resource_type=write.resource_type,
            summary=write.summary,
            payload=write.payload,
            payload_sha256=write.payload_sha256,
            expires_at=expires.isoformat(timespec="milliseconds"),
        )

    async def _decided(
        self, resume: Resume, state: _State, task: TaskSpec, tlog: Any
    ) -> AsyncIterator[Event]:
        """The decision on the paused POST: the signed write goes out, or the model is told."""
        rnd = state.rounds
        yield ApprovalDecided(
            round=rnd,
            action_id=resume.action_id,
            decision=resume.decision,
            decided_by=resume.decided_by,
            reason=resume.reason,
        )
        written = self.actions.restore(resume.url, resume.body, resume.payload_sha256)
        rtype = written.resource_type if isinstance(written, PendingWrite) else "resource"
        if resume.decision == "approved" and isinstance(written, PendingWrite):
            self._audit_ready(
                "POST",
                written.resource_type,
                written.relative,
                written.payload,
                state,
                task,
                rnd,
                signed_by=resume.decided_by,
            )
            yield FhirRequest(
                round=rnd,
                method="POST",
                resource_type=self._label(written.resource_type),
                sent=True,
                url=written.relative,
                payload=written.payload,
            )
            outcome = await self.actions.execute_signed(written)
            for event in self._record(
                outcome.call, state, task, rnd, tlog, signed_by=resume.decided_by
            ):
                yield event
            message = outcome.message
        elif resume.decision == "approved" and isinstance(written, Outcome):
            for event in self._record(written.call, state, task, rnd, tlog):
                yield event
            message = written.message
        elif resume.decision == "expired":
            minutes = self.config.approval_ttl_seconds / 60
            message = (
                f"POST request not executed: no clinician signed this {rtype} within "
                f"{minutes:g} minutes, so it expired. Nothing was written to the FHIR server. "
                f"{PLEASE_FINISH}"
            )
        else:
            why = resume.reason or "no reason given"
            message = (
                f"POST request declined: the clinician did not sign this {rtype} (reason: {why})."
                f" Nothing was written to the FHIR server. {PLEASE_FINISH}"
            )
        state.history.append({"role": "user", "content": message})

    def _deadline_error(self, tlog: Any, rnd: int, state: _State) -> Error:
        limit = self.config.task_timeout_seconds
        tlog.warning("task_deadline", round=rnd, limit_seconds=limit)
        state.error = f"the task took longer than its limit of {limit:g} s"
        return Error(message=state.error, code="deadline")

    def _audit_ready(
        self,
        method: str,
        resource_type: str | None,
        url: str | None,
        payload: Any,
        state: _State,
        task: TaskSpec,
        rnd: int,
        signed_by: str | None = None,
    ) -> None:
        """Before a FHIR call is sent: the sink must take records (raises AuditError), and a
        write's intent is on record first."""
        sink = self.audit
        if sink is None:
            return
        if sink.failure is not None and sink.probe() is not None:
            raise AuditError(sink.failure, errno_name=_errno_of(sink.failure))
        if method == "POST":
            sink.write(
                AuditRecord(
                    ts=datetime.now(UTC).isoformat(timespec="milliseconds"),
                    task_id=state.task_id,
                    round=rnd,
                    caller=task.caller,
                    method=method,
                    resource_type=self._label(resource_type),
                    patient=patient_reference(url, payload) or state.patient,
                    status=None,
                    duration_ms=0.0,
                    outcome="intent",
                    signed_by=signed_by,
                )
            )

    def _flush_quietly(self) -> None:
        """The end-of-task flush: a failed record has already ended the task."""
        if self.audit is not None:
            with contextlib.suppress(AuditError):
                self.audit.flush()

    def _label(self, resource_type: str | None) -> str:
        if self.metrics is not None:
            return self.metrics.resource_label(resource_type)
        return resource_type or "other"

    def _model_metric(self, outcome: str, seconds: float, completion: Completion | None) -> None:
        if self.metrics is None:
            return
        self.metrics.model_round(
            self.model.model,
            outcome,
            seconds,
            completion.prompt_tokens if completion else 0,
            completion.completion_tokens if completion else 0,
        )

    def _record(
        self,
        call: Call,
        state: _State,
        task: TaskSpec,
        rnd: int,
        tlog: Any,
        signed_by: str | None = None,
    ) -> list[Event]:
        rtype = self._label(call.resource_type)
        if state.patient is None and call.patient and call.method == "GET" and call.sent:
            state.patient = call.patient
        if self.metrics is not None:
            if call.method == "POST":
                self.metrics.write(call.resource_type, call.outcome)
            if call.blocked:
                self.metrics.blocked(call.method, call.blocked)
            elif call.sent:
                self.metrics.fhir_call(call.method, call.resource_type, call.status, call.elapsed)
        if self.audit is not None:
            self.audit.write(
                AuditRecord(
                    ts=datetime.now(UTC).isoformat(timespec="milliseconds"),
                    task_id=state.task_id,
                    round=rnd,
                    caller=task.caller,
                    method=call.method,
                    resource_type=rtype,
                    patient=call.patient,
                    status=call.status,
                    duration_ms=round(call.elapsed * 1000, 3),
                    outcome=call.outcome,
                    signed_by=signed_by,
                )
            )
        tlog.info(
            "fhir_call",
            round=rnd,
            method=call.method,
            resource_type=rtype,
            status=call.status,
            outcome=call.outcome,
            elapsed_ms=round(call.elapsed * 1000, 3),
        )
        return [
            FhirResponse(
                round=rnd,
                method=call.method,
                resource_type=rtype,
                status=call.status,
                outcome=call.outcome,
                entry_count=call.entry_count,
                size=call.size,
                truncated=call.truncated,
                elapsed_ms=round(call.elapsed * 1000, 3),
                summary=call.summary,
            ),
        ]


def _errno_of(failure: str) -> str:
    """``ENOSPC`` from "audit sink unwritable: No space left on device (ENOSPC)"."""
    name = failure.rsplit("(", 1)[-1].rstrip(")")
    return name if name.isupper() and name.startswith("E") else "other"


def _passed(deadline: float | None) -> bool:
    return deadline is not None and asyncio.get_running_loop().time() >= deadline
