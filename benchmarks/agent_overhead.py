"""Agent overhead benchmark: what the agent itself costs per round, and API throughput.

Part 1 — per-round overhead. Tasks run in-process against a fake model and a fake FHIR server
reached through ``httpx.MockTransport`` (no sockets; each call yields to the event loop once, as
a socket would). Per round we measure wall time from one ``round_started`` event to the next (or
to ``finished``) and subtract the time spent inside the fake model and FHIR handlers. What
remains is the agent: prompt handling, the httpx client machinery, parsing, the URL guard,
wording the answer, events, metrics, the audit record and INFO logging (JSON, to /dev/null).
Side by side, interleaved in blocks, one task after another:

    (a) the loop alone, events in memory                                  target p50 <= 1 ms
    (b) the loop driven by the background ``Runner`` as the API builds it (gate, metrics, audit
        sink to /dev/null), every event encoded and group-committed to a SQLite run store in
        a temporary directory, each task followed to its end as an SSE stream would be; the
        rounds are timed as the runner publishes their events                 target p50 <= 1.5 ms
    (c) the same over PostgreSQL, with ``--postgres URL`` of a scratch database (its tasks are
        left there) or ``auto`` (a throw-away local server, see bench_postgres.py)
                                                                              target p50 <= 1.5 ms

``p50``/``p99``/``mean`` are per round; ``task/rnd`` is each task's whole time (from creating it
to its ``finished`` event, which (b)/(c) publish once the result is committed) less the fakes',
divided by its rounds, averaged; ``cpu/rnd`` the same with this process's CPU time (all threads,
SQLite's included; not a PostgreSQL server's) instead of the wall clock — what a busy replica
pays per round.

Part 2 — 200 concurrent tasks through the API. The agent runs behind uvicorn on 127.0.0.1 in
this process (its lifespan opens a SQLite run store in a temporary directory); the fake model and
FHIR servers run behind uvicorn on 127.0.0.1 in a child process, and the load generator (200 SSE
task streams at once) in another, so the agent's process does nothing but the agent. Every task
must finish ``completed`` with no HTTP error.

    .venv/bin/python benchmarks/agent_overhead.py [--tasks 400] [--concurrent 200]
        [--postgres URL|auto] [--no-api]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench_postgres import describe, postgres_url
from sara.agent import fakes, sse
from sara.agent.api.limits import Gate
from sara.agent.api.runner import Frame, Runner
from sara.agent.audit import StreamAuditSink
from sara.agent.events import Finished
from sara.agent.fhir_client import FhirClient
from sara.agent.loop import Loop, LoopConfig, TaskSpec
from sara.agent.metrics import AgentMetrics
from sara.agent.model_client import ModelClient
from sara.agent.store.runs import RunStore
from sara.common import logs

ROUNDS_PER_TASK = 5  # four GETs, then FINISH
WARM_UP_TASKS = 10  # the first tasks of each mode warm caches; not measured
TARGET_LOOP_MS = 1.0  # (a): the loop alone
TARGET_STORE_MS = 1.5  # (b), (c): with the durable run store


def multi_get_policy(messages: list[dict[str, str]]) -> str:
    """Four Observation searches, then FINISH with the number of rounds seen."""
    agent_turns = sum(1 for m in messages if m["role"] == "assistant")
    if agent_turns >= ROUNDS_PER_TASK - 1:
        return f"FINISH([{agent_turns}])"
    first = messages[0]["content"]
    base = first.split("Note that you should use ", 1)[1].split(" as the api_base.", 1)[0]
    return f"GET {base}Observation?patient=S1234567&code=MG&_count=20"


class Fakes:
    """The fake model and FHIR server behind ``httpx.MockTransport``; ``spent`` sums the time
    spent inside their handlers (subtracted from every measurement)."""

    def __init__(self) -> None:
        self.spent = 0.0

    def transport(self, handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
        async def timed(request: httpx.Request) -> httpx.Response:
            # A socket would hand the event loop over while the answer is on its way: yield
            # once, so the run store's writer commits during the round, as in production.
            await asyncio.sleep(0)
            start = time.perf_counter()
            try:
                return handler(request)
            finally:
                self.spent += time.perf_counter() - start

        return httpx.MockTransport(timed)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True)
class Mark:
    """An event seen: its kind, the wall clock, this process's CPU time (every thread: the
    SQLite driver's too) and the fakes' time so far."""

    kind: str
    wall: float
    cpu: float
    fakes: float


@dataclass
class Mode:
    """One way of running tasks and what it measured (seconds)."""

    label: str
    target_ms: float
    run_one: Callable[[int, Mode], Awaitable[None]]
    per_round: list[float] = field(default_factory=list)
    per_task: list[float] = field(default_factory=list)  # (task wall − fakes) / rounds
    cpu_task: list[float] = field(default_factory=list)  # (task CPU − fakes) / rounds

    def add(self, i: int, marks: list[Mark]) -> None:
        """``marks`` from the task's start (kind ``start``) through each ``round_started`` to
        ``finished``."""
        if i < WARM_UP_TASKS:
            return
        rounds = [m for m in marks if m.kind in ("round_started", "finished")]
        for a, b in itertools.pairwise(rounds):
            self.per_round.append((b.wall - a.wall) - (b.fakes - a.fakes))
        first, last = marks[0], marks[-1]
        count = len(rounds) - 1
        self.per_task.append(((last.wall - first.wall) - (last.fakes - first.fakes)) / count)
        self.cpu_task.append(((last.cpu - first.cpu) - (last.fakes - first.fakes)) / count)

    def row(self) -> dict[str, Any]:
        p50 = pct(self.per_round, 0.50) * 1000
        return {
            "mode": self.label,
            "rounds": len(self.per_round),
            "p50_ms": p50,
            "p99_ms": pct(self.per_round, 0.99) * 1000,
            "mean_ms": statistics.fmean(self.per_round) * 1000,
            "task_ms": statistics.fmean(self.per_task) * 1000,
            "cpu_ms": statistics.fmean(self.cpu_task) * 1000,
            "target_ms": self.target_ms,
            "ok": p50 <= self.target_ms,
        }


def _check(kind: str, data: dict[str, Any]) -> None:
    status = data["result"]["status"] if kind == "finished" else f"ended with {kind}"
    assert status == "completed", status


async def overhead(
    tasks: int, devnull: Any, postgres: str | None = None, blocks: int = 4
) -> list[dict[str, Any]]:
    """Per-round overhead of (a) the loop alone and (b) the loop driven by the Runner over a
    SQLite run store [and (c) over PostgreSQL], interleaved in ``blocks`` so that a machine
    that slows down or speeds up meanwhile weighs on every mode alike."""
    fakes_ = Fakes()
    metrics = AgentMetrics(resource_types=frozenset({"Observation"}))
    sink = StreamAuditSink(devnull)
    loop = Loop(
        LoopConfig(api_base="http://fhir.bench:8080/fhir/", max_rounds=8),
        model=ModelClient(
            base_url="http://model.bench/v1",
            model="fake",
            transport=fakes_.transport(fakes.model_handler(multi_get_policy)),
        ),
        fhir=FhirClient(transport=fakes_.transport(fakes.fhir_handler())),
        audit=sink,
        metrics=metrics,
    )
    options = {  # what the API stores with a task (routes._options)
        "write_mode": loop.config.write_mode.value,
        "parse_mode": loop.config.parse_mode.value,
        "max_rounds": loop.config.max_rounds,
        "model": "fake",
        "prompt": loop.config.prompt,
        "protocol": loop.config.protocol,
    }

    def mark(kind: str) -> Mark:
        return Mark(kind, time.perf_counter(), time.process_time(), fakes_.spent)

    async def alone(i: int, mode: Mode) -> None:
        marks = [mark("start")]
        async for event in loop.run(TaskSpec(f"magnesium of S{1000000 + i}", context="now")):
            marks.append(mark(event.kind))
            if isinstance(event, Finished):
                _check(event.kind, {"result": event.result.to_dict()})
        mode.add(i, marks)

    def through(runner: Runner) -> Callable[[int, Mode], Awaitable[None]]:
        async def one(i: int, mode: Mode) -> None:
            # As the API does: a gate slot, the task row, the segment in the background; the
            # events are timed as the runner publishes them (after encoding and queueing them
            # for the store), and followed to the end as an SSE stream would.
            marks = [mark("start")]
            assert runner.gate.try_enter()
            spec = TaskSpec(f"magnesium of S{1000000 + i}", context="now", caller="bench")
            started = await runner.start(spec, options, principal="bench")
            publish = started.live.publish

            def timed_publish(frame: Frame) -> None:
                marks.append(mark(frame.kind))
                publish(frame)

            started.live.publish = timed_publish  # type: ignore[method-assign]
            last: Frame | None = None
            async for frame in runner.follow(started.task_id):
                last = frame if frame is not None else last
            assert last is not None
            _check(last.kind, orjson.loads(last.text))
            mode.add(i, marks)

        return one

    async def open_runner(url: str) -> Runner:
        # As create_app's lifespan builds it (settings' defaults), except retention: off, so
        # that a database given with --postgres loses nothing to the runner's pruning.
        store = await RunStore.open(url)
        runner = Runner(
            store,
            loop_for=lambda _options: loop,
            metrics=metrics,
            audit=sink,
            gate=Gate(256),
            lease_seconds=30.0,
            retention_days=0,
            retention_max_tasks=0,
            keepalive_seconds=15.0,
        )
        await runner.open()
        return runner

    runners: list[Runner] = []
    with tempfile.TemporaryDirectory(prefix="sara-bench-") as tmp:
        try:
            modes = [Mode("(a) loop alone, in memory", TARGET_LOOP_MS, alone)]
            runners.append(await open_runner(f"sqlite:///{tmp}/runs.db"))
            modes.append(
                Mode("(b) runner + SQLite run store", TARGET_STORE_MS, through(runners[-1]))
            )
            if postgres:
                runners.append(await open_runner(postgres))
                modes.append(
                    Mode("(c) runner + PostgreSQL run store", TARGET_STORE_MS, through(runners[-1]))
                )
            async with loop:
                per_block = max(1, tasks // blocks)
                for block in range(blocks):
                    for mode in modes:
                        for i in range(block * per_block, (block + 1) * per_block):
                            await mode.run_one(i, mode)
        finally:
            for runner in runners:
                await runner.close()
                await runner.store.close()
    return [mode.row() for mode in modes]


def _serve_fakes(queue: Any) -> None:
    import uvicorn

    async def main() -> None:
        servers = [
            uvicorn.Server(
                uvicorn.Config(
                    fakes.asgi(h),
                    host="127.0.0.1",
                    port=0,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    backlog=4096,
                )
            )
            for h in (fakes.model_handler(), fakes.fhir_handler())
        ]
        runs = [asyncio.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        queue.put([s.servers[0].sockets[0].getsockname()[1] for s in servers])
        await asyncio.gather(*runs)

    asyncio.run(main())


async def _drive(url: str, concurrent: int) -> dict[str, Any]:
    """The load generator: ``concurrent`` SSE tasks at once (after a small warm-up)."""
    headers = {"Authorization": "Bearer bench-key", "Accept": sse.MEDIA_TYPE}
    limits = httpx.Limits(
        max_connections=concurrent + 10, max_keepalive_connections=concurrent + 10
    )
    errors: list[str] = []
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def one(c: httpx.AsyncClient, i: int) -> None:
        start = time.perf_counter()
        try:
            r = await c.post(
                "/v1/tasks", json={"instruction": f"magnesium of S{2000000 + i}"}, headers=headers
            )
            if r.status_code != 200:
                errors.append(f"HTTP {r.status_code}")
                return
            frames = list(sse.decode(r.text))
            kind, data = frames[-1]
            status = (
                data["result"]["status"] if kind == "finished" else f"no finished event ({kind})"
            )
            statuses[status] = statuses.get(status, 0) + 1
            if status != "completed" or any(k == "error" for k, _ in frames):
                errors.append(status)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
        finally:
            latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
        await asyncio.gather(*(one(c, i) for i in range(20)))  # warm-up
        latencies.clear()
        statuses.clear()
        errors.clear()
        start = time.perf_counter()
        await asyncio.gather(*(one(c, i) for i in range(concurrent)))
        wall = time.perf_counter() - start
    return {
        "tasks": concurrent,
        "errors": len(errors),
        "completed": statuses.get("completed", 0),
        "wall_s": wall,
        "tasks_per_s": concurrent / wall,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "error_kinds": json.dumps(sorted(set(errors))),
    }


def _load(url: str, concurrent: int, queue: Any) -> None:
    queue.put(asyncio.run(_drive(url, concurrent)))


async def through_api(concurrent: int, devnull: Any, store_dir: str) -> dict[str, Any]:
    """The agent in this process; fakes in one child process, the load in another."""
    import uvicorn

    from sara.agent.api.app import create_app
    from sara.agent.settings import AgentSettings

    ctx = multiprocessing.get_context("spawn")
    fakes_queue = ctx.Queue()
    fakes_child = ctx.Process(target=_serve_fakes, args=(fakes_queue,), daemon=True)
    fakes_child.start()
    model_port, fhir_port = await asyncio.to_thread(fakes_queue.get, True, 60)
    settings = AgentSettings(
        fhir_url=f"http://127.0.0.1:{fhir_port}/fhir/",
        model_url=f"http://127.0.0.1:{model_port}/v1",
        model="fake",
        api_keys="bench-key",
        max_concurrent_tasks=concurrent + 56,
        # one key plays every client: its per-key rate, task and stream limits off
        task_rate_per_minute=0,
        max_tasks_per_key=0,
        max_streams_per_key=0,
        protocol="medagentbench",
        store=f"sqlite:///{store_dir}/runs.db",
    )
    app = create_app(settings, audit=StreamAuditSink(devnull))
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, backlog=4096
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    load_queue = ctx.Queue()
    load_child = ctx.Process(target=_load, args=(url, concurrent, load_queue), daemon=True)
    try:
        load_child.start()
        result: dict[str, Any] = await asyncio.to_thread(load_queue.get, True, 600)
        async with httpx.AsyncClient(base_url=url) as c:
            metrics = (await c.get("/metrics")).text
    finally:
        server.should_exit = True
        await serving
        for child in (load_child, fakes_child):
            if child.pid is not None:
                child.terminate()
                child.join(5)
    in_flight = [ln for ln in metrics.splitlines() if ln.startswith("sara_tasks_in_flight ")]
    result["in_flight_after"] = float(in_flight[0].split()[1]) if in_flight else -1.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=400, help="tasks per mode in part 1")
    parser.add_argument("--concurrent", type=int, default=200, help="concurrent API tasks")
    parser.add_argument(
        "--postgres", metavar="URL", help="also (c): a PostgreSQL run store (URL, or auto)"
    )
    parser.add_argument("--no-api", action="store_true", help="part 1 only")
    args = parser.parse_args()
    with contextlib.redirect_stderr(open(os.devnull, "w")):
        logs.configure("INFO")  # INFO logging is part of the measured overhead (to /dev/null)
    with open(os.devnull, "w") as devnull:
        with postgres_url(args.postgres, "bench_overhead") as pg:
            rows = asyncio.run(overhead(args.tasks, devnull, pg))
        api = None
        if not args.no_api:
            with tempfile.TemporaryDirectory(prefix="sara-bench-api-") as store_dir:
                api = asyncio.run(through_api(args.concurrent, devnull, store_dir))
    print("Part 1: agent overhead per round, fake model/FHIR time subtracted (ms)")
    if args.postgres:
        print(f"(c) PostgreSQL: {describe(args.postgres)}")
    head = (
        f"{'mode':<34} {'rounds':>6} {'p50':>7} {'p99':>7} {'mean':>7} {'task/rnd':>8} "
        f"{'cpu/rnd':>8}"
    )
    print(f"{head} {'target':>11} {'ok':>3}")
    print("-" * (len(head) + 16))
    for r in rows:
        target, ok_text = f"p50 <= {r['target_ms']:g}", "yes" if r["ok"] else "NO"
        print(
            f"{r['mode']:<34} {r['rounds']:>6d} {r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} "
            f"{r['mean_ms']:>7.3f} {r['task_ms']:>8.3f} {r['cpu_ms']:>8.3f} {target:>11} "
            f"{ok_text:>3}"
        )
    ok = all(r["ok"] for r in rows)
    if api is not None:
        print()
        print(f"{'Part 2: through the API (SQLite run store)':<52} {'value':>12}")
        print("-" * 65)
        print(f"{'API: concurrent SSE tasks':<52} {api['tasks']:>12d}")
        print(f"{'API: completed':<52} {api['completed']:>12d}")
        print(f"{'API: errors':<52} {api['errors']:>12d}")
        print(f"{'API: wall time (s)':<52} {api['wall_s']:>12.2f}")
        print(f"{'API: throughput (tasks/s)':<52} {api['tasks_per_s']:>12.1f}")
        print(f"{'API: task latency p50 (ms)':<52} {api['p50_ms']:>12.1f}")
        print(f"{'API: task latency p99 (ms)':<52} {api['p99_ms']:>12.1f}")
        print(f"{'API: tasks in flight afterwards':<52} {api['in_flight_after']:>12.0f}")
        ok = ok and api["errors"] == 0 and api["completed"] == api["tasks"]
        if api["errors"]:
            print(f"error kinds: {api['error_kinds']}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
