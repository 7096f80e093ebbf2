"""``--postgres`` for the run-store benchmarks: a server's URL as given, or ``auto``.

``auto`` starts a throw-away PostgreSQL server on 127.0.0.1 with ``tests/support/postgres.py``
(binaries from ``SARA_PG_BIN``, ``pg_config`` or ``/usr/lib/postgresql/*/bin``; as root it runs as
the ``postgres`` user). That server is tuned for tests — ``fsync``, ``synchronous_commit`` and
``full_page_writes`` off — so its commits are cheaper than a production server's.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent.parent / "tests" / "support"


@contextlib.contextmanager
def postgres_url(arg: str | None, database: str) -> Iterator[str | None]:
    """None without ``--postgres``; the URL given; or a fresh database on a throw-away server."""
    if not arg:
        yield None
        return
    if arg != "auto":
        yield arg
        return
    sys.path.insert(0, str(SUPPORT))
    from postgres import PostgresServer  # tests/support/postgres.py

    with PostgresServer() as server:
        yield server.create_database(database)


def describe(arg: str | None) -> str:
    if arg == "auto":
        return "throw-away local server, fsync off"
    return "as given"
