"""``Runner``: runs tasks in the background of one agent replica, over the shared run store.

A task runs in *segments*: from its start (or a decision) to its end (or the next write that
waits for sign-off). A segment is an asyncio task on whichever replica started it or took the
decision; its events are numbered, kept in memory for live followers and group-committed to
the store. A paused task holds no coroutine anywhere — only its checkpoint in the store — so a
restart or another replica resumes it.

A task's end is committed before its caller hears the result; a store that is down for longer
than the few immediate tries (``durable_backoff``) gets it later: the end is kept in memory and
the upkeep writes it once the store is back (docs/faults.md).

Every ``maintenance_seconds`` (a third of the worker lease) a replica: heartbeats; cancels its
tasks that another replica was asked to cancel; marks ``interrupted`` the running tasks of
replicas silent for longer than the lease; expires overdue pending writes and resumes their
tasks (the model hears they expired); refreshes the pending-approvals gauge; and once an hour
prunes old runs.

    follow(task_id, after)   replay from the store, then live (memory here, polling elsewhere)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from sara.agent.api.limits import Gate
from sara.agent.api.live import Frame, Live
from sara.agent.audit import AuditSink, DecisionRecord
from sara.agent.errors import AuditError, StoreUnavailable
from sara.agent.events import (
    ApprovalDecided,
    ApprovalRequested,
    Checkpoint,
    Event,
    FhirResponse,
    Finished,
    Paused,
)
from sara.agent.loop import Loop, Resume, TaskSpec
from sara.agent.metrics import AgentMetrics
from sara.agent.store import bounds
from sara.agent.store.runs import Action, DecisionError, RunStore, Task

log = structlog.get_logger("sara.agent.runner")

POLL_SECONDS = 0.5  # how often a follower of a task on another replica looks for new events
PRUNE_EVERY_SECONDS = 3600.0
RESULT_MAX_BYTES = 4 * 1024 * 1024
ENDED_KEPT = 64  # ended segments kept in memory for late followers
ENDINGS = frozenset({"finished", "cancelled", "interrupted"})  # a task's last event kinds
SHUTDOWN_REASON = "the agent shut down while this task ran; it was not re-run"


@dataclass
class Started:
    task_id: str
    live: Live


@dataclass
class _Segment:
    task_id: str
    seq: int
    patient: str | None
    loop: Loop
    spec: TaskSpec
    pending_write: str | None = None  # action id of the signed write whose answer we await


LoopFactory = Callable[[dict[str, Any]], Loop]


class Runner:
    """Starts, resumes, cancels and follows tasks; keeps this replica's lease."""

    def __init__(
        self,
        store: RunStore,
        *,
        loop_for: LoopFactory,
        metrics: AgentMetrics,
        audit: AuditSink,
        gate: Gate,
        lease_seconds: float = 30.0,
        retention_days: float = 30.0,
        retention_max_tasks: int = 100_000,
        keepalive_seconds: float = 15.0,
    ) -> None:
        self.store = store
        self.loop_for = loop_for
        self.metrics = metrics
        self.audit = audit
        self.gate = gate
        self.lease = lease_seconds
        self.retention = (retention_days, retention_max_tasks)
        self.keepalive = keepalive_seconds
        self.worker = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.live: dict[str, Live] = {}
        # the last segments that ended here, for followers that arrive just after (a fast
        # task, a reconnect): they read its end from memory instead of the store
        self._ended: OrderedDict[str, Live] = OrderedDict()
        self._segment_started = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self._closing = False
        # how long a task's end is retried at once (a store that restarts), then it is kept
        # here and recorded by the upkeep once the store is back: an acknowledged task's end
        # is never dropped (its frames, and the update: the later value of a task wins)
        self.durable_backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
        self._unrecorded: dict[str, tuple[list[tuple[int, str, str]], dict[str, Any]]] = {}

    # -- life cycle ----------------------------------------------------------------------

    async def open(self) -> None:
        await self.store.heartbeat(self.worker, socket.gethostname(), os.getpid())
        await self._maintain_once()
        self._maintenance = asyncio.create_task(self._maintain_forever(), name="runner-upkeep")
        log.info("runner_started", worker=self.worker, backend=self.store.backend)

    async def close(self) -> None:
        self._closing = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        for live in list(self.live.values()):
            self._stop(live, "interrupted", SHUTDOWN_REASON)
        jobs = [live.job for live in self.live.values() if live.job is not None]
        if jobs:
            await asyncio.wait(jobs, timeout=10)
        for job in list(self._background):
            job.cancel()
        try:
            await self._record_late()
            left = await self.store.interrupt_owned(self.worker, SHUTDOWN_REASON)
            if left:
                log.warning("tasks_interrupted_at_shutdown", count=left)
        except Exception:
            log.exception("run_store_shutdown_failed")

    # -- starting and resuming -----------------------------------------------------------

    async def start(
        self,
        spec: TaskSpec,
        options: dict[str, Any],
        *,
        principal: str,
    ) -> Started:
        """Create the task row, then run it in the background (the caller holds a gate slot)."""
        task_id = spec.task_id or uuid.uuid4().hex
        spec = replace(spec, task_id=task_id)
        patient = _bare(spec.patient)
        await self.store.start(
            task_id=task_id,
            principal=principal,
            instruction=spec.instruction,
            context=spec.context,
            settings=options,
            patient=patient,
            owner=self.worker,
        )
        loop = self.loop_for(options)
        segment = _Segment(task_id, 0, patient, loop, spec)
        live = self._launch(segment, None)
        log.info("task_started", task_id=task_id, caller=principal)
        return Started(task_id, live)

    def _launch(self, segment: _Segment, resume: Resume | None) -> Live:
        live = Live(segment.task_id, segment.seq + 1)
        self.live[segment.task_id] = live
        live.job = asyncio.create_task(self._run(segment, resume, live), name="task")
        started, self._segment_started = self._segment_started, asyncio.Event()
        started.set()
        return live

    async def _resume(self, task: Task, action: Action, decision: str) -> Live | None:
        """Go on with a claimed task; a checkpoint that cannot be resumed interrupts it."""
        try:
            checkpoint = Checkpoint.from_dict(orjson.loads(task.checkpoint or "null"))
            options = task.options()
            loop = self.loop_for(options)
        except Exception:
            log.exception("resume_failed", task_id=task.id)
            self.metrics.store_errors.labels("resume").inc()
            with contextlib.suppress(Exception):
                await self._durable(
                    task.id,
                    [],
                    {
                        "status": "interrupted",
                        "reason": "its saved state could not be resumed (see the agent log)",
                        "finished_at": datetime.now(UTC),
                        "owner": None,
                    },
                    "resume",
                )
            return None
        spec = TaskSpec(
            task.instruction,
            task.context,
            task_id=task.id,
            caller=task.principal,
            patient=task.patient,
        )
        resume = Resume(
            checkpoint=checkpoint,
            action_id=action.id,
            decision=decision,
            decided_by=action.decided_by,
            reason=action.reason,
            url=action.url,
            body=action.payload,
            payload_sha256=action.payload_sha256,
        )
        segment = _Segment(task.id, task.last_seq, task.patient, loop, spec)
        self.gate.enter(task.principal)
        return self._launch(segment, resume)

    async def _run(self, segment: _Segment, resume: Resume | None, live: Live) -> None:
        task_id = segment.task_id
        try:
            async for event in segment.loop.run(segment.spec, resume):
                if isinstance(event, Paused):
                    await self._paused(segment, event, live)
                    return
                if isinstance(event, ApprovalRequested):
                    continue  # stored and shown with the pause, once the action exists
                await self._event(segment, event, live)
        except asyncio.CancelledError:
            status, reason = live.stop or ("cancelled", "cancelled")
            await asyncio.shield(self._stopped(segment, live, status, reason))
        except Exception:
            log.exception("segment_failed", task_id=task_id)
            await asyncio.shield(
                self._stopped(segment, live, "interrupted", "internal error in the agent")
            )
        finally:
            self.gate.leave(segment.spec.caller)
            live.finish()
            if self.live.get(task_id) is live:
                del self.live[task_id]
            self._ended[task_id] = live
            self._ended.move_to_end(task_id)
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
            if live.written is not None and not live.written.done():
                live.written.set_result(None)

    async def _event(self, segment: _Segment, event: Event, live: Live) -> None:
        segment.seq += 1
        data = event.to_dict()
        frame = Frame(segment.seq, event.kind, self.store.encode(data))
        if isinstance(event, Finished):
            patient = _bare(event.patient) or segment.patient
            result = event.result
            update = {
                "status": "finished",
                "outcome": result.status,
                "answer": result.result,
                "result": bounds.bounded(result.to_dict(), RESULT_MAX_BYTES),
                "error": result.error,
                "rounds": result.rounds,
                "finished_at": datetime.now(UTC),
                "owner": None,
                "checkpoint": None,
                "patient": patient,
                "last_seq": frame.seq,
            }
            try:
                await self._durable(segment.task_id, [frame], update, "finish")
            except RuntimeError:
                live.publish(frame)  # the live view ends as the store will, once it is back
                raise
            live.result = result
            live.publish(frame)
            return
        self._record(segment.task_id, [frame], None)
        live.publish(frame)
        if isinstance(event, ApprovalDecided) and event.decision == "approved":
            segment.pending_write = event.action_id
        elif isinstance(event, FhirResponse) and segment.pending_write is not None:
            action_id, segment.pending_write = segment.pending_write, None
            ref = None
            if event.summary and event.summary.get("id"):
                ref = f"{event.summary['resource_type']}/{event.summary['id']}"
            try:
                await self.store.written(
                    action_id, status=event.status, outcome=event.outcome, ref=ref
                )
            except Exception:
                self.metrics.store_errors.labels("written").inc()
                log.exception("run_store_write_failed", task_id=segment.task_id)
            if live.written is not None and not live.written.done():
                live.written.set_result(None)

    async def _paused(self, segment: _Segment, paused: Paused, live: Live) -> None:
        request: ApprovalRequested = paused.pending
        segment.seq += 1
        frame = Frame(segment.seq, request.kind, self.store.encode(request.to_dict()))
        action = {
            "id": request.action_id,
            "task_id": segment.task_id,
            "round": request.round,
            "method": request.method,
            "url": request.url,
            "resource_type": request.resource_type,
            "patient": _bare(paused.patient),
            "summary": request.summary,
            "payload": paused.body,
            "payload_sha256": request.payload_sha256,
            "created_at": datetime.now(UTC),
            "expires_at": datetime.fromisoformat(request.expires_at),
        }
        checkpoint = bounds.dumps(paused.checkpoint.to_dict())
        await self.store.pause(
            segment.task_id,
            [(frame.seq, frame.kind, frame.text)],
            action,
            checkpoint,
            paused.checkpoint.rounds,
            patient=_bare(paused.checkpoint.patient),
        )
        self.metrics.approvals_pending.inc()
        live.publish(frame)  # only now: a client that sees it can decide at once
        log.info("approval_requested", task_id=segment.task_id, action_id=request.action_id)

    async def _stopped(self, segment: _Segment, live: Live, status: str, reason: str) -> None:
        if segment.task_id in self._unrecorded:  # it ended; its end waits for the store
            log.warning("task_end_unrecorded", task_id=segment.task_id)
            return
        segment.seq += 1
        data = {"type": status, "status": status, "reason": reason}
        frame = Frame(segment.seq, status, self.store.encode(data))
        update = {
            "status": status,
            "reason": reason,
            "finished_at": datetime.now(UTC),
            "owner": None,
            "checkpoint": None,
            "last_seq": frame.seq,
        }
        with contextlib.suppress(Exception):
            await self._durable(segment.task_id, [frame], update, "stop")
        live.publish(frame)
        log.info("task_stopped", task_id=segment.task_id, status=status)

    def _record(self, task_id: str, frames: list[Frame], update: dict[str, Any] | None) -> None:
        future = self.store.record(task_id, [(f.seq, f.kind, f.text) for f in frames], update)
        future.add_done_callback(self._report)

    def _report(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.metrics.store_errors.labels("events").inc()
            log.error("run_store_write_failed", error=str(future.exception()))

    async def _durable(
        self, task_id: str, frames: list[Frame], update: dict[str, Any], what: str
    ) -> None:
        """Commit and wait; a few tries (a store that restarts), then keep it for the upkeep
        (:meth:`_record_late`) and give up loudly."""
        rows = original = [(f.seq, f.kind, f.text) for f in frames]
        for attempt, pause in enumerate(self.durable_backoff):
            try:
                await self.store.record(task_id, rows, update, urgent=True)
            except StoreUnavailable as exc:  # an outage: its words, no traceback each time
                self.metrics.store_errors.labels(what).inc()
                log.error("run_store_write_failed", task_id=task_id, error=str(exc))
            except Exception:
                self.metrics.store_errors.labels(what).inc()
                log.exception("run_store_write_failed", task_id=task_id, attempt=attempt + 1)
                rows = []  # events may have landed; the update is what matters now
            else:
                return
            await asyncio.sleep(pause)
        # the first end wins: a segment that failed to record its end is stopped next, and
        # that "interrupted" must not replace the result it had
        self._unrecorded.setdefault(task_id, (original, update))
        raise RuntimeError(f"run store: could not record {what} of task {task_id}")

    async def _record_late(self) -> None:
        """Record the task ends that could not be committed when they happened."""
        for task_id, (rows, update) in list(self._unrecorded.items()):
            try:
                await self.store.record(task_id, rows, update, urgent=True)
            except StoreUnavailable:
                return  # still down: the next upkeep tries again
            except Exception:  # its events landed after all (a duplicate): the update alone
                await self.store.record(task_id, [], update, urgent=True)
            del self._unrecorded[task_id]
            log.warning("task_end_recorded_late", task_id=task_id)

    # -- decisions and cancellation ------------------------------------------------------

    async def decide(
        self,
        task_id: str,
        action_id: str,
        *,
        decision: str,
        payload_sha256: str,
        principal: str,
        reason: str | None,
        wait_seconds: float,
    ) -> Action:
        """Sign or decline; the task resumes here. Raises :class:`DecisionError`, or
        :class:`AuditError` (503, nothing decided) when the audit sink cannot record it."""
        request = await self._audit_request(task_id, action_id, decision, payload_sha256, principal)
        try:
            claimed = await self.store.decide(
                task_id,
                action_id,
                decision=decision,
                payload_sha256=payload_sha256,
                by=principal,
                reason=reason,
                owner=self.worker,
            )
        except DecisionError as exc:
            if request is not None:  # the attempt is on record: say it did not count
                self._audit_quietly(replace(request, kind="decision_refused", reason=exc.message))
            raise
        self._decided(claimed.action, principal)
        live = await self._resume(claimed.task, claimed.action, decision)
        if decision == "approved" and live is not None:
            live.written = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(live.written), wait_seconds)
        found = await self.store.get(task_id)
        actions = {a.id: a for a in found.actions} if found else {}
        return actions.get(action_id, claimed.action)

    async def _audit_request(
        self, task_id: str, action_id: str, decision: str, payload_sha256: str, principal: str
    ) -> DecisionRecord | None:
        """A decision on a pending write is audited before it counts (``"kind":
        "decision_request"``): a sink that cannot take the record refuses the decision (the
        caller answers 503) and nothing is decided. None when there is no such pending write
        (the store's own answer, 404 or 409, follows)."""
        task = await self.store.get(task_id)
        action = next((a for a in task.actions if a.id == action_id), None) if task else None
        if action is None or action.status != "pending":
            return None
        record = DecisionRecord(
            ts=datetime.now(UTC).isoformat(timespec="milliseconds"),
            task_id=task_id,
            action_id=action_id,
            principal=principal,
            resource_type=action.resource_type,
            patient=f"Patient/{action.patient}" if action.patient else None,
            payload_sha256=payload_sha256,  # as presented: a mismatch is on record too
            outcome=decision,
            reason=None,
            kind="decision_request",
        )
        try:
            self.audit.write(record)
        except AuditError as exc:
            self.metrics.audit_failed(exc.errno_name)
            log.error("audit_unwritable", task_id=task_id, error=str(exc))
            raise
        return record

    def _audit_quietly(self, record: DecisionRecord) -> None:
        try:
            self.audit.write(record)
        except AuditError as exc:
            self.metrics.audit_failed(exc.errno_name)
            log.error("audit_unwritable", task_id=record.task_id, error=str(exc))

    def _decided(self, action: Action, principal: str | None) -> None:
        waited = (datetime.now(UTC) - action.created_at).total_seconds()
        self.metrics.decided(action.status, waited)
        self.metrics.approvals_pending.dec()
        try:  # its request is on record (``_audit_request``); should this record fail, the
            # signed write is refused by the loop while the sink fails (no intent, no POST)
            self.audit.write(
                DecisionRecord(
                    ts=datetime.now(UTC).isoformat(timespec="milliseconds"),
                    task_id=action.task_id,
                    action_id=action.id,
                    principal=principal,
                    resource_type=action.resource_type,
                    patient=f"Patient/{action.patient}" if action.patient else None,
                    payload_sha256=action.payload_sha256,
                    outcome=action.status,
                    reason=action.reason,
                )
            )
            self.audit.flush()
        except AuditError as exc:
            self.metrics.audit_failed(exc.errno_name)
            log.error("audit_unwritable", task_id=action.task_id, error=str(exc))
        log.info("approval_decided", task_id=action.task_id, outcome=action.status)

    async def cancel(self, task_id: str, reason: str) -> str | None:
        """Cancel a task wherever it is; the status it now has (or is getting), or None when
        it had already ended."""
        live = self.live.get(task_id)
        if live is not None and not live.done:
            self._stop(live, "cancelled", reason)
            await live.ended.wait()
            return "cancelled"
        found = await self.store.get(task_id)
        waiting = found is not None and found.status == "awaiting_approval"
        if found is not None and waiting and await self.store.cancel_waiting(task_id, reason):
            for action in found.actions:
                if action.status == "pending":
                    self._decided(_with(action, "cancelled", reason), None)
            return "cancelled"
        if await self.store.request_cancel(task_id):
            return "running"  # its replica cancels it at its next heartbeat
        return None

    def cancel_soon(self, task_id: str, reason: str) -> None:
        """For code that cannot await (a stream's ``finally``)."""
        live = self.live.get(task_id)
        if live is not None and not live.done:
            self._stop(live, "cancelled", reason)
            return
        job = asyncio.ensure_future(self.cancel(task_id, reason))
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    def _stop(self, live: Live, status: str, reason: str) -> None:
        if live.job is not None and not live.job.done():
            live.stop = (status, reason)
            live.job.cancel()

    # -- following -----------------------------------------------------------------------

    async def follow(self, task_id: str, after: int = 0) -> AsyncIterator[Frame | None]:
        """Every event after ``after``, exactly once, until the task ends; ``None`` is a
        keep-alive (nothing new for ``keepalive`` seconds)."""
        last = after
        quiet_since = time.monotonic()
        while True:
            live = self.live.get(task_id) or self._ended.get(task_id)
            if live is not None and last + 1 >= live.first_seq:
                changed = live.changed
                for frame in live.since(last):
                    last = frame.seq
                    quiet_since = time.monotonic()
                    yield frame
                    if frame.kind in ENDINGS:  # published once durable: nothing follows
                        return
                if not live.done:
                    try:
                        async with asyncio.timeout(self.keepalive):
                            await changed.wait()
                    except TimeoutError:
                        quiet_since = time.monotonic()
                        yield None
                    continue
                # the segment ended without a last event (it paused): the store knows more
            started = self._segment_started
            rows = await self.store.events(task_id, after=last)
            for row in rows:
                last = row.seq
                quiet_since = time.monotonic()
                yield Frame(row.seq, row.kind, row.data)
            if rows:
                continue
            task = await self.store.get(task_id)
            if task is None or (task.terminal and last >= task.last_seq):
                return
            if task_id in self.live:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await started.wait()
            if time.monotonic() - quiet_since >= self.keepalive:
                quiet_since = time.monotonic()
                yield None

    # -- upkeep --------------------------------------------------------------------------

    async def _maintain_forever(self) -> None:
        interval = max(0.2, self.lease / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._maintain_once()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:  # an outage: once per round, in words
                self.metrics.store_errors.labels("upkeep").inc()
                log.error("runner_upkeep_failed", error=str(exc))
            except Exception:
                self.metrics.store_errors.labels("upkeep").inc()
                log.exception("runner_upkeep_failed")

    async def _maintain_once(self) -> None:
        await self.store.heartbeat(self.worker, socket.gethostname(), os.getpid())
        await self._record_late()
        for task_id in await self.store.cancel_requests(self.worker):
            live = self.live.get(task_id)
            if live is not None:
                self._stop(live, "cancelled", "cancelled on request (another replica)")
        interrupted = await self.store.interrupt_orphans(self.lease)
        if interrupted:
            log.warning("tasks_interrupted", count=interrupted, reason="replica silent")
        if not self._closing:
            for claimed in await self.store.expire_due(self.worker):
                self._decided(claimed.action, None)
                await self._resume(claimed.task, claimed.action, "expired")
        self.metrics.approvals_pending.set(await self.store.pending_count())
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS or not self._last_prune:
            self._last_prune = time.monotonic()
            days, count = self.retention
            removed = await self.store.prune(days=days, max_tasks=count)
            if removed:
                log.info("runs_pruned", count=removed)


def _bare(patient: str | None) -> str | None:
    if not patient:
        return None
    return patient.removeprefix("Patient/")[:128] or None


def _with(action: Action, status: str, reason: str) -> Action:
    return replace(action, status=status, reason=reason)


__all__ = ["DecisionError", "Frame", "Live", "Runner", "Started"]
