"""FHIR server faults over a real socket: slow, oversized and malformed answers, a restart.

The loop's FHIR client talks to 127.0.0.1 — ``faultserver`` for the misbehaving answers, the
embedded ``sara fhir`` server (in a thread) for the restart; the model is scripted. A FHIR
fault is never a task error: the model is told in words and the task goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from faultserver import Hold, Reply, Step, fault_server

from sara.agent import fakes
from sara.agent.audit import MemoryAuditSink
from sara.agent.events import Event, FhirResponse, Finished, TaskResult
from sara.agent.fhir_client import FhirClient
from sara.agent.loop import Loop, LoopConfig, TaskSpec
from sara.agent.metrics import AgentMetrics
from sara.agent.model_client import ModelClient

pytestmark = pytest.mark.timeout(60)

MRN = "S1023381"


def scripted_model(
    base: str, rounds: int = 1, before: Callable[[int], Awaitable[None]] | None = None
) -> httpx.MockTransport:
    """GET the patient ``rounds`` times, then FINISH; ``before(n)`` runs before answer n."""

    async def handle(request: httpx.Request) -> httpx.Response:
        n = sum(1 for m in json.loads(request.content)["messages"] if m["role"] == "user")
        if before is not None:
            await before(n)
        text = f"GET {base}Patient?identifier={MRN}" if n <= rounds else "FINISH([1])"
        return httpx.Response(200, json=fakes.completion(text))

    return httpx.MockTransport(handle)


async def run(
    base: str, model: httpx.MockTransport, *, fhir_timeout: float = 5.0, cap: int = 8 << 20
) -> tuple[TaskResult, list[FhirResponse]]:
    loop = Loop(
        LoopConfig(api_base=base, protocol="sara", task_timeout_seconds=30),
        model=ModelClient(base_url="http://model.test/v1", model="m", transport=model),
        fhir=FhirClient(timeout=fhir_timeout, max_response_bytes=cap),
        audit=MemoryAuditSink(),
        metrics=AgentMetrics(),
    )
    events: list[Event] = []
    async with loop:
        events = [e async for e in loop.run(TaskSpec("How old is the patient?"))]
    final = events[-1]
    assert isinstance(final, Finished)
    return final.result, [e for e in events if isinstance(e, FhirResponse)]


def told(result: TaskResult, n: int = 1) -> str:
    """What the model was told after its ``n``-th action."""
    return [h["content"] for h in result.history if h["role"] == "user"][n]


async def against(step: Step, **kw: Any) -> tuple[TaskResult, list[FhirResponse], float]:
    with fault_server(step) as server:
        base = f"{server.url}/fhir/"
        started = time.monotonic()
        result, responses = await run(base, scripted_model(base), **kw)
        return result, responses, time.monotonic() - started


async def test_a_slow_answer_is_cut_at_the_fhir_timeout_and_told() -> None:
    result, (response,), took = await against(Hold(20), fhir_timeout=0.3)
    assert response.outcome == "transport_error" and response.status is None
    assert told(result).startswith("Error in sending the GET request: timed out")
    assert result.status == "completed" and result.error is None  # the task went on
    assert took < 5


async def test_an_oversized_answer_is_capped_and_told() -> None:
    big = json.dumps({"resourceType": "Bundle", "entry": [{"x": "y" * 100}] * 2000}).encode()
    result, (response,), _ = await against(Reply(200, big, "application/fhir+json"), cap=4096)
    assert response.outcome == "ok" and response.truncated and response.size == 4096
    assert "[Sara: the response was cut at 4096 bytes (the agent's limit)." in told(result)
    assert result.status == "completed"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"resourceType": "Bundle", "type": "searchset", "entry": [', "application/fhir+json"),
        (b"<html><body>503 upstream</body></html>", "text/html"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"total": 3, "entry": []}', "application/fhir+json"),
    ],
    ids=["cut-bundle", "html", "json-array", "no-resourceType"],
)
async def test_a_malformed_bundle_is_told_as_such(body: bytes, content_type: str) -> None:
    result, (response,), _ = await against(Reply(200, body, content_type))
    assert response.outcome == "ok" and response.summary is None
    assert "[Sara: this answer is not a FHIR resource (not valid JSON, or no resourceType)" in (
        told(result)
    )
    assert result.status == "completed"


# -- restart -------------------------------------------------------------------------------


@contextlib.contextmanager
def fhir_server(db: Path, port: int) -> Iterator[None]:
    """The embedded FHIR server (``sara fhir serve``'s app) on 127.0.0.1:``port``."""
    from sara.fhir.app import create_app
    from sara.fhir.settings import ServerSettings

    app = create_app(ServerSettings(db=db, request_log=False))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "the FHIR server did not start"
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def test_fhir_restart_mid_task_costs_one_round(tmp_path: Path) -> None:
    """Round 2's read meets the server down (a transport error, told to the model); round
    3's read, after the restart on the same port, succeeds; the task completes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}/fhir/"
    db = tmp_path / "fhir.db"
    stack = contextlib.ExitStack()
    await asyncio.to_thread(stack.enter_context, fhir_server(db, port))

    async def before(n: int) -> None:
        if n == 2:  # the first read is done: stop the server
            await asyncio.to_thread(stack.close)
        elif n == 3:  # the model was told; bring the server back on the same port
            await asyncio.to_thread(stack.enter_context, fhir_server(db, port))

    try:
        result, responses = await run(base, scripted_model(base, rounds=3, before=before))
    finally:
        await asyncio.to_thread(stack.close)
    assert [r.outcome for r in responses] == ["ok", "transport_error", "ok"]
    assert [r.status for r in responses] == [200, None, 200]
    assert told(result, 2).startswith("Error in sending the GET request: ConnectError")
    assert result.status == "completed" and result.error is None and result.rounds == 4
