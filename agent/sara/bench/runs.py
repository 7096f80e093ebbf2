"""Run folders in one shape for comparisons: Sara's, the published harness's, packaged figures.

A folder is read as

- **Sara's** when it has ``trajectories.jsonl``: the committed records (``results.load``), the
  counts recomputed from them, tokens and times from ``summary.json``;
- **published** otherwise (``runs.jsonl`` + ``summary.json`` as the published harness writes
  them): totals, statuses and per-type counts exactly as ``summary.json`` states them (the
  published tables are made from these), per-task records from ``runs.jsonl`` — one line per
  task as a rule; a file two sessions appended to at once is read as the summary's session
  (:func:`sara.bench.sessions.summary_session`), else the last line per task, and
  :attr:`RunData.reading` says which.

:func:`packaged` gives the 15 published models from the figures shipped with Sara (no per-task
records: paired tests need the folders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sara.bench import grader, published, results, sessions, summary
from sara.common.errors import UserError

TASKS = tuple(f"task{k}" for k in grader.TASK_TYPES)
#: Total parameters (billions) of published models whose id does not say it.
KNOWN_SIZES = {"meta-llama/llama-4-scout": 109.0, "meta-llama/llama-4-maverick": 400.0}
_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z])")


@dataclass
class RunData:
    folder: str
    model: str
    label: str
    source: str  # "sara" | "published" | "packaged"
    total: int
    correct: int
    completed: int
    invalid_action: int
    limit_reached: int
    context_limit: int
    error: int
    elapsed_seconds: float
    by_type: dict[str, tuple[int, int]]  # task type → (correct, total)
    tasks: dict[str, bool] = field(default_factory=dict)  # task id → correct
    reading: str = ""
    protocol: str = ""
    strict_correct: int | None = None
    prompt_tokens_per_task: float | None = None
    completion_tokens_per_task: float | None = None
    seconds_per_task: float | None = None
    size_b: float | None = None

    @property
    def accuracy(self) -> float:
        return summary.percent(self.correct, self.total)


def model_size(model: str) -> float | None:
    """Billions of parameters, when the model id says (``…-8b-…``) or the model is known."""
    if model in KNOWN_SIZES:
        return KNOWN_SIZES[model]
    found = _SIZE.findall(model.split("/")[-1])
    return float(found[-1]) if found else None


def label_of(model: str, given: str | None = None) -> str:
    if given:
        return given
    return published.display_names().get(model, model)


def load(folder: Path) -> RunData:
    if not (folder / summary.SUMMARY).is_file():
        raise UserError(f"{folder} has no {summary.SUMMARY}: not a run folder")
    found = summary.read(folder) or {}
    if (folder / results.TRAJECTORIES).is_file():
        return _sara(folder, found)
    if not (folder / results.RUNS).is_file():
        raise UserError(f"{folder} has no {results.RUNS}: not a run folder")
    return _published(folder, found)


def _sara(folder: Path, found: dict[str, Any]) -> RunData:
    records = results.load(folder)
    if not records:
        raise UserError(f"{folder} holds no graded tasks")
    counted = summary.summarize(
        records, model=str(found.get("model", folder.name)), elapsed_seconds=0
    )
    breakdown = counted["task_breakdown"]
    model = str(found.get("model", folder.name))
    return RunData(
        folder=folder.name,
        model=model,
        label=label_of(model, found.get("label")),
        source="sara",
        total=counted["total"],
        correct=counted["correct"],
        completed=counted["completed"],
        invalid_action=counted["invalid_action"],
        limit_reached=counted["limit_reached"],
        context_limit=counted["context_limit"],
        error=counted["error"],
        elapsed_seconds=float(found.get("elapsed_seconds", 0.0)),
        by_type={t: (c["correct"], c["total"]) for t, c in breakdown.items()},
        tasks={str(r["task_id"]): bool(r["correct"]) for r in records},
        reading="one committed record per task",
        protocol=str(found.get("protocol", "medagentbench")),
        strict_correct=counted["strict_correct"],
        prompt_tokens_per_task=counted["prompt_tokens_per_task"],
        completion_tokens_per_task=counted["completion_tokens_per_task"],
        seconds_per_task=counted["seconds_per_task"],
        size_b=_float(found.get("size_b")) or model_size(model),
    )


def _published(folder: Path, found: dict[str, Any]) -> RunData:
    lines = [r for r in results.read_jsonl(folder / results.RUNS) if "task_id" in r]
    by_id: dict[str, dict[str, Any]] = {}
    for line in lines:
        by_id[str(line["task_id"])] = line  # the last line per task
    reading = "one line per task"
    chosen = list(by_id.values())
    if len(lines) != len(by_id):
        session = sessions.summary_session(lines, found)
        if session is not None:
            chosen = session
            reading = (
                f"{len(lines)} lines for {len(by_id)} tasks (two sessions interleaved): "
                "the summary's session, reconstructed"
            )
        else:
            reading = f"{len(lines)} lines for {len(by_id)} tasks: the last line per task"
    model = str(found.get("model", folder.name))
    breakdown = found.get("task_breakdown") or {}
    return RunData(
        folder=folder.name,
        model=model,
        label=label_of(model, found.get("label")),
        source="published",
        total=int(found.get("total", len(chosen))),
        correct=int(found.get("correct", 0)),
        completed=int(found.get("completed", 0)),
        invalid_action=int(found.get("invalid_action", 0)),
        limit_reached=int(found.get("limit_reached", 0)),
        context_limit=int(found.get("context_limit", 0)),
        error=int(found.get("error", 0)),
        elapsed_seconds=float(found.get("elapsed_seconds", 0.0)),
        by_type={
            t: (int(c.get("correct", 0)), int(c.get("total", 0)))
            for t, c in breakdown.items()
            if isinstance(c, dict)
        },
        tasks={str(r["task_id"]): r.get("correct") is True for r in chosen},
        reading=reading,
        protocol=str(found.get("protocol", "sara-leaderboard")),
        size_b=model_size(model),
    )


def packaged() -> list[RunData]:
    """The 15 published models from Sara's packaged figures (totals and per-type counts)."""
    rows = []
    for p in published.models():
        rows.append(
            RunData(
                folder=p.folder or p.model,
                model=p.id or p.model,
                label=p.model,
                source="packaged",
                total=p.total,
                correct=p.correct,
                completed=p.completed,
                invalid_action=p.invalid_action,
                limit_reached=p.limit_reached,
                context_limit=p.context_limit,
                error=p.error,
                elapsed_seconds=p.elapsed_seconds or p.time_minutes * 60,
                by_type={t: (c[0], c[1]) for t, c in p.task_counts.items()},
                reading="packaged figures: no per-task records",
                protocol="sara-leaderboard",
                size_b=model_size(p.id or p.model),
            )
        )
    return rows


def published_folders(root: Path) -> list[Path]:
    """The run folders under a published-runs directory (each with a summary.json), by name."""
    if not root.is_dir():
        raise UserError(f"--published {root} is not a directory")
    found = sorted(d for d in root.iterdir() if (d / summary.SUMMARY).is_file())
    if not found:
        raise UserError(f"--published {root} holds no run folders (subfolders with summary.json)")
    return found


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
