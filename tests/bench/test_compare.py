"""``sara bench compare``: the published tables rebuilt, intervals, paired tests, the command."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sara.bench import compare, results, runs, sessions, stats, summary
from sara.cli import app

PUBLISHED_TABLES = {
    # ours → (published file, key column)
    "model_rankings_per_task.csv": ("published_runs/model_rankings_per_task.csv", "Model"),
    "task_difficulty.csv": ("published_runs/task_difficulty.csv", "Task"),
    "task_analysis.csv": ("published_runs/task_analysis.csv", "Task"),
    "task_rankings.csv": ("published_runs/task_rankings.csv", "Task"),
    "task_accuracy_matrix.csv": ("published_task_accuracy.csv", "Task"),
    "leaderboard.csv": ("published_leaderboard.csv", "Model"),
}
SARA = str(Path(sys.executable).with_name("sara"))
RESUMED = (
    "google_gemini-2-5-flash",
    "google_gemini-3-flash-preview",
    "meta-llama_llama-4-maverick",
    "meta-llama_llama-4-scout",
)


def read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _column(ours: dict[str, str], theirs: str) -> str:
    """Our column for a published one: task columns carry our descriptions, not theirs."""
    if theirs in ours:
        return theirs
    prefix = theirs.split(" ")[0] + " ("
    return next(k for k in ours if k.startswith(prefix))


def test_the_published_runs_alone_rebuild_the_published_tables(
    mab_dir: Path, tmp_path: Path
) -> None:
    loaded = [runs.load(f) for f in runs.published_folders(mab_dir / "published_runs")]
    assert len(loaded) == 15
    compare.write(compare.tables(loaded), tmp_path)
    for name, (published, key) in PUBLISHED_TABLES.items():
        theirs = read(mab_dir / published)
        ours = {row[key]: row for row in read(tmp_path / name)}
        assert len(ours) >= len(theirs), name
        for row in theirs:
            mine = ours[row[key]]
            for column, value in row.items():
                if column in ("Description", "Task Description"):
                    continue  # the published names are shuffled; ours name the task types
                assert mine[_column(mine, column)] == value, (name, row[key], column)
    board = read(tmp_path / "leaderboard.csv")
    assert [r["Source"] for r in board] == ["published"] * 15


def test_the_packaged_figures_give_the_same_leaderboard(mab_dir: Path, tmp_path: Path) -> None:
    compare.write(compare.tables(runs.packaged()), tmp_path)
    theirs = read(mab_dir / "published_leaderboard.csv")
    ours = read(tmp_path / "leaderboard.csv")
    for a, b in zip(theirs, ours, strict=True):
        assert all(b[k] == v for k, v in a.items())
    matrix = read(tmp_path / "task_accuracy_matrix.csv")
    assert matrix == [
        {**row, "Description": compare.DESCRIPTIONS.get(row["Task"], "Overall Accuracy")}
        for row in read(mab_dir / "published_task_accuracy.csv")
    ]


@pytest.mark.parametrize("folder", RESUMED)
def test_resumed_runs_are_read_as_the_summary_session(mab_dir: Path, folder: str) -> None:
    run = runs.load(mab_dir / "published_runs" / folder)
    found = json.loads((mab_dir / "published_runs" / folder / "summary.json").read_text())
    assert "reconstructed" in run.reading
    assert len(run.tasks) == found["total"] == run.total
    for task, cell in found["task_breakdown"].items():
        ids = [t for t in run.tasks if t.split("_")[0] == task]
        assert (sum(run.tasks[t] for t in ids), len(ids)) == (cell["correct"], cell["total"])


def test_an_interleaved_file_is_split_by_the_summary() -> None:
    def line(index: int, correct: bool, status: str = "completed") -> dict[str, Any]:
        return {
            "index": index,
            "task_id": f"task1_{index + 1}",
            "status": status,
            "correct": correct,
        }

    first = [line(i, True) for i in range(4)]  # an earlier session: all right
    second = [line(i, i != 2) for i in range(4)]  # the summary's: task1_3 wrong
    mixed = [first[0], second[0], first[1], second[1], second[2], first[2], first[3], second[3]]
    found = {
        "total": 4,
        "correct": 3,
        "completed": 4,
        "skipped": 0,
        "task_breakdown": {"task1": {"total": 4, "correct": 3}},
    }
    chosen = sessions.summary_session(mixed, found)
    assert chosen is not None
    assert [r["correct"] for r in chosen] == [True, True, False, True]
    impossible = {**found, "correct": 0, "task_breakdown": {"task1": {"total": 4, "correct": 0}}}
    assert sessions.summary_session(mixed, impossible) is None


def test_wilson_and_exact_mcnemar() -> None:
    low, high = stats.wilson(300, 300)
    assert (round(100 * low, 1), high) == (98.7, pytest.approx(1.0))
    low, high = stats.wilson(285, 300)
    assert (round(100 * low, 1), round(100 * high, 1)) == (91.9, 96.9)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.mcnemar_p(0, 0) == 1.0
    assert stats.mcnemar_p(6, 0) == pytest.approx(0.03125)
    assert stats.mcnemar_p(5, 0) == pytest.approx(0.0625)  # 5 to 0 is not enough
    assert stats.mcnemar_p(3, 3) == 1.0
    a = {f"t{i}": True for i in range(10)}
    b = {f"t{i}": i < 4 for i in range(10)}
    assert stats.mcnemar("A", a, "B", b).verdict() == "A beats B"
    assert stats.mcnemar("B", b, "A", a).verdict() == "A beats B"
    b5 = {f"t{i}": i < 5 for i in range(10)}
    assert stats.mcnemar("A", a, "B", b5).verdict() == "no significant difference"


def make_run(out: Path, model: str, correct: dict[str, bool], **extra: Any) -> Path:
    """A Sara run folder with the given per-task verdicts (as the runner writes one)."""
    store = results.Store.open(out, resume=False)
    for index, (task_id, ok) in enumerate(correct.items()):
        store.append(
            {
                "index": index,
                "task_id": task_id,
                "status": "completed",
                "result": "[]",
                "correct": ok,
                "strict_correct": ok,
                "reason": "",
                "strict_reason": "",
                "rounds": 2,
                "usage": {"prompt_tokens": 1000, "completion_tokens": 10},
                "elapsed_seconds": 0.5,
                "model_latency_ms": [1.0],
                "finished_at": results.now_text(),
                "task": {"id": task_id},
                "history": [
                    {"role": "user", "content": "x" * 400},
                    {"role": "agent", "content": "GET u"},
                    {"role": "user", "content": "y" * 100},
                    {"role": "agent", "content": "FINISH([])"},
                ],
            }
        )
    records = store.records
    store.close()
    summary.write(out, summary.summarize(records, model=model, elapsed_seconds=60.0, **extra))
    return out


def ids(n: int = 30) -> list[str]:
    return [f"task{k}_{i}" for k in range(1, 11) for i in range(1, n // 10 + 1)]


def test_a_sara_run_among_the_packaged_figures(tmp_path: Path) -> None:
    run = make_run(tmp_path / "mine", "my-model", {t: True for t in ids()}, protocol="compact")
    result = CliRunner().invoke(
        app, ["bench", "compare", str(run), "--published", "--out", str(tmp_path / "cmp")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("sara-leaderboard") == 15
    assert " 1  my-model" in result.output
    board = read(tmp_path / "cmp" / "leaderboard.csv")
    assert len(board) == 16
    mine = next(r for r in board if r["Model"] == "my-model")
    assert mine["Prompt Tokens/Task"] == "1000.0" and mine["Protocol"] == "compact"
    assert (mine["CI95 Low (%)"], mine["CI95 High (%)"]) == ("88.6", "100.0")
    for name in (*compare.FILES, "leaderboard.png", "task_heatmap.png", "task_bars.png",
                 "task_difficulty.png", "accuracy_vs_size.png", "report.md"):  # fmt: skip
        assert (tmp_path / "cmp" / name).stat().st_size > 0, name
    assert read(tmp_path / "cmp" / "paired_tests.csv") == []  # packaged figures: no records


def test_two_runs_are_paired_and_a_winner_named_only_when_significant(tmp_path: Path) -> None:
    tasks = ids()
    good = make_run(tmp_path / "good", "good", {t: True for t in tasks})
    worse = make_run(tmp_path / "worse", "worse", {t: i >= 7 for i, t in enumerate(tasks)})
    close = make_run(tmp_path / "close", "close", {t: i >= 2 for i, t in enumerate(tasks)})
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        app, ["bench", "compare", str(good), str(worse), str(close), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "good vs worse: 7 vs 0 discordant of 30, p = 0.0156 -> good beats worse" in result.output
    assert "good vs close: 2 vs 0 discordant of 30, p = 1 -> no significant difference" in (
        result.output.replace("p = 0.5", "p = 1")
    )
    report = (out / "report.md").read_text()
    assert "good beats worse" in report and "| 3 | worse |" in report


def test_compare_mistakes_are_one_line(tmp_path: Path) -> None:
    def sara(*args: str) -> subprocess.CompletedProcess[str]:
        command = [SARA, "bench", "compare", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    for args, message in [
        (("--out", str(tmp_path)), "nothing to compare"),
        ((str(tmp_path), "--out", str(tmp_path / "o")), "summary.json"),
        (("--bogus", "--out", str(tmp_path / "o")), "unknown option --bogus"),
        (("--published", str(tmp_path / "none"), "--out", str(tmp_path / "o")), "not a directory"),
    ]:
        done = sara(*args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_model_sizes_from_ids() -> None:
    assert runs.model_size("Alfaxad/Sara-1.5-4B-it") == 4.0
    assert runs.model_size("meta-llama/llama-3.1-8b-instruct") == 8.0
    assert runs.model_size("mistralai/mistral-small-3.2-24b-instruct") == 24.0
    assert runs.model_size("meta-llama/llama-4-scout") == 109.0
    assert runs.model_size("openai/gpt-4o") is None
