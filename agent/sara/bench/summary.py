"""``summary.json``: the published leaderboards' summary, plus the strict score and tokens.

Keys as in published MedAgentBench runs (``model, total, completed, correct, invalid_action,
limit_reached, context_limit, error, task_breakdown, elapsed_seconds, accuracy`` — accuracy in
percent), then Sara's additions: ``strict_correct``, ``strict_accuracy``, ``tokens`` and
``ungraded`` (tasks of the set with no record yet), ``protocol`` (``label``, ``size_b`` when
given), and
per task means: ``prompt_tokens_per_task`` and ``completion_tokens_per_task`` (the model's own
usage counts, summed over the task's calls), ``prompt_chars_per_task`` and
``prompt_bytes_per_task`` (the conversation as sent before each answered call: characters and
UTF-8 bytes, whatever the model's tokenizer), ``seconds_per_task`` (wall time of a task).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sara.bench import grader

SUMMARY = "summary.json"
_STATUS_KEYS = {
    "completed": "completed",
    "agent invalid action": "invalid_action",
    "task limit reached": "limit_reached",
    "agent context limit": "context_limit",
    "task error": "error",
}


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def summarize(
    records: Iterable[dict[str, Any]],
    *,
    model: str,
    elapsed_seconds: float,
    expected: int | None = None,
    protocol: str | None = None,
    label: str | None = None,
    size_b: float | None = None,
) -> dict[str, Any]:
    """Summary of graded trajectory records; ``expected`` = size of the selected task set."""
    rows = list(records)
    counts = dict.fromkeys(_STATUS_KEYS.values(), 0)
    breakdown: dict[str, dict[str, int]] = {}
    for kind in sorted({grader.task_type(r["task_id"]) for r in rows}):
        breakdown[f"task{kind}"] = {"total": 0, "correct": 0, "strict_correct": 0}
    tokens = {"prompt_tokens": 0, "completion_tokens": 0}
    for row in rows:
        counts[_STATUS_KEYS.get(row["status"], "error")] += 1
        cell = breakdown[f"task{grader.task_type(row['task_id'])}"]
        cell["total"] += 1
        cell["correct"] += bool(row["correct"])
        cell["strict_correct"] += bool(row.get("strict_correct"))
        for key in tokens:
            tokens[key] += int(row.get("usage", {}).get(key, 0))
    correct = sum(bool(r["correct"]) for r in rows)
    strict = sum(bool(r.get("strict_correct")) for r in rows)
    total = len(rows)
    sent = [prompt_size(r.get("history")) for r in rows]
    extra: dict[str, Any] = {"protocol": protocol} if protocol else {}
    if label:
        extra["label"] = label
    if size_b is not None:
        extra["size_b"] = size_b
    return {
        "model": model,
        "total": total,
        **{"completed": counts["completed"], "correct": correct},
        **{key: counts[key] for key in ("invalid_action", "limit_reached", "context_limit")},
        "error": counts["error"],
        "task_breakdown": breakdown,
        "elapsed_seconds": round(elapsed_seconds, 3),
        "accuracy": percent(correct, total),
        "strict_correct": strict,
        "strict_accuracy": percent(strict, total),
        "tokens": tokens,
        "ungraded": max(0, (expected or total) - total),
        **extra,
        "prompt_tokens_per_task": _mean(tokens["prompt_tokens"], total),
        "completion_tokens_per_task": _mean(tokens["completion_tokens"], total),
        "prompt_chars_per_task": _mean(sum(c for c, _ in sent), total),
        "prompt_bytes_per_task": _mean(sum(b for _, b in sent), total),
        "seconds_per_task": _mean(sum(float(r.get("elapsed_seconds", 0.0)) for r in rows), total),
    }


def _mean(value: float, count: int) -> float:
    return round(value / count, 3) if count else 0.0


def prompt_size(history: Any) -> tuple[int, int]:
    """Characters and UTF-8 bytes of the conversation sent before each answer in ``history``."""
    if not isinstance(history, list):
        return 0, 0
    chars = size = sent_chars = sent_bytes = 0
    for message in history:
        if not isinstance(message, dict):
            continue
        content = str(message.get("content", ""))
        if message.get("role") == "agent":
            sent_chars += chars
            sent_bytes += size
        chars += len(content)
        size += len(content.encode("utf-8", "surrogatepass"))
    return sent_chars, sent_bytes


def write(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read(out: Path) -> dict[str, Any] | None:
    path = out / SUMMARY
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None
