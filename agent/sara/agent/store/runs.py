"""``RunStore``: the small async interface the agent keeps its runs behind.

    start        a new task row (before the caller hears its id)
    record       events (numbered per task) and a task update, group-committed by one writer
    pause        events + the pending action + the checkpoint, in one transaction
    decide       sign or decline a pending action and claim its task, atomically
    expire_due   pending actions past their expiry become ``expired`` (claimed like a decision)
    get / list_tasks / events / actions
    heartbeat / interrupt_orphans / interrupt_owned   replicas and their running tasks
    prune        retention by age and by count

Every state change that two replicas could race on is one conditional ``UPDATE … WHERE
status = …`` whose row count says who won; nothing is read and then written blindly.

A database that cannot be reached (refused, connection lost, restarting) raises
:class:`~sara.agent.errors.StoreUnavailable` — the API's 503 — and reads (``get``,
``events``, ``list_tasks``) are tried once more first. PostgreSQL connections are checked
before use (``pool_pre_ping``), so after a restart the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sara.agent.errors import StoreUnavailable
from sara.agent.store import bounds, migrate
from sara.agent.store.records import (
    STATUSES,
    TERMINAL,
    Action,
    Claimed,
    DecisionError,
    StoredEvent,
    Task,
    as_utc,
    canonical,
    decode_cursor,
    encode_cursor,
    now,
    sha256,
)
from sara.agent.store.schema import pending_actions, task_events, tasks, workers

MAX_PAGE = 200
COMMIT_WINDOW_SECONDS = 0.01  # events may wait this long to share a commit
READ_RETRY_SECONDS = 0.25  # a read that met a lost connection is tried again after this
#: asyncpg's errors of a server going away or not taking connections yet (by name: the SQLite
#: backend does not need asyncpg installed)
_PG_DISCONNECTS = frozenset(
    {"PostgresConnectionError", "OperatorInterventionError", "ConnectionDoesNotExistError"}
)
T = TypeVar("T")


def disconnected(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached, rather than a bad statement."""
    if isinstance(exc, (OSError, sa.exc.TimeoutError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))
    ):
        return True
    # SQLAlchemy wraps asyncpg's error in its adapter's, which wraps the original: walk them
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        state = str(getattr(seen, "sqlstate", "") or "")
        # 08xxx: connection exception; 57P0x: the server shuts down or is starting up
        if state.startswith(("08", "57P")) or isinstance(seen, OSError):
            return True
        if any(c.__name__ in _PG_DISCONNECTS for c in type(seen).__mro__):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


@contextlib.asynccontextmanager
async def _guarded(
    opening: contextlib.AbstractAsyncContextManager[AsyncConnection],
) -> AsyncIterator[AsyncConnection]:
    """``opening``'s connection; a lost or refused one becomes :class:`StoreUnavailable`."""
    try:
        async with opening as conn:
            yield conn
    except StoreUnavailable:
        raise
    except Exception as exc:
        if disconnected(exc):
            raise _unavailable(exc) from exc
        raise


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"run store unavailable ({type(exc).__name__})")


@dataclass
class _Batch:
    events: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)  # merged per task
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


# Built once: SQLAlchemy caches their compiled forms (per set of SET columns for the update).
_INSERT_EVENTS = task_events.insert()
_UPDATE_TASK = tasks.update().where(tasks.c.id == sa.bindparam("_task_id"))
#: What the history list shows; the large columns (result, context, checkpoint) stay behind.
_HEAVY = {"result", "context", "checkpoint"}
_LIST_COLUMNS = [c for c in tasks.c if c.name not in _HEAVY]


def _event_rows(
    task_id: str, events: Sequence[tuple[int, str, str]], stamp: datetime
) -> list[dict[str, Any]]:
    return [
        {"task_id": task_id, "seq": s, "kind": k, "data": d, "created_at": stamp}
        for s, k, d in events
    ]


