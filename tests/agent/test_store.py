"""The run store's one test suite, run against SQLite and against a real PostgreSQL server.

PostgreSQL is started by the test set-up (tests/support/postgres.py); each test gets its own
database, so the suite is the same on both backends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sara.agent.errors import ConfigError
from sara.agent.store import migrate
from sara.agent.store.runs import DecisionError, RunStore, canonical, decode_cursor, sha256
from sara.agent.store.schema import tasks as tasks_table

_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/runs.db"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"runs_{next(_counter)}_{id(tmp_path) % 100000}")
    opened = await RunStore.open(url, event_max_bytes=8192)
    try:
        yield opened
    finally:
        await opened.close()


async def start(store: RunStore, task_id: str, **kw: Any) -> None:
    args: dict[str, Any] = {
        "task_id": task_id,
        "principal": "dr-a",
        "instruction": "check magnesium",
        "context": "",
        "settings": {"write_mode": "approve"},
        "patient": "S1",
        "owner": "w1",
    }
    await store.start(**{**args, **kw})


def action(task_id: str, action_id: str, *, ttl: float = 600) -> dict[str, Any]:
    body = canonical({"resourceType": "MedicationRequest", "subject": {"reference": "Patient/S1"}})
    now = datetime.now(UTC)
    return {
        "id": action_id,
        "task_id": task_id,
        "round": 2,
        "method": "POST",
        "url": "MedicationRequest",
        "resource_type": "MedicationRequest",
        "patient": "S1",
        "summary": "MedicationRequest: magnesium",
        "payload": body,
        "payload_sha256": sha256(body),
        "created_at": now,
        "expires_at": now + timedelta(seconds=ttl),
    }


async def test_migrations_reach_head_and_are_idempotent(store: RunStore) -> None:
    assert await migrate.current(store.engine) == migrate.head() == "0002"
    assert await migrate.upgrade(store.engine) == "0002"


async def test_the_schema_alembic_builds_is_the_one_schema_py_describes(store: RunStore) -> None:
    """Revisions and ``schema.py`` may not drift: Alembic's own comparison finds nothing."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sara.agent.store.schema import metadata

    def diff(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(connection)
        return [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]

    async with store.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_events_are_numbered_durable_and_bounded(store: RunStore) -> None:
    await start(store, "t1")
    frames = [(i, "round_started", f'{{"round":{i}}}') for i in range(1, 4)]
    await store.record("t1", frames, {"rounds": 3})
    big = store.encode({"type": "model_output", "text": "x" * 100_000})
    assert len(big) <= 8192 and '"truncated":true' in big and "characters cut" in big
    await store.record("t1", [(4, "model_output", big)])
    got = await store.events("t1")
    assert [e.seq for e in got] == [1, 2, 3, 4]
    assert [e.seq for e in await store.events("t1", after=2)] == [3, 4]
    task = await store.get("t1")
    assert task is not None and task.last_seq == 4 and task.rounds == 3
    assert task.status == "running" and task.created_at.tzinfo is not None


async def test_group_commit_many_writers(store: RunStore) -> None:
    for n in range(20):
        await start(store, f"g{n}")
    futures = [
        store.record(f"g{n}", [(s, "round_started", "{}")]) for s in range(1, 6) for n in range(20)
    ]
    await asyncio.gather(*futures)
    for n in range(20):
        assert [e.seq for e in await store.events(f"g{n}")] == [1, 2, 3, 4, 5]


async def test_pause_decide_once_with_the_exact_hash(store: RunStore) -> None:
    await start(store, "t1")
    await start(store, "t2")
    act = action("t1", "a1")
    await store.pause("t1", [(1, "approval_requested", "{}")], act, '{"rounds": 2}', 2)
    waiting = await store.get("t1")
    assert waiting is not None and waiting.status == "awaiting_approval"
    assert waiting.owner is None and [a.status for a in waiting.actions] == ["pending"]
    assert await store.pending_count() == 1

    async def decide(**kw: Any) -> Any:
        args = {
            "decision": "approved",
            "payload_sha256": act["payload_sha256"],
            "by": "dr-b",
            "reason": None,
            "owner": "w2",
        }
        return await store.decide(kw.pop("task", "t1"), kw.pop("action", "a1"), **{**args, **kw})

    with pytest.raises(DecisionError) as wrong:
        await decide(payload_sha256="0" * 64)
    assert wrong.value.code == "mismatch"
    with pytest.raises(DecisionError) as elsewhere:
        await decide(task="t2")
    assert elsewhere.value.code == "not_found"
    with pytest.raises(DecisionError) as missing:
        await decide(action="nope")
    assert missing.value.code == "not_found"
    claimed = await decide()
    assert claimed.action.status == "approved" and claimed.action.decided_by == "dr-b"
    assert claimed.task.status == "running" and claimed.task.owner == "w2"
    assert claimed.task.checkpoint == '{"rounds": 2}'
    with pytest.raises(DecisionError) as twice:
        await decide(decision="denied")
    assert twice.value.code == "decided" and "dr-b" in twice.value.message
    await store.written("a1", status=201, outcome="ok", ref="MedicationRequest/7")
    task = await store.get("t1")
    assert task is not None and task.actions[0].written_ref == "MedicationRequest/7"
    assert await store.pending_count() == 0


async def test_two_deciders_race_one_wins(store: RunStore) -> None:
    await start(store, "t1")
    act = action("t1", "a1")
    await store.pause("t1", [], act, "{}", 1)
    results = await asyncio.gather(
        *(
            store.decide(
                "t1",
                "a1",
                decision=d,
                payload_sha256=act["payload_sha256"],
                by=f"dr-{d}",
                reason=None,
                owner="w",
            )
            for d in ("approved", "denied", "approved", "denied")
        ),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, DecisionError)]
    assert len(won) == 1 and len(lost) == 3 and {e.code for e in lost} == {"decided"}


