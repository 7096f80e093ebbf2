"""Graded bench trajectories → chat-format SFT examples, with a leakage guard.

Pure: records in, examples out (reading and writing the JSONL files is the CLI's job). One
example per task, as the agent loop showed it to the model: the prompt as the first ``user``
turn (optionally after a ``system`` turn), each model answer (``agent`` in the history) as an
``assistant`` turn, each FHIR answer as a ``user`` turn — the mapping the model client uses, so
the model is trained on exactly what it will be served.

The leakage guard keeps evaluation tasks out of training data. A record is refused when

* its task id is an id of the evaluation set and the task is not synthetic — synthetic task ids
  (``task4_12``) reuse the official ``task<type>_<n>`` shape so the grader parses them, so an id
  is only evidence of the *same* task when neither side is generated; and
* whatever its id, its instruction (whitespace-normalised) and patient (``eval_MRN``) are those of
  an evaluation task — a synthetic task that happens to reproduce an official one is refused.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sara.bench import grader

ROLES = {"user": "user", "agent": "assistant"}
_SPACE = re.compile(r"\s+")

Record = Mapping[str, Any]
Example = dict[str, Any]


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def task_key(task: Mapping[str, Any]) -> tuple[str, str]:
    """What makes two tasks the same question: the instruction and the patient it is about."""
    return _normal(str(task.get("instruction", ""))), str(task.get("eval_MRN") or "")


@dataclass(frozen=True)
class Guard:
    """The evaluation set, as the ids and (instruction, patient) keys a record must not match."""

    ids: frozenset[str]
    keys: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, tasks: Iterable[Mapping[str, Any]]) -> Guard:
        listed = list(tasks)
        return cls(
            frozenset(str(t["id"]) for t in listed if not t.get("synthetic")),
            frozenset(task_key(t) for t in listed),
        )

    def leak(self, task: Mapping[str, Any]) -> str | None:
        """``"id"`` or ``"instruction+patient"`` when ``task`` is in the evaluation set."""
        if not task.get("synthetic") and str(task.get("id")) in self.ids:
            return "id"
        if task_key(task) in self.keys:
            return "instruction+patient"
        return None


@dataclass
class Tally:
    """What happened to each record: kept, or left out and why."""

    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        parts = [f"{self.kept} examples"]
        parts += [f"{n} {why}" for why, n in sorted(self.skipped.items())]
        return "; ".join(parts)


def messages(history: Sequence[Mapping[str, Any]], system: str | None = None) -> list[Example]:
    """The chat messages of a bench history (``user``/``agent`` turns)."""
    out: list[Example] = [{"role": "system", "content": system}] if system else []
    for turn in history:
        role = ROLES.get(str(turn.get("role")))
        if role is None or not isinstance(turn.get("content"), str):
            raise ValueError(f"unexpected history turn: role {turn.get('role')!r}")
        out.append({"role": role, "content": turn["content"]})
    return out


def examples(
    records: Iterable[Record],
    *,
    guard: Guard | None,
    task_types: frozenset[int] | None = None,
    include_incorrect: bool = False,
    system: str | None = None,
) -> tuple[list[Example], Tally]:
    """SFT examples of the records that qualify: ``messages``, ``task_id``, ``synthetic``,
    ``correct``.

    ``guard=None`` switches the leakage guard off (the CLI makes that an explicit choice).
    A task recorded more than once (several run folders) is exported once, first come first.
    """
    tally = Tally()
    seen: set[tuple[str, str]] = set()
    out: list[Example] = []
    for record in records:
        task = record.get("task") if isinstance(record.get("task"), Mapping) else None
        history = record.get("history")
        if task is None or not isinstance(history, list) or not history:
            tally.skipped["without task or history"] += 1
            continue
        try:
            kind = grader.task_type(str(task.get("id")))
        except ValueError:
            tally.skipped["not a MedAgentBench task id"] += 1
            continue
        if task_types is not None and kind not in task_types:
            tally.skipped["of other task types"] += 1
            continue
        if not include_incorrect and record.get("correct") is not True:
            tally.skipped["incorrect"] += 1
            continue
        if history[-1].get("role") != "agent":
            tally.skipped["not ending in a model answer"] += 1
            continue
        why = guard.leak(task) if guard is not None else None
        if why is not None:
            tally.skipped[f"refused: in the evaluation set by {why}"] += 1
            continue
        key = (str(task.get("id")), task_key(task)[0])
        if key in seen:
            tally.skipped["duplicates"] += 1
            continue
        seen.add(key)
        out.append(
            {
                "messages": messages(history, system),
                "task_id": str(task["id"]),
                "synthetic": bool(task.get("synthetic")),
                "correct": record.get("correct") is True,
            }
        )
        tally.kept += 1
    return out, tally
