"""The test PostgreSQL server (tests/support/postgres.py) is real and behaves like one.

Uses the session's ``postgres_server`` fixture; its own database keeps it apart from other tests.
"""

from __future__ import annotations

import asyncpg
import pytest
from postgres import PostgresServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture(scope="module")
def db_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database("support_test_postgres")


async def test_asyncpg_connects_to_a_real_server(postgres_server: PostgresServer) -> None:
    assert postgres_server.url.startswith("postgresql://postgres@127.0.0.1:")
    conn = await asyncpg.connect(postgres_server.url)
    try:
        version = await conn.fetchval("SELECT version()")
        assert version.startswith("PostgreSQL ")
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()


async def test_sqlalchemy_async_engine(db_url: str) -> None:
    engine = create_async_engine(db_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.begin() as conn:
            assert (
                (await conn.execute(text("SELECT version()")))
                .scalar_one()
                .startswith("PostgreSQL ")
            )
            await conn.execute(text("CREATE TABLE sa_probe (id int PRIMARY KEY, note text)"))
            await conn.execute(text("INSERT INTO sa_probe VALUES (1, 'via sqlalchemy')"))
        async with engine.connect() as conn:
            note = (await conn.execute(text("SELECT note FROM sa_probe WHERE id = 1"))).scalar()
            assert note == "via sqlalchemy"
    finally:
        await engine.dispose()


async def test_data_survives_a_restart(postgres_server: PostgresServer, db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("CREATE TABLE survivors (id int PRIMARY KEY, name text NOT NULL)")
        await conn.executemany("INSERT INTO survivors VALUES ($1, $2)", [(1, "alpha"), (2, "beta")])
    finally:
        await conn.close()
    port = postgres_server.port

    postgres_server.restart()

    assert postgres_server.port == port
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT id, name FROM survivors ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, "alpha"), (2, "beta")]
    finally:
        await conn.close()


async def test_a_connection_open_across_a_restart_is_broken(
    postgres_server: PostgresServer, db_url: str
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        postgres_server.restart()
        with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, OSError)):
            await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()
    conn = await asyncpg.connect(db_url)  # a new connection works again
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_create_database_gives_an_empty_separate_database(
    postgres_server: PostgresServer, db_url: str
) -> None:
    other = postgres_server.create_database("support_test_postgres_other")
    assert other == postgres_server.url_for("support_test_postgres_other")
    assert other != db_url
    conn = await asyncpg.connect(other)
    try:
        assert await conn.fetchval("SELECT current_database()") == "support_test_postgres_other"
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match="already exists"):
        postgres_server.create_database("support_test_postgres_other")
    with pytest.raises(ValueError):
        postgres_server.create_database('x"; DROP DATABASE postgres; --')
