"""`sara train export` from run folders, and the mistakes it turns into one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sara import cli
from sara.common.errors import UserError
from sara.train import deps


def _run_folder(path: Path, records: list[dict[str, Any]]) -> Path:
    path.mkdir()
    text = "".join(json.dumps(r) + "\n" for r in records)
    (path / "trajectories.jsonl").write_text(text)
    return path


def test_export_writes_jsonl_and_applies_the_guard(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    run = _run_folder(tmp_path / "run", records)
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(
        json.dumps([{**records[0]["task"], "id": "task1_500", "synthetic": False}])
    )
    out = tmp_path / "data" / "train.jsonl"
    result = CliRunner().invoke(
        cli.app, ["train", "export", str(run), "--out", str(out), "--eval-set", str(evaluation)]
    )
    assert result.exit_code == 0, result.output
    assert "7 examples; 1 refused: in the evaluation set by instruction+patient" in result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 7
    assert [m["role"] for m in lines[0]["messages"]] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "name the evaluation set with --eval-set"),
        (["--no-leakage-guard", "--eval-set", "x.json"], "one of the two"),
        (["--no-leakage-guard", "--task-types", "7"], "nothing to export: 0 examples"),
    ],
)
def test_export_mistakes(
    tmp_path: Path, records: list[dict[str, Any]], extra: list[str], message: str
) -> None:
    run = _run_folder(tmp_path / "run", records)
    result = CliRunner().invoke(
        cli.app, ["train", "export", str(run), "--out", str(tmp_path / "o.jsonl"), *extra]
    )
    assert isinstance(result.exception, UserError) and message in str(result.exception)


def test_not_a_run_folder_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sara.cli", "train", "export", str(tmp_path), "--out",
         str(tmp_path / "o.jsonl"), "--no-leakage-guard"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is not a bench run folder" in proc.stderr


def test_missing_extra_says_how_to_install() -> None:
    with pytest.raises(UserError, match=r"make train-deps"):
        deps.require("sara_no_such_training_package")