async def test_expiry_claims_each_action_once(store: RunStore) -> None:
    await start(store, "t1")
    act = action("t1", "a1", ttl=-1)  # already overdue
    await store.pause("t1", [], act, "{}", 1)
    with pytest.raises(DecisionError) as late:
        await store.decide(
            "t1", "a1", decision="approved", payload_sha256=act["payload_sha256"],
            by="dr", reason=None, owner="w",
        )  # fmt: skip
    assert late.value.code == "expired"
    first, second = await asyncio.gather(store.expire_due("w1"), store.expire_due("w2"))
    claimed = first + second
    assert len(claimed) == 1 and claimed[0].action.status == "expired"
    assert claimed[0].task.status == "running"


async def test_cancel_waiting_and_cancel_requests(store: RunStore) -> None:
    await start(store, "t1")
    await store.pause("t1", [], action("t1", "a1"), "{}", 1)
    assert await store.cancel_waiting("t1", "cancelled by dr-a")
    task = await store.get("t1")
    assert task is not None and task.status == "cancelled" and task.reason == "cancelled by dr-a"
    assert [a.status for a in task.actions] == ["cancelled"]
    assert not await store.cancel_waiting("t1", "again")
    await start(store, "t2", owner="w9")
    assert await store.request_cancel("t2")
    assert await store.cancel_requests("w9") == ["t2"]
    assert not await store.request_cancel("t1")  # not running


async def test_silent_replicas_tasks_are_interrupted(store: RunStore) -> None:
    await store.heartbeat("alive", "h", 1)
    await start(store, "mine", owner="alive")
    await start(store, "orphan", owner="dead")
    await start(store, "waiting", owner="dead")
    await store.pause("waiting", [], action("waiting", "a1"), "{}", 1)
    assert await store.interrupt_orphans(lease_seconds=30) == 1
    orphan = await store.get("orphan")
    assert orphan is not None and orphan.status == "interrupted"
    assert orphan.reason is not None and "not re-run" in orphan.reason
    assert (await store.get("mine")).status == "running"  # type: ignore[union-attr]
    assert (await store.get("waiting")).status == "awaiting_approval"  # type: ignore[union-attr]
    assert await store.interrupt_owned("alive", "shut down") == 1
    assert (await store.get("mine")).status == "interrupted"  # type: ignore[union-attr]


async def test_history_filters_and_cursor_pages(store: RunStore) -> None:
    for n in range(25):
        await start(
            store,
            f"t{n:02d}",
            principal="dr-a" if n % 2 else "dr-b",
            patient=f"S{n % 3}",
        )
    await store.record("t03", update={"status": "finished"})
    await store.flush()
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await store.list_tasks(limit=10, cursor=cursor)
        seen += [t.id for t in page]
        if cursor is None:
            break
    assert seen == [f"t{n:02d}" for n in reversed(range(25))]  # newest first, each once
    mine, _ = await store.list_tasks(principal="dr-a", patient="S0", limit=50)
    assert [t.id for t in mine] == [f"t{n:02d}" for n in reversed(range(25)) if n % 6 == 3]
    done, _ = await store.list_tasks(status="finished")
    assert [t.id for t in done] == ["t03"]
    future, _ = await store.list_tasks(since=datetime.now(UTC) + timedelta(hours=1))
    assert future == []
    with pytest.raises(ValueError):
        decode_cursor("not-a-cursor")


async def test_retention_by_age_and_count_spares_open_tasks(store: RunStore) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    for n in range(6):
        await start(store, f"t{n}")
        await store.record(f"t{n}", [(1, "finished", "{}")], {"status": "finished"})
    await start(store, "running-old")
    await store.flush()
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.update(tasks_table)
            .where(tasks_table.c.id.in_(["t0", "t1", "running-old"]))
            .values(created_at=old)
        )
    assert await store.prune(days=30, max_tasks=0) == 2
    assert await store.get("t0") is None and await store.events("t0") == []
    assert await store.get("running-old") is not None
    assert await store.prune(days=0, max_tasks=2) == 2  # keeps the newest two, and open ones
    left = {t.id for t in (await store.list_tasks(limit=50))[0]}
    assert left == {"t4", "t5", "running-old"}


def test_store_urls() -> None:
    assert migrate.engine_url("sqlite:///var/x.db").drivername == "sqlite+aiosqlite"
    url = migrate.engine_url("postgresql://u:secret@h:5432/d")
    assert url.drivername == "postgresql+asyncpg"
    assert migrate.engine_url("postgres://u@h/d").drivername == "postgresql+asyncpg"
    assert "secret" not in migrate.safe_url("postgresql://u:secret@h:5432/d")
    for bad in ("mysql://h/d", "not a url", "sqlite:///:memory:"):
        with pytest.raises(ConfigError):
            migrate.create_engine(bad)
