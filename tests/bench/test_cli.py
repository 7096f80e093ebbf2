"""`sara bench` as a user meets it: help, one-line usage errors, report and merge commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SARA = str(Path(sys.executable).with_name("sara"))


def sara(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SARA, "bench", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_options_and_subcommands() -> None:
    done = sara("--help")
    assert done.returncode == 0
    words = ("--tasks", "--shard", "--resume", "--balanced", "--functions", "merge", "report")
    for word in (*words, "--protocol", "--models", "compare"):
        assert word in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "pass --tasks"),
        (("--tasks", "/nonexistent.json", "--out", "OUT"), "does not exist"),
        (("--tasks", "TASKS", "--out", "OUT", "--shard", "5/2"), "--shard"),
        (("--tasks", "TASKS", "--out", "OUT", "--task-types", "11"), "--task-types"),
        (("--tasks", "TASKS", "--out", "OUT", "--api-key-env", "SARA_TEST_UNSET_VAR"), "empty"),
        (("report", "EMPTY"), "holds no"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks.json"
    tasks.write_text(
        json.dumps([{"id": "task2_1", "instruction": "q", "context": "", "eval_MRN": "S1"}])
    )
    (tmp_path / "empty").mkdir()
    real = [
        a.replace("TASKS", str(tasks))
        .replace("OUT", str(tmp_path / "out"))
        .replace("EMPTY", str(tmp_path / "empty"))
        for a in args
    ]
    done = sara(*real)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_malformed_task_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "task4_1", "instruction": "q", "context": ""}]))
    done = sara("--tasks", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "eval_MRN" in done.stderr


def test_synthetic_run_into_used_directory_keeps_its_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Forgetting --resume must not replace tasks.json: a later --resume would pair the recorded
    # results with other tasks under the same ids.
    from sara.bench import cli
    from sara.common.errors import UserError

    out = tmp_path / "out"
    out.mkdir()
    (out / "tasks.json").write_text("OLD")
    (out / "runs.jsonl").write_text('{"task_id": "task1_1"}\n')

    async def generate(*args: object, **kwargs: object) -> list[dict[str, str]]:
        return [{"id": "task1_1", "instruction": "NEW", "context": ""}]

    monkeypatch.setattr(cli, "_generate", generate)
    with pytest.raises(UserError, match="already holds results"):
        cli._task_list(
            "synthetic",
            out,
            False,
            "http://fhir.test/fhir/",
            n=1,
            seed=1,
            balanced=False,
            types=None,
        )
    assert (out / "tasks.json").read_text() == "OLD"
