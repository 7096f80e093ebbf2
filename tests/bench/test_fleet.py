"""Several model endpoints in one command: the models file, one folder each, resumable."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from sara.bench import fleet, results, runner, summary, tasks
from sara.common.errors import UserError

SARA = str(Path(sys.executable).with_name("sara"))
API = "http://fhir.test/fhir/"
TASKS = [
    {"id": "task2_1", "eval_MRN": "S0000001", "instruction": "q", "context": ""},
    {"id": "task5_2", "eval_MRN": "S0000013", "instruction": "q", "context": ""},
    {"id": "task9_2", "eval_MRN": "S0000031", "instruction": "q", "context": ""},
]


def reply(text: str) -> httpx.Response:
    usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    return httpx.Response(200, json={"choices": [{"message": {"content": text}}], "usage": usage})


MODELS = """
models:
  - name: openai/gpt-4o
    url: https://one.test/v1
    api_key_env: SARA_TEST_KEY_ONE
    headers: {X-Title: sara-bench}
    concurrency: 2
    label: GPT-4o
  - name: local/small-8b
    url: http://two.test/v1
    folder: small
    size_b: 8
"""


def test_the_models_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(MODELS)
    one, two = fleet.load(path)
    assert (one.folder, one.headers, one.concurrency, one.label) == (
        "openai_gpt-4o",
        {"X-Title": "sara-bench"},
        2,
        "GPT-4o",
    )
    assert (two.folder, two.concurrency, two.size_b, two.api_key()) == ("small", 4, 8.0, None)
    monkeypatch.delenv("SARA_TEST_KEY_ONE", raising=False)
    with pytest.raises(UserError, match="SARA_TEST_KEY_ONE"):
        one.api_key()
    json_path = tmp_path / "models.json"
    json_path.write_text(json.dumps([{"name": "m", "url": "http://m.test/v1"}]))
    assert [s.folder for s in fleet.load(json_path)] == ["m"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: []", "non-empty list"),
        ("models: [{name: m}]", "required"),
        ("models: [{name: m, url: ftp://x}]", "http"),
        ("models: [{name: m, url: http://x, concurrency: 0}]", "positive"),
        ("models: [{name: m, url: http://x, colour: red}]", "unknown key"),
        ("models: [{name: m, url: http://x, folder: ../up}]", "plain directory"),
        ("models: [{name: m, url: http://x}, {name: m, url: http://y}]", "share a folder"),
        ("models: [", "does not parse"),
    ],
)
def test_models_file_mistakes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        fleet.load(path)


async def test_every_model_runs_into_its_own_folder_with_its_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_fhir: Any, chart_resources: Any
) -> None:
    monkeypatch.setenv("SARA_TEST_KEY_ONE", "secret-one")
    seen: dict[str, list[httpx.Headers]] = {"one.test": [], "two.test": []}

    def model(request: httpx.Request) -> httpx.Response:
        seen[request.url.host].append(request.headers)
        return reply("FINISH([])")

    path = tmp_path / "models.yaml"
    path.write_text(MODELS)
    base = runner.RunOptions(
        fhir_url=API,
        model_url="unused",
        model="unused",
        out=tmp_path,
        progress=False,
        model_transport=httpx.MockTransport(model),
        fhir_transport=memory_fhir(chart_resources),
    )
    selected = tasks.select(tasks.validate(TASKS))
    runs = [fleet.options_for(spec, base, tmp_path / "out") for spec in fleet.load(path)]
    outcomes = await asyncio.gather(*(runner.run(selected, o) for o in runs))
    assert [o.recorded for o in outcomes] == [3, 3]
    assert seen["one.test"][0]["authorization"] == "Bearer secret-one"
    assert seen["one.test"][0]["x-title"] == "sara-bench"
    assert "authorization" not in seen["two.test"][0] and "x-title" not in seen["two.test"][0]
    one = summary.read(tmp_path / "out" / "openai_gpt-4o")
    two = summary.read(tmp_path / "out" / "small")
    assert one is not None and two is not None
    assert (one["model"], one["label"], two["size_b"]) == ("openai/gpt-4o", "GPT-4o", 8.0)
    assert one["prompt_tokens_per_task"] == 11.0 and one["completion_tokens_per_task"] == 3.0
    # resumable: nothing left to do
    again = [fleet.options_for(s, base, tmp_path / "out") for s in fleet.load(path)]
    resumed = await asyncio.gather(*(runner.run(selected, replace(o, resume=True)) for o in again))
    assert [o.skipped for o in resumed] == [3, 3]
    assert len(results.load(tmp_path / "out" / "small")) == 3


def test_the_command_refuses_a_models_file_with_synthetic_tasks(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(MODELS)
    command = [SARA, "bench", "--tasks", "synthetic", "--models", str(path), "--out", "o"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--models runs a task file" in done.stderr