class RunStore:
    """Tasks, events and pending actions in SQLite or PostgreSQL."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        event_max_bytes: int = 256 * 1024,
        commit_window: float = COMMIT_WINDOW_SECONDS,
    ) -> None:
        self.engine = engine
        self.event_max_bytes = event_max_bytes
        self.commit_window = commit_window
        self._urgent = asyncio.Event()
        self.backend = engine.dialect.name
        self._batch = _Batch()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._last: asyncio.Future[None] | None = None  # the newest queued write
        self._closed = False

    @classmethod
    async def open(cls, url: str, *, event_max_bytes: int = 256 * 1024) -> RunStore:
        """Connect, migrate to the newest schema, start the writer."""
        engine = migrate.create_engine(url)
        try:
            await migrate.upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, event_max_bytes=event_max_bytes)

    async def close(self) -> None:
        if self._closed:
            return
        await self.flush()
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.engine.dispose()

    # -- connections ---------------------------------------------------------------------

    def _begin(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A transaction; a lost or refused connection becomes StoreUnavailable."""
        return _guarded(self.engine.begin())

    def _connect(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection (reads); a lost or refused one becomes StoreUnavailable."""
        return _guarded(self.engine.connect())

    async def _read(self, query: Callable[[], Awaitable[T]]) -> T:
        """An idempotent read, tried once more when the connection was lost under it."""
        try:
            return await query()
        except StoreUnavailable:
            await asyncio.sleep(READ_RETRY_SECONDS)
            return await query()

    # -- writing -------------------------------------------------------------------------

    def encode(self, data: dict[str, Any]) -> str:
        return bounds.bounded(data, self.event_max_bytes)

    async def start(
        self,
        *,
        task_id: str,
        principal: str,
        instruction: str,
        context: str,
        settings: dict[str, Any],
        patient: str | None,
        owner: str | None,
        status: str = "running",
    ) -> None:
        stamp = now()
        async with self._begin() as conn:
            await conn.execute(
                tasks.insert().values(
                    id=task_id,
                    created_at=stamp,
                    updated_at=stamp,
                    status=status,
                    principal=principal,
                    patient=patient,
                    instruction=instruction,
                    context=context,
                    settings=bounds.dumps(settings),
                    owner=owner,
                    cancel_requested=False,
                    rounds=0,
                    last_seq=0,
                )
            )

    def record(
        self,
        task_id: str,
        events: Sequence[tuple[int, str, str]] = (),
        update: dict[str, Any] | None = None,
        *,
        urgent: bool = False,
    ) -> asyncio.Future[None]:
        """Queue events ``(seq, kind, json)`` and a task update for the writer.

        The writer commits everything queued in one transaction (group commit), at most
        ``commit_window`` seconds after the first of it arrived — at once when a caller marks
        its write ``urgent`` (it is about to wait for it: a task's end). The returned future
        resolves once it is durable; a round costs no database round trip of its own.
        """
        if self._closed:
            raise RuntimeError("run store closed")
        stamp = now()
        batch = self._batch
        batch.events.extend(_event_rows(task_id, events, stamp))
        if update:
            # Events alone touch no task row (a task's last event id is read from its events);
            # the updates of one batch are merged per task, the later value winning.
            batch.updates.setdefault(task_id, {}).update(update, updated_at=stamp)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch.waiters.append(future)
        self._last = future
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name="run-store-writer")
        self._wake.set()
        if urgent:
            self._urgent.set()
        return future

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (batches commit in order)."""
        if self._last is not None and not self._last.done():
            self._urgent.set()
            await asyncio.wait({asyncio.shield(self._last)})

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            if self.commit_window > 0 and not self._urgent.is_set():
                # let the rounds in flight add to this transaction: one commit for several
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.commit_window):
                        await self._urgent.wait()
            self._wake.clear()
            self._urgent.clear()
            batch, self._batch = self._batch, _Batch()
            if not batch.waiters:
                continue
            try:
                async with self._begin() as conn:
                    await self._apply(conn, batch)
            except Exception as exc:  # the writers' callers decide what a lost write means
                for waiter in batch.waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
            else:
                for waiter in batch.waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    async def _apply(self, conn: AsyncConnection, batch: _Batch) -> None:
        if batch.events:
            await conn.execute(_INSERT_EVENTS, batch.events)
        for task_id, values in batch.updates.items():
            await conn.execute(_UPDATE_TASK, {"_task_id": task_id, **values})

    async def pause(
        self,
        task_id: str,
        events: Sequence[tuple[int, str, str]],
        action: dict[str, Any],
        checkpoint: str,
        rounds: int,
        patient: str | None = None,
    ) -> None:
        """The task waits for a decision: its events, the action and the checkpoint (and the
        patient it turned out to concern, unless it had one), in one transaction."""
        await self.flush()
        stamp = now()
        async with self._begin() as conn:
            if events:
                await conn.execute(_INSERT_EVENTS, _event_rows(task_id, events, stamp))
            await conn.execute(pending_actions.insert().values(**action, status="pending"))
            await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(
                    status="awaiting_approval",
                    checkpoint=checkpoint,
                    owner=None,
                    rounds=rounds,
                    updated_at=stamp,
                    last_seq=events[-1][0] if events else tasks.c.last_seq,
                    patient=sa.func.coalesce(tasks.c.patient, patient),
                )
            )

    async def decide(
        self,
        task_id: str,
        action_id: str,
        *,
        decision: str,
        payload_sha256: str,
        by: str,
        reason: str | None,
        owner: str,
    ) -> Claimed:
        """Sign (``approved``) or decline (``denied``) a pending action; claim its task.

        Raises :class:`DecisionError`: ``not_found``, ``decided``, ``expired``, ``mismatch``.
        """
        stamp = now()
        async with self._begin() as conn:
            changed = await conn.execute(
                pending_actions.update()
                .where(
                    pending_actions.c.id == action_id,
                    pending_actions.c.task_id == task_id,
                    pending_actions.c.status == "pending",
                    pending_actions.c.payload_sha256 == payload_sha256,
                    pending_actions.c.expires_at > stamp,
                )
                .values(status=decision, decided_at=stamp, decided_by=by, reason=reason)
            )
            if changed.rowcount != 1:
                raise await self._why_not(conn, task_id, action_id, payload_sha256, stamp)
            return await self._claim(conn, task_id, action_id, owner, stamp)

    async def _why_not(
        self, conn: AsyncConnection, task_id: str, action_id: str, digest: str, stamp: datetime
    ) -> DecisionError:
        row = (
            await conn.execute(pending_actions.select().where(pending_actions.c.id == action_id))
        ).first()
        if row is None or row.task_id != task_id:
            return DecisionError("not_found", "no such action on this task")
        action = Action.of(row)
        if action.status != "pending":
            by = f" by {action.decided_by}" if action.decided_by else ""
            return DecisionError("decided", f"this action was already {action.status}{by}")
        if action.expires_at <= stamp:
            return DecisionError("expired", "this action expired before it was decided")
        return DecisionError(
            "mismatch",
            f"payload_sha256 does not match the payload shown ({action.payload_sha256}): "
            "only the exact payload shown can be signed",
        )

    async def _claim(
        self, conn: AsyncConnection, task_id: str, action_id: str, owner: str, stamp: datetime
    ) -> Claimed:
        await conn.execute(
            tasks.update()
            .where(tasks.c.id == task_id, tasks.c.status == "awaiting_approval")
            .values(status="running", owner=owner, updated_at=stamp)
        )
        row = (await conn.execute(tasks.select().where(tasks.c.id == task_id))).one()
        action = (
            await conn.execute(pending_actions.select().where(pending_actions.c.id == action_id))
        ).one()
        return Claimed(action=Action.of(action), task=Task.of(row))

    async def expire_due(self, owner: str, limit: int = 50) -> list[Claimed]:
        """Pending actions past their expiry become ``expired``; their tasks are claimed."""
        stamp = now()
        claimed: list[Claimed] = []
        async with self._begin() as conn:
            due = (
                await conn.execute(
                    sa.select(pending_actions.c.id, pending_actions.c.task_id)
                    .where(
                        pending_actions.c.status == "pending",
                        pending_actions.c.expires_at <= stamp,
                    )
                    .limit(limit)
                )
            ).all()
        for action_id, task_id in due:
            async with self._begin() as conn:
                changed = await conn.execute(
                    pending_actions.update()
                    .where(pending_actions.c.id == action_id, pending_actions.c.status == "pending")
                    .values(status="expired", decided_at=stamp, reason="expired")
                )
                if changed.rowcount == 1:  # another replica may have got there first
                    claimed.append(await self._claim(conn, task_id, action_id, owner, stamp))
        return claimed

    async def written(
        self, action_id: str, *, status: int | None, outcome: str, ref: str | None
    ) -> None:
        """What the FHIR server answered to a signed write."""
        async with self._begin() as conn:
            await conn.execute(
                pending_actions.update()
                .where(pending_actions.c.id == action_id)
                .values(write_status=status, write_outcome=outcome, written_ref=ref)
            )

    async def cancel_waiting(self, task_id: str, reason: str) -> bool:
        """Cancel a task that waits for a decision (its pending actions too)."""
        stamp = now()
        async with self._begin() as conn:
            changed = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.status == "awaiting_approval")
                .values(
                    status="cancelled",
                    reason=reason,
                    finished_at=stamp,
                    updated_at=stamp,
                    checkpoint=None,
                )
            )
            if changed.rowcount != 1:
                return False
            await conn.execute(
                pending_actions.update()
                .where(pending_actions.c.task_id == task_id, pending_actions.c.status == "pending")
                .values(status="cancelled", decided_at=stamp, reason=reason)
            )
        return True

    async def request_cancel(self, task_id: str) -> bool:
        """Ask the replica running a task to cancel it (it polls with its heartbeat)."""
        async with self._begin() as conn:
            changed = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.status == "running")
                .values(cancel_requested=True)
            )
        return changed.rowcount == 1

    # -- reading -------------------------------------------------------------------------

    async def get(self, task_id: str) -> Task | None:
        return await self._read(lambda: self._get(task_id))

    async def _get(self, task_id: str) -> Task | None:
        async with self._connect() as conn:
            row = (await conn.execute(tasks.select().where(tasks.c.id == task_id))).first()
            if row is None:
                return None
            found = await conn.execute(
                pending_actions.select()
                .where(pending_actions.c.task_id == task_id)
                .order_by(pending_actions.c.created_at)
            )
            newest = (
                await conn.execute(
                    sa.select(sa.func.max(task_events.c.seq)).where(
                        task_events.c.task_id == task_id
                    )
                )
            ).scalar()
            task = Task.of(row, [Action.of(a) for a in found])
            if newest is not None and newest > task.last_seq:
                task = replace(task, last_seq=int(newest))
            return task

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        patient: str | None = None,
        principal: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Task], str | None]:
        """Newest first; ``cursor`` continues where the previous page ended."""
        limit = max(1, min(limit, MAX_PAGE))
        query = sa.select(*_LIST_COLUMNS)
        if status:
            query = query.where(tasks.c.status == status)
        if patient:
            query = query.where(tasks.c.patient == patient)
        if principal:
            query = query.where(tasks.c.principal == principal)
        if since is not None:
            query = query.where(tasks.c.created_at >= since)
        if cursor:
            at, last_id = decode_cursor(cursor)
            query = query.where(
                sa.or_(
                    tasks.c.created_at < at,
                    sa.and_(tasks.c.created_at == at, tasks.c.id < last_id),
                )
            )
        query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit + 1)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).all()
            page = rows[:limit]
            pending: dict[str, list[Action]] = {}
            waiting = [r.id for r in page if r.status == "awaiting_approval"]
            if waiting:
                found = await conn.execute(
                    pending_actions.select().where(pending_actions.c.task_id.in_(waiting))
                )
                for a in found:
                    pending.setdefault(a.task_id, []).append(Action.of(a))
        out = [Task.of(r, pending.get(r.id, ())) for r in page]
        next_cursor = encode_cursor(out[-1]) if len(rows) > limit and out else None
        return out, next_cursor

    async def events(self, task_id: str, after: int = 0, limit: int = 500) -> list[StoredEvent]:
        return await self._read(lambda: self._events(task_id, after, limit))

    async def _events(self, task_id: str, after: int, limit: int) -> list[StoredEvent]:
        query = (
            sa.select(task_events.c.seq, task_events.c.kind, task_events.c.data)
            .where(task_events.c.task_id == task_id, task_events.c.seq > after)
            .order_by(task_events.c.seq)
            .limit(limit)
        )
        async with self._connect() as conn:
            return [StoredEvent(*row) for row in await conn.execute(query)]

    async def pending_count(self) -> int:
        query = sa.select(sa.func.count()).where(pending_actions.c.status == "pending")
        async with self._connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def cancel_requests(self, owner: str) -> list[str]:
        query = sa.select(tasks.c.id).where(
            tasks.c.owner == owner, tasks.c.status == "running", tasks.c.cancel_requested
        )
        async with self._connect() as conn:
            return [r[0] for r in await conn.execute(query)]

    # -- replicas ------------------------------------------------------------------------

    async def heartbeat(self, worker: str, host: str, pid: int) -> None:
        stamp = now()
        async with self._begin() as conn:
            changed = await conn.execute(
                workers.update().where(workers.c.id == worker).values(heartbeat_at=stamp)
            )
            if changed.rowcount == 0:
                await conn.execute(
                    workers.insert().values(
                        id=worker, host=host[:255], pid=pid, started_at=stamp, heartbeat_at=stamp
                    )
                )

    async def interrupt_orphans(self, lease_seconds: float) -> int:
        """Running tasks whose replica has been silent longer than the lease: ``interrupted``."""
        stamp = now()
        alive = sa.select(workers.c.id).where(
            workers.c.heartbeat_at >= stamp - timedelta(seconds=lease_seconds)
        )
        async with self._begin() as conn:
            changed = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.status == "running",
                    sa.or_(tasks.c.owner.is_(None), tasks.c.owner.not_in(alive)),
                )
                .values(
                    status="interrupted",
                    reason=(
                        "the agent running this task stopped (no heartbeat for "
                        f"{lease_seconds:g} s); it was not re-run"
                    ),
                    finished_at=stamp,
                    updated_at=stamp,
                    owner=None,
                )
            )
            await conn.execute(
                workers.delete().where(
                    workers.c.heartbeat_at < stamp - timedelta(seconds=10 * lease_seconds)
                )
            )
        return int(changed.rowcount)

    async def interrupt_owned(self, worker: str, reason: str) -> int:
        """On shutdown: this replica's running tasks become ``interrupted``; it leaves."""
        stamp = now()
        await self.flush()
        async with self._begin() as conn:
            changed = await conn.execute(
                tasks.update()
                .where(tasks.c.owner == worker, tasks.c.status == "running")
                .values(
                    status="interrupted",
                    reason=reason,
                    finished_at=stamp,
                    updated_at=stamp,
                    owner=None,
                )
            )
            await conn.execute(workers.delete().where(workers.c.id == worker))
        return int(changed.rowcount)

    # -- retention -----------------------------------------------------------------------

    async def prune(self, *, days: float, max_tasks: int, batch: int = 500) -> int:
        """Delete finished/interrupted/cancelled tasks older than ``days`` or beyond the
        newest ``max_tasks`` (0 turns either rule off). Waiting and running tasks stay."""
        cutoff: datetime | None = now() - timedelta(days=days) if days > 0 else None
        async with self._connect() as conn:
            if max_tasks > 0:
                nth = (
                    await conn.execute(
                        sa.select(tasks.c.created_at)
                        .order_by(tasks.c.created_at.desc())
                        .offset(max_tasks - 1)
                        .limit(1)
                    )
                ).scalar()
                nth = as_utc(nth)
                if nth is not None and (cutoff is None or nth > cutoff):
                    cutoff = nth
        if cutoff is None:
            return 0
        removed = 0
        while True:
            async with self._begin() as conn:
                ids = [
                    r[0]
                    for r in await conn.execute(
                        sa.select(tasks.c.id)
                        .where(tasks.c.created_at < cutoff, tasks.c.status.in_(TERMINAL))
                        .limit(batch)
                    )
                ]
                if not ids:
                    return removed
                await conn.execute(task_events.delete().where(task_events.c.task_id.in_(ids)))
                await conn.execute(
                    pending_actions.delete().where(pending_actions.c.task_id.in_(ids))
                )
                await conn.execute(tasks.delete().where(tasks.c.id.in_(ids)))
                removed += len(ids)


__all__ = [
    "STATUSES",
    "TERMINAL",
    "Action",
    "Claimed",
    "DecisionError",
    "RunStore",
    "StoredEvent",
    "Task",
    "canonical",
    "decode_cursor",
    "encode_cursor",
    "sha256",
]
