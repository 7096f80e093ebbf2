"""Store URLs, engines and schema migrations (Alembic, applied at start-up).

``sqlite:///var/runs.db`` and ``postgresql://user:pass@host:5432/db`` (the forms operators write)
become SQLAlchemy's async drivers, ``sqlite+aiosqlite`` and ``postgresql+asyncpg``. Migrations run
under a PostgreSQL advisory lock, so replicas starting together migrate once; SQLite serialises
writers on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sara.agent.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x5A7A_0001  # pg_advisory_xact_lock key of the migration step
DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def engine_url(url: str) -> sa.URL:
    """The async SQLAlchemy URL for a store URL, or ConfigError naming the accepted forms."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        parsed = None
    backend = parsed.get_backend_name() if parsed is not None else ""
    backend = "postgresql" if backend == "postgres" else backend
    if parsed is None or backend not in DRIVERS:
        raise ConfigError(
            f"unusable run store URL {safe_url(url)!r}: use sqlite:///path/runs.db or "
            "postgresql://user:password@host:5432/database"
        )
    return parsed.set(drivername=DRIVERS[backend])


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable>"


def create_engine(url: str) -> AsyncEngine:
    target = engine_url(url)
    options: dict[str, Any] = {}
    if target.get_backend_name() == "sqlite":
        database = target.database or ""
        if database in ("", ":memory:"):
            # one connection cannot carry the writer's and the readers' transactions at once
            raise ConfigError("the run store needs a file: sqlite:///path/runs.db")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 30}
    else:
        options.update(pool_size=10, max_overflow=20, pool_pre_ping=True, pool_recycle=1800)
    engine = create_async_engine(target, **options)
    if target.get_backend_name() == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; NORMAL: a commit survives a process crash (an OS
    # crash may lose the last commits); busy_timeout: a second writer waits instead of failing.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine) -> str:
    """Apply every pending revision; returns the revision the store is now at."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        await conn.run_sync(lambda c: command.upgrade(_config(c), "head"))
        return await conn.run_sync(_current)


async def current(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _current(connection: sa.Connection) -> str:
    return MigrationContext.configure(connection).get_current_revision() or ""


def head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head() or ""
