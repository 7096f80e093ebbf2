"""Prompt profiles and function lists: data files in ``sara/agent/prompts/``, rendered here.

A profile is a text template with the placeholders ``{api_base}``, ``{functions}``,
``{context}`` and ``{question}`` (literal braces doubled), rendered with ``str.format`` exactly as
the MedAgentBench harness renders its prompt. The function list is inserted as ``json.dumps`` of
the list (default separators), so placeholders inside it, such as ``{api_base}`` in the
functions' names, stay literal — as in the benchmark.

Profiles: ``medagentbench`` (the benchmark's prompt, verbatim), ``sara`` (stricter wording),
``sara-leaderboard`` (verbatim the prompt of the harness behind the published leaderboard:
stricter format rules and task-specific answer hints — a test pins it to that harness) and
``compact`` (the official rules in fewer words; its function list is rendered by
:func:`sara.agent.compact.functions` instead of ``json.dumps``). All contain
``Note that you should use {api_base} as the api_base.`` and end with
``Context: {context}\\nQuestion: {question}`` — the reference policy relies on both.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from sara.agent import compact
from sara.agent.errors import ConfigError

PROFILES: tuple[str, ...] = ("medagentbench", "sara", "sara-leaderboard", "compact")


@cache
def template(profile: str) -> str:
    """The raw template text of a built-in profile."""
    if profile not in PROFILES:
        raise ConfigError(
            f"unknown prompt profile {profile!r}; choose one of {', '.join(PROFILES)}"
        )
    return resources.files("sara.agent").joinpath(f"prompts/{profile}.txt").read_text("utf-8")


@cache
def default_functions() -> tuple[dict[str, Any], ...]:
    """Sara's own function list (FHIR endpoints the agent may use)."""
    text = resources.files("sara.agent").joinpath("prompts/functions.json").read_text("utf-8")
    return tuple(json.loads(text))


def load_functions(path: Path | None) -> list[dict[str, Any]]:
    """The function list from a JSON file (e.g. the benchmark's ``funcs_v1.json``) or built-in."""
    if path is None:
        return [dict(f) for f in default_functions()]
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read function list {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"function list {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(f, dict) and "name" in f for f in data):
        raise ConfigError(f"function list {path} must be a JSON list of objects with a 'name'")
    return data


def render(
    profile: str, *, api_base: str, functions: list[dict[str, Any]], context: str, question: str
) -> str:
    """The first user message of a task."""
    listed = compact.functions(functions) if profile == "compact" else json.dumps(functions)
    return template(profile).format(
        api_base=api_base, functions=listed, context=context, question=question
    )
