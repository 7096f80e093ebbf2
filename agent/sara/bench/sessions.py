"""One record per task out of a ``runs.jsonl`` that two harness sessions appended to at once.

Four published runs (Gemini 2.5 Flash, Gemini 3 Flash, Llama 4 Maverick, Llama 4 Scout) hold
two interleaved sessions: the published harness writes each task's line as it finishes, in index
order, and skips at start-up the indices already in the file; two sessions running at once on
one folder left two increasing sequences of indices mixed line by line. ``summary.json`` is the
last session's: its totals, statuses and per-type counts count only that session's tasks.

:func:`summary_session` reads the file the way the published numbers were made: it splits the
lines into two increasing chains — the summary's session taking, in index order, every task but
the ``skipped`` ones already in the file when it started — such that the summary's chain gives
exactly ``summary.json``'s per-type correct counts and statuses. Where several splits fit, one
is chosen deterministically (the first found, a line offered to the summary's session before
the other). ``None`` when no split fits, or a line has no integer ``index`` (the caller then
falls back to the last line per task and says so).

Pure: lists of dicts in, a list of dicts out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_STATUS = {"completed": 0, "agent invalid action": 1, "task limit reached": 2}
_STATUS_KEYS = ("completed", "invalid_action", "limit_reached")
TYPES = tuple(f"task{k}" for k in range(1, 11))
MAX_STATES = 200_000  # partial splits kept per line; beyond, the file is read another way


def _type(task_id: str) -> int:
    try:
        return TYPES.index(task_id.split("_")[0])
    except ValueError:
        return -1


def _target(summary: dict[str, Any]) -> tuple[int, ...] | None:
    breakdown = summary.get("task_breakdown")
    if not isinstance(breakdown, dict):
        return None
    try:
        counts = [int(breakdown.get(t, {}).get("correct", 0)) for t in TYPES]
        statuses = [int(summary.get(k, 0)) for k in _STATUS_KEYS]
        errors = int(summary.get("error", 0)) + int(summary.get("context_limit", 0))
    except (TypeError, ValueError, AttributeError):
        return None
    return (*counts, *statuses, errors)


def _vector(record: dict[str, Any]) -> tuple[int, ...]:
    vec = [0] * 14
    kind = _type(str(record.get("task_id", "")))
    if kind >= 0 and record.get("correct") is True:
        vec[kind] = 1
    vec[10 + _STATUS.get(str(record.get("status")), 3)] = 1
    return tuple(vec)


_Key = tuple[int, int, tuple[int, ...]]  # (position in the summary's chain, other's last, counts)


def summary_session(
    records: Sequence[dict[str, Any]], summary: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """The summary's session's records, in index order (see the module docstring)."""
    target = _target(summary)
    if target is None or not records:
        return None
    if not all(isinstance(r.get("index"), int) for r in records):
        return None
    skipped = int(summary.get("skipped", 0) or 0)
    indices = sorted({int(r["index"]) for r in records})
    seen: set[int] = set()
    for start in range(len(records) + 1):
        if len(seen) == skipped:
            found = _split(records, start, [i for i in indices if i not in seen], target)
            if found is not None:
                return found
        if start < len(records):
            seen.add(int(records[start]["index"]))
        if len(seen) > skipped:
            return None
    return None


def _split(
    records: Sequence[dict[str, Any]],
    start: int,
    sequence: list[int],
    target: tuple[int, ...],
) -> list[dict[str, Any]] | None:
    """Lines ``start:`` split into the summary's chain (``sequence`` in order) and another
    increasing chain that also holds every line before ``start``."""
    last_other = -1
    for record in records[:start]:
        if int(record["index"]) <= last_other:
            return None
        last_other = int(record["index"])
    # left[p][k]: tasks of type k in sequence[p:] — a chain that can no longer reach the
    # target's correct count of a type is dropped at once
    left = [[0] * 10 for _ in range(len(sequence) + 1)]
    kinds = {int(r["index"]): _type(str(r.get("task_id", ""))) for r in records}
    for position in range(len(sequence) - 1, -1, -1):
        left[position] = list(left[position + 1])
        kind = kinds.get(sequence[position], -1)
        if kind >= 0:
            left[position][kind] += 1
    layer: dict[_Key, object] = {(0, last_other, (0,) * 14): None}
    parents: list[dict[_Key, tuple[_Key, bool]]] = []
    for record in records[start:]:
        index, vec = int(record["index"]), _vector(record)
        following: dict[_Key, tuple[_Key, bool]] = {}
        for key in layer:  # insertion order: the same split every time
            position, other, counts = key
            if position < len(sequence) and index == sequence[position]:
                added = tuple(a + b for a, b in zip(counts, vec, strict=True))
                reachable = all(target[k] - added[k] <= left[position + 1][k] for k in range(10))
                if reachable and all(a <= b for a, b in zip(added, target, strict=True)):
                    following.setdefault((position + 1, other, added), (key, True))
            if index > other:
                following.setdefault((position, index, counts), (key, False))
        if not following or len(following) > MAX_STATES:
            return None
        parents.append(following)
        layer = dict.fromkeys(following)
    final = next((k for k in layer if k[0] == len(sequence) and k[2] == target), None)
    if final is None:
        return None
    chosen: list[dict[str, Any]] = []
    key = final
    for offset in range(len(parents) - 1, -1, -1):
        key, took = parents[offset][key]
        if took:
            chosen.append(records[start + offset])
    chosen.reverse()
    return chosen
