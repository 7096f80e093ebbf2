"""``sara bench compare``: many runs, one table — the published analysis, rebuilt, plus statistics.

Pure tables from :class:`~sara.bench.runs.RunData` (:func:`tables`), written as CSV by
:func:`write`; plots in :mod:`sara.bench.compare_plots`. The five published tables come out with
the published columns and rules, so a rebuild from the published run folders alone gives the
published numbers:

leaderboard.csv               runs by accuracy; totals as each run's summary states them
task_accuracy_matrix.csv      task type x model, percent (1 decimal), plus the Overall row
model_rankings_per_task.csv   each model's place per task type ("1st", …)
task_rankings.csv             per task type the models in order, with their scores
task_difficulty.csv           task types, hardest first: mean and sample standard deviation of
                              the models' (rounded) percentages, hardest-for / easiest-for
task_analysis.csv             the matrix with "%" signs and a lower-case overall row

Rules taken from the published tables: per-type percentages are rounded to one decimal before
averaging or ranking; models with equal scores keep the order of their folder names (the
published runs' folders sorted), and so do "hardest for" / "easiest for" (the first minimum,
the first maximum). Task descriptions are the task types by content (the published report's
names are shuffled; see docs/bench.md).

Sara's additions: Wilson 95 % intervals per model (leaderboard) and per model and task type
(task_confidence.csv), exact McNemar tests between every two runs with per-task records
(paired_tests.csv), tokens and time per task where the run recorded them.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from sara.bench import report, stats
from sara.bench.runs import TASKS, RunData

DESCRIPTIONS = {
    "task1": "Patient MRN lookup by name and DOB",
    "task2": "Patient age",
    "task3": "Record blood pressure (POST Observation)",
    "task4": "Latest magnesium within 24 h",
    "task5": "Magnesium check + IV replacement order",
    "task6": "Average glucose over 24 h",
    "task7": "Latest glucose",
    "task8": "Orthopedic referral with SBAR note",
    "task9": "Potassium check + oral replacement + recheck",
    "task10": "Latest HbA1c; order one if stale or missing",
}
FILES = (
    "leaderboard.csv",
    "task_accuracy_matrix.csv",
    "model_rankings_per_task.csv",
    "task_rankings.csv",
    "task_difficulty.csv",
    "task_analysis.csv",
    "task_confidence.csv",
    "paired_tests.csv",
)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def percent(run: RunData, task: str) -> float | None:
    correct, total = run.by_type.get(task, (0, 0))
    return round(100.0 * correct / total, 1) if total else None


@dataclass
class Tables:
    runs: list[RunData]  # leaderboard order
    labels: dict[int, str]  # id(run) → unique display label
    rows: dict[str, list[dict[str, Any]]]  # file name → rows
    paired: list[stats.Paired]


def label(run: RunData) -> str:
    if run.source == "sara" and report.is_reference_policy(run.model):
        return f"{run.label} (rules, not an LLM)"
    return run.label


def tables(runs: Sequence[RunData]) -> Tables:
    ordered = sorted(runs, key=lambda r: (-r.accuracy, -r.correct, label(r)))
    names = _unique([label(r) for r in ordered], [r.folder for r in ordered])
    labels = {id(r): n for r, n in zip(ordered, names, strict=True)}
    by_folder = sorted(ordered, key=lambda r: r.folder)  # the tie order of the published tables
    paired = [
        stats.mcnemar(labels[id(a)], a.tasks, labels[id(b)], b.tasks)
        for a, b in combinations(ordered, 2)
        if a.tasks and b.tasks
    ]
    rows = {
        "leaderboard.csv": _leaderboard(ordered, labels),
        "task_accuracy_matrix.csv": _matrix(ordered, labels),
        "model_rankings_per_task.csv": _model_rankings(ordered, by_folder, labels),
        "task_rankings.csv": _task_rankings(by_folder, labels),
        "task_difficulty.csv": _difficulty(by_folder, labels),
        "task_analysis.csv": _analysis(ordered, labels),
        "task_confidence.csv": _confidence(ordered, labels),
        "paired_tests.csv": [_paired_row(p) for p in paired],
    }
    return Tables(ordered, labels, rows, paired)


def _unique(names: list[str], folders: list[str]) -> list[str]:
    counts = {n: names.count(n) for n in names}
    return [f"{n} [{f}]" if counts[n] > 1 else n for n, f in zip(names, folders, strict=True)]


def _pct(value: float) -> float:
    return round(100.0 * value, 1)


def _leaderboard(ordered: list[RunData], labels: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    for rank, run in enumerate(ordered, start=1):
        low, high = stats.wilson(run.correct, run.total)
        rows.append(
            {
                "Rank": rank,
                "Model": labels[id(run)],
                "Accuracy (%)": round(run.accuracy, 1),
                "Correct": run.correct,
                "Total": run.total,
                "Completed": run.completed,
                "Invalid Actions": run.invalid_action,
                "Limit Reached": run.limit_reached,
                "Errors": run.error,
                "Time (min)": round(run.elapsed_seconds / 60, 1),
                "Context Limit": run.context_limit,
                "CI95 Low (%)": _pct(low),
                "CI95 High (%)": _pct(high),
                "Strict Correct": "" if run.strict_correct is None else run.strict_correct,
                "Prompt Tokens/Task": _blank(run.prompt_tokens_per_task),
                "Completion Tokens/Task": _blank(run.completion_tokens_per_task),
                "Seconds/Task": _blank(run.seconds_per_task),
                "Size (B)": _blank(run.size_b),
                "Protocol": run.protocol,
                "Source": run.source,
                "Folder": run.folder,
                "Reading": run.reading,
            }
        )
    return rows


def _blank(value: float | None) -> Any:
    return "" if value is None else round(value, 1)


def _cell(value: float | None) -> Any:
    return "" if value is None else value


def _matrix(ordered: list[RunData], labels: dict[int, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for task in TASKS:
        row: dict[str, Any] = {"Task": task, "Description": DESCRIPTIONS[task]}
        row.update({labels[id(r)]: _cell(percent(r, task)) for r in ordered})
        rows.append(row)
    overall: dict[str, Any] = {"Task": "Overall", "Description": "Overall Accuracy"}
    overall.update({labels[id(r)]: round(r.accuracy, 1) for r in ordered})
    return [*rows, overall]


def _analysis(ordered: list[RunData], labels: dict[int, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for task in TASKS:
        row: dict[str, Any] = {"Task": task, "Task Description": DESCRIPTIONS[task]}
        for run in ordered:
            value = percent(run, task)
            row[labels[id(run)]] = "" if value is None else f"{value:.1f}%"
        rows.append(row)
    overall: dict[str, Any] = {"Task": "overall", "Task Description": "Overall Accuracy"}
    overall.update({labels[id(r)]: f"{r.accuracy:.1f}%" for r in ordered})
    return [*rows, overall]


def _ranked(by_folder: list[RunData], task: str) -> list[RunData]:
    """Best first; equal scores keep folder order (a stable sort); runs without the type last."""
    scored = [r for r in by_folder if percent(r, task) is not None]
    return sorted(scored, key=lambda r: -(percent(r, task) or 0.0))


def _model_rankings(
    ordered: list[RunData], by_folder: list[RunData], labels: dict[int, str]
) -> list[dict[str, Any]]:
    places = {task: {id(r): i for i, r in enumerate(_ranked(by_folder, task), 1)} for task in TASKS}
    rows = []
    for run in ordered:
        row: dict[str, Any] = {"Model": labels[id(run)]}
        for task in TASKS:
            place = places[task].get(id(run))
            row[f"{task} ({DESCRIPTIONS[task]})"] = "" if place is None else ordinal(place)
        rows.append(row)
    return rows


def _task_rankings(by_folder: list[RunData], labels: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    for task in TASKS:
        row: dict[str, Any] = {"Task": task, "Description": DESCRIPTIONS[task]}
        for place in range(1, len(by_folder) + 1):
            row[ordinal(place)] = row[f"{ordinal(place)} Score"] = ""
        for place, run in enumerate(_ranked(by_folder, task), start=1):
            row[ordinal(place)] = labels[id(run)]
            row[f"{ordinal(place)} Score"] = percent(run, task)
        rows.append(row)
    return rows


def _difficulty(by_folder: list[RunData], labels: dict[int, str]) -> list[dict[str, Any]]:
    found = []
    for task in TASKS:
        scored = [(r, v) for r in by_folder if (v := percent(r, task)) is not None]
        if not scored:
            continue
        values = [v for _, v in scored]
        low, high = min(values), max(values)
        hardest = next(r for r, v in scored if v == low)
        easiest = next(r for r, v in scored if v == high)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        found.append((statistics.fmean(values), task, hardest, easiest, spread))
    found.sort(key=lambda item: item[0])
    return [
        {
            "Rank": rank,
            "Task": task,
            "Description": DESCRIPTIONS[task],
            "Average Accuracy (%)": round(mean, 1),
            "Hardest For": labels[id(hardest)],
            "Easiest For": labels[id(easiest)],
            "Std Dev": round(spread, 1),
        }
        for rank, (mean, task, hardest, easiest, spread) in enumerate(found, start=1)
    ]


def _confidence(ordered: list[RunData], labels: dict[int, str]) -> list[dict[str, Any]]:
    rows = []
    for run in ordered:
        cells = [(t, *run.by_type[t]) for t in TASKS if t in run.by_type]
        for task, correct, total in [*cells, ("overall", run.correct, run.total)]:
            low, high = stats.wilson(correct, total)
            rows.append(
                {
                    "Model": labels[id(run)],
                    "Task": task,
                    "Correct": correct,
                    "Total": total,
                    "Accuracy (%)": _pct(correct / total) if total else "",
                    "CI95 Low (%)": _pct(low),
                    "CI95 High (%)": _pct(high),
                }
            )
    return rows


PAIRED_COLUMNS = (
    "Model A",
    "Model B",
    "Common Tasks",
    "A Correct",
    "B Correct",
    "A Only",
    "B Only",
    "p (exact McNemar)",
    "Verdict",
)


def _paired_row(p: stats.Paired) -> dict[str, Any]:
    values = (p.a, p.b, p.n, p.a_correct, p.b_correct, p.a_only, p.b_only)
    return dict(zip(PAIRED_COLUMNS, (*values, f"{p.p_value:.4g}", p.verdict()), strict=True))


def write(found: Tables, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in found.rows.items():
        path = out / name
        columns = list(rows[0]) if rows else list(PAIRED_COLUMNS)  # only pairs can be none
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    return written


def highlights(found: Tables, mine: set[int]) -> list[stats.Paired]:
    """The paired tests worth printing: between the runs given as folders (``mine``), or, with
    one of them, that run against its neighbours on the leaderboard."""
    names = {found.labels[k] for k in mine}
    between = [p for p in found.paired if p.a in names and p.b in names]
    if len(names) > 1:
        return between
    order = [found.labels[id(r)] for r in found.runs]
    picked = []
    for name in names:
        at = order.index(name)
        near = {order[i] for i in (at - 1, at + 1) if 0 <= i < len(order)}
        picked += [p for p in found.paired if {p.a, p.b} & {name} and {p.a, p.b} & near]
    return picked


def table_text(found: Tables) -> str:
    """The leaderboard as fixed-width text (what the command prints)."""
    head = f"{'#':>2}  {'model':<44} {'acc %':>6} {'95% CI':>13} {'correct':>9}  {'protocol':<16}"
    lines = [head, "-" * len(head)]
    for row in found.rows["leaderboard.csv"]:
        ci = f"{row['CI95 Low (%)']:.1f}-{row['CI95 High (%)']:.1f}"
        tokens = row["Prompt Tokens/Task"]
        extra = f"  {tokens:.0f} prompt tok/task" if tokens != "" else ""
        lines.append(
            f"{row['Rank']:>2}  {str(row['Model'])[:44]:<44} {row['Accuracy (%)']:>6.1f} "
            f"{ci:>13} {row['Correct']:>4}/{row['Total']:<4}  {row['Protocol']:<16}{extra}"
        )
    return "\n".join(lines)
