"""Run store faults on a real PostgreSQL: the server stops and comes back under a running agent.

Acknowledged tasks (their POST answered) are all there after the restart, a task that ran
across it ends recorded, the pool reconnects on its own (``pool_pre_ping``), and while the
database is down the API answers 503 in words with ``Retry-After`` — never a 500 traceback.
Skips without PostgreSQL binaries (``make test`` installs them; CI fails instead).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from faultapp import AUTH, TASK, agent_app, client, sample

from sara.agent import fakes

pytestmark = pytest.mark.timeout(90)


async def until(check: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_postgres_restart_loses_no_acknowledged_task(postgres_server: Any) -> None:
    url = postgres_server.create_database("faults_restart")
    blocked, release = asyncio.Event(), asyncio.Event()
    policy = fakes.model_handler()

    async def model(request: httpx.Request) -> httpx.Response:
        messages = json.loads(request.content)["messages"] if request.method == "POST" else []
        if messages and "HOLD" in messages[0]["content"] and not release.is_set():
            blocked.set()  # a task in flight when the database goes away
            await release.wait()
        return policy(request)

    app = agent_app(model=model, store=url)
    async with client(app) as c:
        done = []
        for _ in range(5):
            r = await c.post("/v1/tasks", json=TASK, headers=AUTH)
            assert r.status_code == 200 and r.json()["status"] == "completed"
            done.append(r.json()["task_id"])
        held = await c.post(
            "/v1/tasks",
            json={**TASK, "instruction": TASK["instruction"] + " HOLD"},
            headers={**AUTH, "Prefer": "respond-async"},
        )
        assert held.status_code == 202  # acknowledged: its row is committed
        held_id = held.json()["id"]
        await asyncio.wait_for(blocked.wait(), 10)

        await asyncio.to_thread(postgres_server.stop)
        try:
            refused = await c.post("/v1/tasks", json=TASK, headers=AUTH)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["code"] == "store_unavailable"
            assert refused.json()["detail"].startswith("run store unavailable (")
            looked = await c.get(f"/v1/tasks/{done[0]}", headers=AUTH)
            assert looked.status_code == 503 and looked.json()["code"] == "store_unavailable"
            release.set()  # the held task goes on and ends while the database is down
            await asyncio.sleep(0.3)
        finally:
            await asyncio.to_thread(postgres_server.start)

        async def finished() -> dict[str, Any] | None:
            r = await c.get(f"/v1/tasks/{held_id}", headers=AUTH)
            return r.json() if r.status_code == 200 and r.json()["status"] == "finished" else None

        task = await until(finished)
        assert task is not None, "the task that ran across the restart was not recorded"
        assert task["outcome"] == "completed" and task["answer"] == "[3]"
        for task_id in done:  # every acknowledged task is still there, as it ended
            r = await c.get(f"/v1/tasks/{task_id}", headers=AUTH)
            assert r.status_code == 200
            assert (r.json()["status"], r.json()["outcome"]) == ("finished", "completed")
        again = await c.post("/v1/tasks", json=TASK, headers=AUTH)  # the pool reconnected
        assert again.status_code == 200 and again.json()["status"] == "completed"
        listed = (await c.get("/v1/tasks?limit=50", headers=AUTH)).json()["items"]
        assert {t["id"] for t in listed} == {*done, held_id, again.json()["task_id"]}
        metrics = (await c.get("/metrics")).text
    failed_finish = sample(metrics, "sara_run_store_errors_total", operation="finish") or 0
    failed_events = sample(metrics, "sara_run_store_errors_total", operation="events") or 0
    assert failed_finish + failed_events >= 1  # the outage was seen and counted


async def test_a_task_end_that_outlives_the_retries_is_recorded_once_the_store_is_back(
    postgres_server: Any,
) -> None:
    """An outage longer than the runner's immediate tries: the acknowledged task's end is
    kept in memory and written by the upkeep after the restart — not left ``running``."""
    url = postgres_server.create_database("faults_outage")
    blocked, release = asyncio.Event(), asyncio.Event()
    policy = fakes.model_handler()

    async def model(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and not release.is_set():
            blocked.set()
            await release.wait()
        return policy(request)

    app = agent_app(model=model, store=url, worker_lease_seconds=1)  # upkeep every 0.33 s
    async with client(app) as c:
        runner = app.state.service.runner
        runner.durable_backoff = (0.05, 0.05)  # give up on the immediate tries quickly
        held = await c.post("/v1/tasks", json=TASK, headers={**AUTH, "Prefer": "respond-async"})
        assert held.status_code == 202
        task_id = held.json()["id"]
        await asyncio.wait_for(blocked.wait(), 10)
        await asyncio.to_thread(postgres_server.stop)
        try:
            release.set()

            async def given_up() -> bool:
                metrics = (await c.get("/metrics")).text
                return (
                    sample(metrics, "sara_run_store_errors_total", operation="finish") or 0
                ) >= 2

            assert await until(given_up, 10), "the runner never gave up its immediate tries"
            await asyncio.sleep(0.5)  # a few upkeep rounds against the stopped database
        finally:
            await asyncio.to_thread(postgres_server.start)

        async def finished() -> dict[str, Any] | None:
            r = await c.get(f"/v1/tasks/{task_id}", headers=AUTH)
            return r.json() if r.status_code == 200 and r.json()["status"] == "finished" else None

        task = await until(finished)
        assert task is not None, "the task's end was lost with the outage"
        assert task["outcome"] == "completed" and task["answer"] == "[3]"
        events = (await c.get(f"/v1/tasks/{task_id}/events", headers=AUTH)).text
        assert "event: finished" in events  # its last frame was kept too
