"""Published MedAgentBench results of 15 models, the reference rows of every report.

The figures live in ``data/published.json`` (with their source note); a test pins them to the
benchmark's published CSVs when those are at hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Published:
    rank: int
    model: str
    accuracy: float  # percent
    correct: int
    total: int
    completed: int
    invalid_action: int
    limit_reached: int
    error: int
    time_minutes: float
    tasks: dict[str, float]  # task1..task10 → percent
    id: str = ""  # the model id the run used, e.g. "openai/gpt-4o"
    folder: str = ""  # its run folder in the published runs, e.g. "openai_gpt-4o"
    context_limit: int = 0
    elapsed_seconds: float = 0.0
    task_counts: dict[str, list[int]] = field(default_factory=dict)  # task → [correct, total]


@cache
def _document() -> dict[str, object]:
    text = resources.files("sara.bench").joinpath("data/published.json").read_text("utf-8")
    data: dict[str, object] = json.loads(text)
    return data


def source() -> str:
    return str(_document()["source"])


def models() -> list[Published]:
    """The published models, best first."""
    rows = _document()["models"]
    assert isinstance(rows, list)
    return sorted((Published(**row) for row in rows), key=lambda p: p.rank)


def display_names() -> dict[str, str]:
    """Model id → the name the published tables give it (e.g. ``openai/gpt-4o`` → ``GPT-4o``)."""
    return {p.id: p.model for p in models() if p.id}


def field_average(task: str) -> float:
    """Mean published accuracy of the 15 models on one task type (percent)."""
    found = [p.tasks[task] for p in models()]
    return sum(found) / len(found)
