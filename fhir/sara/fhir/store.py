"""SQLite storage: one file in WAL mode, resources as pre-rendered text, search index tables.

Tables (``rid`` is the load-order key HAPI's unsorted searches follow):

    res(rid, type, id, pat, version, updated, chash, body)   UNIQUE(type, id)
    tok(param, pat, sys, val, rid)      token and non-compartment reference values
    str(param, pat, norm, exact, rid)   string values (normalized and as written)
    dt(param, pat, lo, hi, rid)         date ranges in epoch milliseconds
    sp(id, key)                         search parameter keys ``Type.name`` → small ints

Every write (one resource, a transaction Bundle, a chunk of a bulk load) is one SQLite
transaction: a crash loses nothing committed and leaves nothing half-written. The store is
used from one thread (the server's event loop, or the loading command).
"""

from __future__ import annotations

import sqlite3
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sara.fhir.resource import Prepared

#: Secondary indexes: dropped while an empty store is bulk-loaded, rebuilt in one pass after.
#: SQLite VM steps between two looks at the clock during a query with a timeout (~1 ms apart)
PROGRESS_STEPS = 10_000


class QueryInterrupted(Exception):
    """A query ran past its timeout and was interrupted."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"query interrupted after {seconds} s")
        self.seconds = seconds


_INDEXES = {
    "res_pat": "res(type, pat)",
    "tok_val": "tok(param, val)",
    "tok_pat": "tok(param, pat, val)",
    "tok_rid": "tok(rid)",
    "str_norm": "str(param, norm)",
    "str_rid": "str(rid)",
    "dt_lo": "dt(param, pat, lo)",
    "dt_rid": "dt(rid, param)",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS res (
  rid INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, pat TEXT,
  version INTEGER NOT NULL, updated TEXT NOT NULL, chash BLOB NOT NULL, body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS res_id ON res(type, id);
CREATE TABLE IF NOT EXISTS tok (param INTEGER, pat TEXT, sys TEXT, val TEXT, rid INTEGER);
CREATE TABLE IF NOT EXISTS str (param INTEGER, pat TEXT, norm TEXT, exact TEXT, rid INTEGER);
CREATE TABLE IF NOT EXISTS dt (param INTEGER, pat TEXT, lo INTEGER, hi INTEGER, rid INTEGER);
CREATE TABLE IF NOT EXISTS sp (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Stored:
    rtype: str
    id: str
    version: int
    updated: str
    body: str


@dataclass(frozen=True, slots=True)
class Existing:
    rid: int
    version: int
    chash: bytes


class Store:
    """The SQLite file and the counters derived from it."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit reaches the disk before the client hears 201 (power loss included)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA cache_size=-262144")  # 256 MiB
        self.db.execute("PRAGMA mmap_size=4294967296")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.executescript(_SCHEMA)
        self.create_indexes()
        self.param_ids: dict[str, int] = dict(self.db.execute("SELECT key, id FROM sp"))
        self.next_rid = self._scalar("SELECT coalesce(max(rid), 0) + 1 FROM res")
        self.next_numeric_id = self._max_numeric_id() + 1

    def create_indexes(self) -> None:
        for name, target in _INDEXES.items():
            self.db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
        self.db.execute("PRAGMA synchronous=FULL")

    def drop_indexes(self) -> None:
        """For a bulk load into an empty store (a crash in between is repaired on open).

        Also skips fsyncs until :meth:`create_indexes`: a crash of the process loses nothing
        committed; only an OS crash during the initial seed could, and the seed is re-run then.
        """
        self.db.execute("PRAGMA synchronous=OFF")
        for name in _INDEXES:
            self.db.execute(f"DROP INDEX IF EXISTS {name}")

    def close(self) -> None:
        self.db.close()

    def _scalar(self, sql: str, *args: object) -> int:
        row = self.db.execute(sql, args).fetchone()
        return int(row[0] or 0)

    def _max_numeric_id(self) -> int:
        row = self.db.execute(
            "SELECT max(CAST(id AS INTEGER)) FROM res WHERE id NOT GLOB '*[^0-9]*' AND id != ''"
        ).fetchone()
        return int(row[0] or 0)

    # ---- reads -------------------------------------------------------------------------

    def count(self, rtype: str | None = None) -> int:
        if rtype is None:
            return self._scalar("SELECT count(*) FROM res")
        return self._scalar("SELECT count(*) FROM res WHERE type = ?", rtype)

    def read(self, rtype: str, rid: str) -> Stored | None:
        row = self.db.execute(
            "SELECT version, updated, body FROM res WHERE type = ? AND id = ?", (rtype, rid)
        ).fetchone()
        return None if row is None else Stored(rtype, rid, row[0], row[1], row[2])

    def rids(self, sql: str, args: Sequence[object], timeout: float = 0.0) -> array[int]:
        """The first column of every row, as a compact array (searches keep it for paging).

        With ``timeout`` (seconds) the query is interrupted once it runs longer (SQLite's
        progress handler, checked every few thousand VM steps): :class:`QueryInterrupted`."""
        if timeout <= 0:
            return array("q", (row[0] for row in self.db.execute(sql, args)))
        deadline = time.monotonic() + timeout
        self.db.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            return array("q", (row[0] for row in self.db.execute(sql, args)))
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryInterrupted(timeout) from None
            raise
        finally:
            self.db.set_progress_handler(None, 0)

    def bodies(self, rids: Sequence[int]) -> list[tuple[str, str, str]]:
        """(type, id, body) for each rid, in the order given."""
        found: dict[int, tuple[str, str, str]] = {}
        for start in range(0, len(rids), 30000):
            chunk = list(rids[start : start + 30000])
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT rid, type, id, body FROM res WHERE rid IN ({marks})",  # noqa: S608
                chunk,
            ):
                found[row[0]] = (row[1], row[2], row[3])
        return [found[r] for r in rids if r in found]

    def existing(self, rtype: str, ids: Sequence[str]) -> dict[str, Existing]:
        out: dict[str, Existing] = {}
        for start in range(0, len(ids), 30000):
            chunk = ids[start : start + 30000]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT id, rid, version, chash FROM res WHERE type = ? AND id IN ({marks})",  # noqa: S608
                [rtype, *chunk],
            ):
                out[row[0]] = Existing(row[1], row[2], row[3])
        return out

    # ---- writes ------------------------------------------------------------------------

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.param_ids = dict(self.db.execute("SELECT key, id FROM sp"))
        self.next_rid = self._scalar("SELECT coalesce(max(rid), 0) + 1 FROM res")

    def param_id(self, key: str) -> int:
        pid = self.param_ids.get(key)
        if pid is None:
            pid = len(self.param_ids) + 1
            while pid in self.param_ids.values():
                pid += 1
            self.db.execute("INSERT INTO sp(id, key) VALUES (?, ?)", (pid, key))
            self.param_ids[key] = pid
        return pid

    def claim_numeric_id(self) -> str:
        value = self.next_numeric_id
        self.next_numeric_id += 1
        return str(value)

    def note_id(self, rid: str) -> None:
        """Keep server-assigned numeric ids above any loaded numeric id."""
        if rid.isdigit() and int(rid) >= self.next_numeric_id:
            self.next_numeric_id = int(rid) + 1

    def put_many(self, items: Iterable[tuple[Prepared, Existing | None]]) -> None:
        """Insert new resources and replace existing ones (inside the caller's transaction)."""
        res_rows: list[tuple[object, ...]] = []
        replaced: list[tuple[int]] = []
        tok: list[tuple[object, ...]] = []
        strs: list[tuple[object, ...]] = []
        dts: list[tuple[object, ...]] = []
        pid = self.param_id
        for prep, old in items:
            if old is None:
                rid = self.next_rid
                self.next_rid += 1
            else:
                rid = old.rid
                replaced.append((rid,))
            res_rows.append(
                (
                    rid,
                    prep.rtype,
                    prep.id,
                    prep.pat,
                    prep.version,
                    prep.updated,
                    prep.chash,
                    prep.body,
                )
            )
            pat = prep.pat
            rows = prep.rows
            tok.extend((pid(k), pat, s, v, rid) for k, s, v in rows.tokens)
            strs.extend((pid(k), pat, n, e, rid) for k, n, e in rows.strings)
            dts.extend((pid(k), pat, lo, hi, rid) for k, lo, hi in rows.dates)
        db = self.db
        if replaced:
            for table in ("tok", "str", "dt"):
                db.executemany(f"DELETE FROM {table} WHERE rid = ?", replaced)  # noqa: S608
        db.executemany("INSERT OR REPLACE INTO res VALUES (?, ?, ?, ?, ?, ?, ?, ?)", res_rows)
        db.executemany("INSERT INTO tok VALUES (?, ?, ?, ?, ?)", tok)
        db.executemany("INSERT INTO str VALUES (?, ?, ?, ?, ?)", strs)
        db.executemany("INSERT INTO dt VALUES (?, ?, ?, ?, ?)", dts)

    def delete(self, rid: int) -> None:
        for table in ("tok", "str", "dt", "res"):
            self.db.execute(f"DELETE FROM {table} WHERE rid = ?", (rid,))  # noqa: S608
