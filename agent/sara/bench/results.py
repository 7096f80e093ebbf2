"""The output directory: ``runs.jsonl`` + ``trajectories.jsonl``, appended per task, resumable.

``runs.jsonl`` has one line per graded task in the format published MedAgentBench leaderboards
use (``index, task_id, status, correct, result, num_turns, time``); ``trajectories.jsonl`` holds
the full record (task, history, both verdicts, tokens, latencies). For each task the trajectory
line is written and flushed first and the runs line last: the runs line is the commit mark.
A crash between the two, or in the middle of a line, leaves a trajectory (or a torn line) with no
runs line; :meth:`Store.open` drops those on resume, so every task is recorded exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sara.common.errors import UserError

RUNS = "runs.jsonl"
TRAJECTORIES = "trajectories.jsonl"
RUN_KEYS = ("index", "task_id", "status", "correct", "result", "num_turns", "time")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Complete JSON-object lines of ``path``; a torn or garbled line is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return  # torn last line: the writer died mid-line
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


def _rewrite(path: Path, items: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def run_line(trajectory: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard line of a trajectory record. ``num_turns`` counts the model's answers in
    the history, as the published harness does (a call that failed is no turn)."""
    history = trajectory.get("history")
    turns = (
        sum(1 for m in history if isinstance(m, dict) and m.get("role") == "agent")
        if isinstance(history, list)
        else trajectory["rounds"]
    )
    return {
        "index": trajectory["index"],
        "task_id": trajectory["task_id"],
        "status": trajectory["status"],
        "correct": trajectory["correct"],
        "result": trajectory["result"],
        "num_turns": turns,
        "time": trajectory["finished_at"],
    }


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class Store:
    """Append-only writer over an output directory; use :meth:`open`."""

    def __init__(self, out: Path, records: list[dict[str, Any]]) -> None:
        self.out = out
        self._records = records
        self._done = {r["task_id"] for r in records}
        self._runs: IO[str] = (out / RUNS).open("a", encoding="utf-8")
        self._traj: IO[str] = (out / TRAJECTORIES).open("a", encoding="utf-8")

    @classmethod
    def open(cls, out: Path, *, resume: bool, retry_errors: bool = False) -> Store:
        """Open ``out`` for writing; on resume keep exactly the committed records (minus those
        that ended in ``task error`` when ``retry_errors``). Resuming an empty directory starts
        afresh, so a restarted pod can always pass ``--resume``."""
        out.mkdir(parents=True, exist_ok=True)
        runs_path, traj_path = out / RUNS, out / TRAJECTORIES
        has_results = runs_path.exists() and runs_path.stat().st_size > 0
        if has_results and not resume:
            raise UserError(f"{out} already holds results: pass --resume, or choose another --out")
        records = load(out) if resume and runs_path.exists() else []
        if retry_errors:
            records = [r for r in records if r["status"] != "task error"]
        if resume:
            _rewrite(runs_path, [run_line(r) for r in records])
            _rewrite(traj_path, records)
        else:
            for path in (runs_path, traj_path):
                path.unlink(missing_ok=True)
        return cls(out, records)

    @property
    def done(self) -> set[str]:
        return set(self._done)

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self._records)

    def append(self, trajectory: dict[str, Any]) -> None:
        """Record one graded task (trajectory first, then its runs line); once per task id."""
        if trajectory["task_id"] in self._done:
            raise ValueError(f"task {trajectory['task_id']} is already recorded")
        self._traj.write(json.dumps(trajectory, ensure_ascii=False) + "\n")
        self._traj.flush()
        self._runs.write(json.dumps(run_line(trajectory), ensure_ascii=False) + "\n")
        self._runs.flush()
        os.fsync(self._runs.fileno())
        self._done.add(trajectory["task_id"])
        self._records.append(trajectory)

    def close(self) -> None:
        self._runs.close()
        self._traj.close()


def load(out: Path) -> list[dict[str, Any]]:
    """The committed trajectory records of ``out``: those whose runs line exists, once each."""
    if not (out / RUNS).exists():
        raise UserError(f"{out} holds no {RUNS}")
    committed = {r["task_id"] for r in read_jsonl(out / RUNS) if "task_id" in r}
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in read_jsonl(out / TRAJECTORIES):
        task_id = str(record.get("task_id"))
        if task_id in committed and task_id not in seen:
            seen.add(task_id)
            records.append(record)
    return records


def merge(dirs: list[Path], out: Path) -> list[dict[str, Any]]:
    """Combine shard directories into ``out`` (ordered by index); shards must not overlap."""
    if out.resolve() in {d.resolve() for d in dirs}:
        raise UserError("merge --out must be a new directory, not one of the shards")
    combined: dict[str, dict[str, Any]] = {}
    for directory in dirs:
        for record in load(directory):
            if record["task_id"] in combined:
                raise UserError(f"shards overlap: {record['task_id']} is in more than one of them")
            combined[record["task_id"]] = record
    records = sorted(combined.values(), key=lambda r: (r["index"], r["task_id"]))
    out.mkdir(parents=True, exist_ok=True)
    if (out / RUNS).exists() and (out / RUNS).stat().st_size:
        raise UserError(f"{out} already holds results")
    _rewrite(out / TRAJECTORIES, records)
    _rewrite(out / RUNS, [run_line(r) for r in records])
    return records
