"""Trajectories → SFT examples: roles, filters, and the leakage guard (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sftdata import PEOPLE, record

from sara.bench import tasks as task_sets
from sara.train import export

OFFICIAL = Path(__file__).resolve().parents[3] / "shared" / "medagentbench" / "test_data_v2.json"


def test_history_becomes_chat_turns(records: list[dict[str, Any]]) -> None:
    examples, tally = export.examples(records[:1], guard=None, system="Be brief.")
    [example] = examples
    roles = [m["role"] for m in example["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert example["messages"][1]["content"] == records[0]["history"][0]["content"]
    assert example["messages"][2]["content"].startswith("GET ")
    assert example["messages"][4]["content"] == 'FINISH(["S0000001"])'
    assert example["task_id"] == "task1_1" and example["synthetic"] is True
    assert tally.kept == 1


def test_only_correct_trajectories_by_default(records: list[dict[str, Any]]) -> None:
    records[0]["correct"] = False
    examples, tally = export.examples(records, guard=None)
    assert len(examples) == len(records) - 1 and tally.skipped["incorrect"] == 1
    examples, _ = export.examples(records, guard=None, include_incorrect=True)
    assert len(examples) == len(records)


def test_task_type_filter_and_broken_records(records: list[dict[str, Any]]) -> None:
    other = record(20, PEOPLE[0])
    other["task"]["id"] = "task7_3"
    broken = {"task_id": "task1_99", "correct": True}
    unfinished = record(21, PEOPLE[1])
    unfinished["history"] = unfinished["history"][:3]
    examples, tally = export.examples(
        [*records, other, broken, unfinished], guard=None, task_types=frozenset({1})
    )
    assert len(examples) == len(records)
    assert tally.skipped == {
        "of other task types": 1,
        "without task or history": 1,
        "not ending in a model answer": 1,
    }
    assert "8 examples" in tally.line()


def test_duplicate_tasks_are_exported_once(records: list[dict[str, Any]]) -> None:
    examples, tally = export.examples([*records, records[0]], guard=None)
    assert len(examples) == len(records) and tally.skipped["duplicates"] == 1


def test_guard_refuses_official_ids_but_not_synthetic_namesakes(
    records: list[dict[str, Any]],
) -> None:
    evaluation = [{"id": "task1_1", "instruction": "another question", "eval_MRN": "S9"}]
    guard = export.Guard.of(evaluation)
    # the synthetic task1_1 is another task that shares the id shape: kept
    examples, _ = export.examples(records[:1], guard=guard)
    assert len(examples) == 1
    # a non-synthetic task1_1 is the official task itself: refused
    records[0]["task"]["synthetic"] = False
    examples, tally = export.examples(records[:1], guard=guard)
    assert examples == [] and tally.skipped == {"refused: in the evaluation set by id": 1}


def test_guard_refuses_same_instruction_and_patient(records: list[dict[str, Any]]) -> None:
    task = records[2]["task"]
    evaluation = [
        {
            "id": "task1_77",
            "instruction": "  " + task["instruction"].upper().replace(" ", "\n "),
            "eval_MRN": task["eval_MRN"],
        }
    ]
    examples, tally = export.examples(records, guard=export.Guard.of(evaluation))
    assert len(examples) == len(records) - 1
    assert tally.skipped == {"refused: in the evaluation set by instruction+patient": 1}
    # the same wording about another patient is another task
    evaluation[0]["eval_MRN"] = "S0000999"
    examples, _ = export.examples(records, guard=export.Guard.of(evaluation))
    assert len(examples) == len(records)


@pytest.mark.skipif(not OFFICIAL.is_file(), reason="shared/medagentbench is not beside the repo")
def test_guard_against_the_official_300() -> None:
    official = task_sets.load(str(OFFICIAL))
    guard = export.Guard.of(official)
    assert len(guard.ids) == 300
    leaked = [
        {"task_id": t["id"], "correct": True, "task": t, "history": [
            {"role": "user", "content": "prompt"}, {"role": "agent", "content": "FINISH([])"}]}
        for t in official[:20]
    ]  # fmt: skip
    examples, tally = export.examples(leaked, guard=guard)
    assert examples == [] and tally.skipped["refused: in the evaluation set by id"] == 20
    # the same 20 tasks relabelled as synthetic are still caught by instruction + patient
    for item in leaked:
        item["task"] = {**item["task"], "synthetic": True, "id": item["task"]["id"] + "x"}
    examples, tally = export.examples(leaked, guard=guard)
    assert examples == []
    assert tally.skipped["refused: in the evaluation set by instruction+patient"] == 20
