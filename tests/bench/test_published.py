"""The published reference figures shipped in the package match the benchmark's CSVs."""

from __future__ import annotations

import csv
from pathlib import Path

from sara.bench import published


def test_leaderboard_matches_the_published_csv(mab_dir: Path) -> None:
    rows = list(csv.DictReader((mab_dir / "published_leaderboard.csv").open()))
    ours = published.models()
    assert len(ours) == len(rows) == 15
    for row, model in zip(rows, ours, strict=True):
        assert model.rank == int(row["Rank"])
        assert model.model == row["Model"]
        assert model.accuracy == float(row["Accuracy (%)"])
        assert (model.correct, model.total, model.completed) == (
            int(row["Correct"]),
            int(row["Total"]),
            int(row["Completed"]),
        )
        assert (model.invalid_action, model.limit_reached, model.error) == (
            int(row["Invalid Actions"]),
            int(row["Limit Reached"]),
            int(row["Errors"]),
        )
        assert model.time_minutes == float(row["Time (min)"])


def test_task_accuracy_matches_the_published_csv(mab_dir: Path) -> None:
    rows = {r["Task"]: r for r in csv.DictReader((mab_dir / "published_task_accuracy.csv").open())}
    for model in published.models():
        assert model.tasks == {
            f"task{k}": float(rows[f"task{k}"][model.model]) for k in range(1, 11)
        }
        assert float(rows["Overall"][model.model]) == model.accuracy


def test_field_average_and_source() -> None:
    assert round(published.field_average("task7"), 2) == 35.55
    assert "published" in published.source().lower()


def test_packaged_ids_counts_and_times_match_the_published_summaries(mab_dir: Path) -> None:
    import json

    for model in published.models():
        found = json.loads((mab_dir / "published_runs" / model.folder / "summary.json").read_text())
        assert model.id == found["model"]
        assert model.context_limit == found["context_limit"]
        assert model.elapsed_seconds == round(found["elapsed_seconds"], 3)
        assert model.task_counts == {
            task: [cell["correct"], cell["total"]] for task, cell in found["task_breakdown"].items()
        }
    assert published.display_names()["openai/gpt-4o"] == "GPT-4o"
