"""Model server faults over a real socket: 5xx storms, holds, resets, cut bodies, garbage.

The agent app talks to ``faultserver`` on 127.0.0.1 through its real httpx client; FHIR is the
in-memory fake. Each fault ends the task ``task error`` with an ``error`` in words — in the
POST answer, in ``GET /v1/tasks/{id}`` and in ``sara_model_errors_total{reason}`` — after
bounded, jittered retries, well within the task's deadline.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from faultapp import AUTH, TASK, agent_app, client, sample
from faultserver import Hold, Reply, Reset, Step, Truncate, fault_server

from sara.agent import fakes

pytestmark = pytest.mark.timeout(60)

RETRIES = 3  # four tries in all
BACKOFF = 0.5


def completion(text: str) -> Reply:
    import json

    return Reply(200, json.dumps(fakes.completion(text)).encode())


async def run_task(*steps: Step, **settings: Any) -> tuple[dict[str, Any], Any, list[float]]:
    """One task against a model server scripted with ``steps``: the POST answer, the server,
    the sleeps between tries (recorded, not slept), the stored task and the metrics."""
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    with fault_server(*steps) as server:
        app = agent_app(
            real_model=True,
            model_url=f"{server.url}/v1",
            model_max_retries=RETRIES,
            **settings,
        )
        model = app.state.service.loop.model
        model.sleep = record
        model.jitter = random.Random(15).random
        async with client(app) as c:
            started = time.monotonic()
            r = await c.post("/v1/tasks", json=TASK, headers=AUTH)
            took = time.monotonic() - started
            assert r.status_code == 200, r.text
            body = r.json()
            stored = (await c.get(f"/v1/tasks/{body['task_id']}", headers=AUTH)).json()
            metrics = (await c.get("/metrics")).text
    return {"answer": body, "stored": stored, "metrics": metrics, "took": took}, server, sleeps


def failed_with(out: dict[str, Any], error: str, reason: str) -> None:
    answer, stored = out["answer"], out["stored"]
    assert answer["status"] == "task error" and answer["error"] == error
    assert stored["outcome"] == "task error" and stored["error"] == error
    assert stored["result"]["error"] == error
    assert sample(out["metrics"], "sara_model_errors_total", reason=reason) == 1
    assert sample(out["metrics"], "sara_tasks_total", status="task_error") == 1


async def test_5xx_storm_ends_in_words_after_jittered_retries() -> None:
    out, server, sleeps = await run_task(Reply(503, b"overloaded", "text/plain"))
    failed_with(out, "model server failed (HTTP 503) after 4 tries", "http")
    assert len(server.requests) == RETRIES + 1
    # full jitter: each delay a random fraction of the exponential step (0.5, 1, 2 s)
    draw = random.Random(15)
    assert sleeps == [BACKOFF * 2**i * draw.random() for i in range(RETRIES)]
    assert all(0 <= s < BACKOFF * 2**i for i, s in enumerate(sleeps))


async def test_model_that_holds_its_answer_times_out_per_try() -> None:
    out, server, _ = await run_task(Hold(20), model_timeout_seconds=0.3)
    failed_with(out, "model server timed out (no answer within 0.3 s) after 4 tries", "timeout")
    assert len(server.requests) == RETRIES + 1
    assert out["took"] < 5


async def test_task_deadline_ends_a_task_whose_model_holds() -> None:
    """The tries would take 4 × 5 s; the task's 1 s deadline ends it first, in words."""
    out, _, _ = await run_task(Hold(20), model_timeout_seconds=5, task_timeout_seconds=1)
    answer, stored = out["answer"], out["stored"]
    assert answer["status"] == "task error"
    assert answer["error"] == stored["error"] == "the task took longer than its limit of 1 s"
    assert out["took"] < 4


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (Reset(), r"model server connection failed mid-answer \((ReadError|RemoteProtocolError)\)"),
        (Truncate(), r"model server connection failed mid-answer \(RemoteProtocolError\)"),
    ],
    ids=["reset", "truncated"],
)
async def test_broken_connections_are_retried_then_named(step: Step, error: str) -> None:
    import re

    out, server, sleeps = await run_task(step)
    answer = out["answer"]
    assert answer["status"] == "task error"
    assert re.fullmatch(error + " after 4 tries", answer["error"]), answer["error"]
    assert out["stored"]["error"] == answer["error"]
    assert sample(out["metrics"], "sara_model_errors_total", reason="connection") == 1
    assert len(server.requests) == RETRIES + 1 and len(sleeps) == RETRIES


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (Reply(200, b"<html><body>502 Bad Gateway</body></html>", "text/html"), "HTML, not JSON"),
        (Reply(200, b'{"choices": [{"mess'), "not JSON"),
        (Reply(200, b'{"object": "error", "detail": "upstream"}'), "JSON, but not a completion"),
    ],
    ids=["html", "cut-json", "wrong-json"],
)
async def test_garbage_bodies_are_retried_then_named(step: Reply, why: str) -> None:
    out, server, _ = await run_task(step)
    expected = f"model server answered with an unexpected body ({why}) after 4 tries"
    failed_with(out, expected.replace("not a completion", "not a chat completion"), "bad_body")
    assert len(server.requests) == RETRIES + 1


async def test_a_storm_that_passes_is_survived() -> None:
    """A reset, a cut body, a 503 and a garbage page, then answers: the task completes."""
    steps: list[Step] = [
        Reset(),
        Truncate(),
        Reply(503, b"busy", "text/plain"),
        completion(f"GET http://fhir.test/fhir/Patient?identifier={'S6315806'}"),
        completion("FINISH([3])"),
    ]
    out, server, sleeps = await run_task(*steps)
    assert out["answer"]["status"] == "completed" and out["answer"]["error"] is None
    assert out["answer"]["result"] == "[3]"
    assert len(server.requests) == 5 and len(sleeps) == 3
    assert sample(out["metrics"], "sara_model_errors_total", reason="connection") is None


async def test_a_model_server_that_is_gone_is_named_unreachable() -> None:
    """Nothing listens on the port: connection refused, four times, then one clear error."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    app = agent_app(real_model=True, model_url=f"http://127.0.0.1:{port}/v1")
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    app.state.service.loop.model.sleep = record
    async with client(app) as c:
        answer = (await c.post("/v1/tasks", json=TASK, headers=AUTH)).json()
        metrics = (await c.get("/metrics")).text
    assert answer["status"] == "task error"
    assert answer["error"] == "model server unreachable (ConnectError) after 4 tries"
    assert sample(metrics, "sara_model_errors_total", reason="connection") == 1
    assert len(sleeps) == RETRIES
