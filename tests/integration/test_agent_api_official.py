"""Issue 3's proof: all 300 official tasks through `sara agent serve`, a real process on 127.0.0.1.

The agent runs the benchmark protocol (official prompt and function list, `acknowledge` writes)
against the embedded FHIR server charted for the real patients and the reference model server.
Every task must end `completed`, the official grader's rules must give 300/300, and the agent's
metrics and audit trail must account for every task and every FHIR call.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from sara.bench import grader
from sara.bench.groundtruth import GroundTruth

Proc = Any  # tests/integration/conftest.py: a running `sara` child process

API_KEY = "integration-test-key-0123456789"


@pytest.fixture(scope="module")
def agent(
    mab_dir: Path,
    ehr_fhir: Proc,
    reference_model: Proc,
    start_sara: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    tmp = tmp_path_factory.mktemp("agent")
    audit = tmp / "audit.jsonl"
    proc = start_sara(
        [
            "agent", "serve",
            "--fhir-url", f"{ehr_fhir.root}/fhir/",
            "--model-url", f"{reference_model.root}/v1",
            "--model", "sara-reference-policy",
            "--protocol", "medagentbench", "--prompt", "medagentbench",
            "--write-mode", "acknowledge",
            "--functions-file", str(mab_dir / "funcs_v1.json"),
            "--audit-sink", str(audit),
            "--store", f"sqlite:///{tmp / 'runs.db'}",  # never var/runs.db in the checkout
            "--max-concurrent-tasks", "32",
        ],
        "/healthz",
        # one key plays every client of the 300-task run: its per-key rate and task limits off
        {
            "SARA_AGENT_API_KEYS": API_KEY,
            "SARA_AGENT_TASK_RATE_PER_MINUTE": "0",
            "SARA_AGENT_MAX_TASKS_PER_KEY": "0",
        },
    )  # fmt: skip
    return proc, audit


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


async def test_300_official_tasks_complete_and_grade_300_of_300(
    mab_dir: Path, ehr_fhir: Proc, agent: Any
) -> None:
    proc, audit = agent
    cases = json.loads((mab_dir / "test_data_v2.json").read_text())
    assert len(cases) == 300
    gate = asyncio.Semaphore(16)

    async with httpx.AsyncClient(base_url=proc.root, timeout=120, trust_env=False) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text

        async def run(case: dict[str, Any]) -> dict[str, Any]:
            body = {"instruction": case["instruction"], "context": case["context"]}
            async with gate:
                response = await client.post("/v1/tasks", json=body, headers=_auth())
            assert response.status_code == 200, response.text
            return dict(response.json())

        results = await asyncio.gather(*(run(case) for case in cases))
        metrics = (await client.get("/metrics")).text

    statuses = [r["status"] for r in results]
    assert statuses == ["completed"] * 300

    api_base = f"{ehr_fhir.root}/fhir/"
    async with httpx.AsyncClient(timeout=60, trust_env=False) as fhir:
        truth = GroundTruth(fhir, api_base)
        verdicts = []
        for case, result in zip(cases, results, strict=True):
            outcome = grader.Outcome(result["status"], result["result"], result["history"])
            lookup = await truth.lookup_for(case)
            verdicts.append(grader.grade(case, outcome, lookup, api_base))
    wrong = [(c["id"], v.reason) for c, v in zip(cases, verdicts, strict=True) if not v.correct]
    assert wrong == []

    completed = re.search(r'^sara_tasks_total\{status="completed"\} (\S+)$', metrics, re.M)
    assert completed is not None and float(completed.group(1)) == 300.0

    # One audit record per action on the FHIR server: each GET sent, and each POST the
    # benchmark protocol acknowledged without sending.
    actions = [
        item["content"].strip().split(None, 1)[0]
        for r in results
        for item in r["history"]
        if item["role"] == "agent" and not item["content"].strip().startswith("FINISH")
    ]
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    outcomes = {(rec["method"], rec["outcome"]) for rec in records}
    assert outcomes == {("GET", "ok"), ("POST", "acknowledged")}
    assert sum(rec["method"] == "GET" for rec in records) == actions.count("GET")
    assert sum(rec["method"] == "POST" for rec in records) == actions.count("POST")
    assert actions.count("POST") > 0
    assert all(rec["caller"].startswith("key:") and API_KEY not in rec["caller"] for rec in records)


async def test_sse_stream_of_an_official_task(mab_dir: Path, agent: Any) -> None:
    proc, _ = agent
    case = next(
        c for c in json.loads((mab_dir / "test_data_v2.json").read_text()) if c["id"] == "task5_1"
    )
    body = {"instruction": case["instruction"], "context": case["context"]}
    headers = {**_auth(), "Accept": "text/event-stream"}
    events: list[str] = []
    async with (
        httpx.AsyncClient(base_url=proc.root, timeout=60, trust_env=False) as client,
        client.stream("POST", "/v1/tasks", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
    assert events[0] == "round_started"
    assert "model_output" in events and "fhir_request" in events and "fhir_response" in events
    assert events[-1] == "finished"
    assert "error" not in events


async def test_api_refuses_without_a_key(agent: Any) -> None:
    proc, _ = agent
    async with httpx.AsyncClient(base_url=proc.root, timeout=30, trust_env=False) as client:
        response = await client.post("/v1/tasks", json={"instruction": "x"})
    assert response.status_code == 401
