"""Load and soak of the agent through real processes on 127.0.0.1 (issue 15, §5).

Starts ``sara fhir serve --synthetic P`` (the synthetic EHR), the reference model server (the
reference policy, no latency: the agent and its run store are what is loaded) and ``sara agent
serve`` (write mode ``acknowledge``, a SQLite run store, the audit sink and INFO logs in files),
each on a free port, then in this process:

- ``--concurrency C`` workers run ``--tasks N`` tasks through ``POST /v1/tasks`` (plain JSON:
  the call returns the ``TaskResult`` when the task ends), cycling through synthetic tasks of
  all ten MedAgentBench types worded from the chart (``sara.bench.synthetic``);
- ``--streams S`` watchers each follow one running task's ``GET /v1/tasks/{id}/events`` to its
  end, then the next one (ids from ``GET /v1/tasks?status=running``, polled every 0.2 s), so
  about S SSE streams stay open while the tasks run;
- the agent's resident memory is sampled every 0.5 s (psutil, or /proc/PID/status).

An error is anything but a ``200`` whose task ended ``completed``: an HTTP status, a transport
exception, another task status; for a stream, anything but a ``200`` that ends after its
``finished`` frame. Both are counted by kind. Afterwards ``sara_tasks_in_flight`` and
``sara_sse_streams_open`` must read 0.

Per-key limits are raised for the run (one key plays every client): the rate, per-key task and
stream limits are set to 0 (no limit) through ``SARA_AGENT_*``; names this agent does not know
are ignored by its settings and reported. ``max_concurrent_tasks`` is ``max(64, C)``.

``--soak-seconds T`` (opt-in) runs the workers for T seconds instead of N tasks and samples the
agent's RSS every ``--sample-seconds`` (30): memory is bounded when it grows by at most
``max(--rss-margin-pct % of the RSS after warm-up, --rss-margin-mib MiB)`` from the first sample
after ``--warmup-seconds`` (60) to the end.

    .venv/bin/python benchmarks/load_agent.py [--tasks 1000] [--concurrency 64] [--streams 200]
        [--patients 50] [--soak-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import local_stack
from sara.bench import groundtruth, synthetic

KEY = "load-bench-key-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}
# Per-key limits (agent settings); 0 = no limit. Names an older agent lacks are ignored by it.
RAISED = {
    "task_rate_per_minute": "0",
    "decision_rate_per_minute": "0",
    "max_tasks_per_key": "0",
    "max_streams_per_key": "0",
}
MIB = 1024 * 1024


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Load:
    tasks: list[dict[str, Any]]
    total: int | None  # tasks to run; None: until ``deadline``
    deadline: float | None = None
    started: int = 0
    latencies: list[float] = field(default_factory=list)
    by_type: dict[str, list[float]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    running: list[str] = field(default_factory=list)  # ids of running tasks, polled
    done: asyncio.Event = field(default_factory=asyncio.Event)
    streams_opened: int = 0
    streams_completed: int = 0
    streams_open: int = 0
    streams_peak: int = 0
    stream_frames: int = 0
    stream_errors: Counter[str] = field(default_factory=Counter)
    poll_errors: Counter[str] = field(default_factory=Counter)

    def next_task(self) -> dict[str, Any] | None:
        if self.total is not None and self.started >= self.total:
            return None
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return None
        case = self.tasks[self.started % len(self.tasks)]
        self.started += 1
        return case


async def worker(c: httpx.AsyncClient, load: Load) -> None:
    while (case := load.next_task()) is not None:
        began = time.perf_counter()
        try:
            r = await c.post(
                "/v1/tasks",
                json={"instruction": case["instruction"], "context": case["context"]},
                headers=HEADERS,
            )
        except httpx.HTTPError as exc:
            load.errors[f"task: {type(exc).__name__}"] += 1
            continue
        if r.status_code != 200:
            load.errors[f"task: HTTP {r.status_code}"] += 1
            continue
        load.latencies.append(time.perf_counter() - began)
        kind = case["id"].split("_")[0]
        load.by_type.setdefault(kind, []).append(load.latencies[-1])
        status = r.json().get("status", "?")
        load.statuses[status] += 1
        if status != "completed":
            load.errors[f"task: {status}"] += 1


async def watcher(c: httpx.AsyncClient, load: Load, k: int) -> None:
    seen: set[str] = set()
    while not load.done.is_set():
        fresh = [t for t in load.running if t not in seen]
        if not fresh:
            await asyncio.sleep(0.05)
            continue
        task_id = fresh[k % len(fresh)]
        seen.add(task_id)
        load.streams_opened += 1
        load.streams_open += 1
        load.streams_peak = max(load.streams_peak, load.streams_open)
        frames = 0
        try:
            async with c.stream("GET", f"/v1/tasks/{task_id}/events", headers=HEADERS) as r:
                if r.status_code != 200:
                    await r.aread()
                    load.stream_errors[f"HTTP {r.status_code}"] += 1
                    continue
                finished = False
                async for line in r.aiter_lines():
                    frames += 1
                    if line.startswith("event: "):
                        load.stream_frames += 1
                        finished = line == "event: finished"
                if finished:
                    load.streams_completed += 1
                else:
                    load.stream_errors["ended without its finished frame"] += 1
        except httpx.HTTPError as exc:
            where = "mid-stream" if frames else "before any line"
            load.stream_errors[f"{type(exc).__name__} ({where})"] += 1
        finally:
            load.streams_open -= 1


async def poller(c: httpx.AsyncClient, load: Load) -> None:
    while not load.done.is_set():
        try:
            r = await c.get(
                "/v1/tasks", params={"status": "running", "limit": 200}, headers=HEADERS
            )
            if r.status_code == 200:
                load.running = [item["id"] for item in r.json()["items"]]
            else:
                load.poll_errors[f"HTTP {r.status_code}"] += 1
        except httpx.HTTPError as exc:
            load.poll_errors[type(exc).__name__] += 1
        await asyncio.sleep(0.2)


@dataclass
class Memory:
    pid: int
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # t, tasks, rss
    peak: int = 0


async def sampler(memory: Memory, load: Load, every: float, record_every: float) -> None:
    began = last = time.monotonic()
    memory.samples.append((0.0, 0, local_stack.rss_bytes(memory.pid)))
    while not load.done.is_set():
        await asyncio.sleep(every)
        rss = local_stack.rss_bytes(memory.pid)
        memory.peak = max(memory.peak, rss)
        now = time.monotonic()
        if now - last >= record_every:
            memory.samples.append((now - began, len(load.latencies), rss))
            last = now


async def metric(c: httpx.AsyncClient, name: str) -> float:
    text = (await c.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def drive(
    url: str, pids: dict[str, int], tasks: list[dict[str, Any]], args: Any
) -> dict[str, Any]:
    agent_pid = pids["agent"]
    # Idle pooled connections are dropped after 2 s, before uvicorn's keep-alive timeout (5 s)
    # closes them: with httpx's default (also 5 s) a request sent on a connection just as the
    # server closes it fails before any byte (ReadError / RemoteProtocolError), a client-side
    # race, not an agent error (docs/benchmarks/load.md).
    limits = httpx.Limits(
        max_connections=args.concurrency + args.streams + 10,
        max_keepalive_connections=args.concurrency + args.streams + 10,
        keepalive_expiry=args.keepalive_expiry,
    )
    async with httpx.AsyncClient(
        base_url=url, timeout=args.timeout, limits=limits, trust_env=False
    ) as c:
        idle = local_stack.rss_bytes(agent_pid)
        cpu_before = {name: local_stack.cpu_seconds(pid) for name, pid in pids.items()}
        client_before = time.process_time()
        warm = Load(tasks, total=min(20, len(tasks)))  # warm-up, not counted
        await asyncio.gather(*(worker(c, warm) for _ in range(4)))
        warmed = local_stack.rss_bytes(agent_pid)
        soak = args.soak_seconds > 0
        load = Load(tasks, total=None if soak else args.tasks)
        memory = Memory(agent_pid, peak=warmed)
        start = time.perf_counter()
        if soak:
            load.deadline = time.monotonic() + args.soak_seconds
        background = [
            asyncio.create_task(poller(c, load)),
            asyncio.create_task(sampler(memory, load, 0.5, args.sample_seconds)),
            *(asyncio.create_task(watcher(c, load, k)) for k in range(args.streams)),
        ]
        await asyncio.gather(*(worker(c, load) for _ in range(args.concurrency)))
        wall = time.perf_counter() - start
        load.done.set()
        await asyncio.gather(*background)
        await asyncio.sleep(2)  # let the store's writer and the streams settle
        after = local_stack.rss_bytes(agent_pid)
        cpu = {name: local_stack.cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["load client"] = time.process_time() - client_before
        in_flight = await metric(c, "sara_tasks_in_flight")
        streams_open = await metric(c, "sara_sse_streams_open")
    memory.samples.append((wall, len(load.latencies), after))
    return {
        "load": load,
        "memory": memory,
        "wall": wall,
        "idle": idle,
        "warmed": warmed,
        "after": after,
        "cpu": cpu,
        "in_flight": in_flight,
        "streams_open": streams_open,
    }


async def synthetic_tasks(fhir_url: str, n: int) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
        patients, observations = await groundtruth.chart(groundtruth.GroundTruth(client, fhir_url))
    found = synthetic.charts(patients, observations)
    tasks = synthetic.generate(found, n=n, seed=1, balanced=True)
    random.Random(1).shuffle(tasks)  # the types interleaved, as a ward's requests would be
    return tasks


def agent_env() -> tuple[dict[str, str], list[str]]:
    from sara.agent.settings import AgentSettings

    known = set(AgentSettings.model_fields)
    env = {f"SARA_AGENT_{name.upper()}": value for name, value in RAISED.items()}
    env["SARA_AGENT_API_KEYS"] = KEY
    return env, sorted(set(RAISED) - known)


def row(label: str, value: object) -> None:
    if isinstance(value, float):
        text = f"{value:,.1f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    print(f"{label:<52} {text:>14}")


def report(result: dict[str, Any], args: Any, unknown: list[str]) -> bool:
    load: Load = result["load"]
    memory: Memory = result["memory"]
    lat = [x * 1000 for x in load.latencies]
    done = len(load.latencies)
    soak = args.soak_seconds > 0
    title = f"soak {args.soak_seconds:g} s" if soak else f"{args.tasks} tasks"
    print(f"Agent load through real processes on 127.0.0.1: {title}, reference policy, "
          f"SQLite run store, {args.patients} synthetic patients")  # fmt: skip
    if unknown:
        print(f"(per-key limit settings this agent does not know, ignored: {', '.join(unknown)})")
    print(f"{'metric':<52} {'value':>14}")
    print("-" * 67)
    row("tasks run", load.started)
    row("concurrency (task workers)", args.concurrency)
    row("tasks completed", load.statuses.get("completed", 0))
    row("task errors", sum(load.errors.values()))
    row("wall time (s)", result["wall"])
    row("throughput (tasks/s)", done / result["wall"] if result["wall"] else 0.0)
    row("task latency p50 (ms)", pct(lat, 0.50))
    row("task latency p95 (ms)", pct(lat, 0.95))
    row("task latency p99 (ms)", pct(lat, 0.99))
    row("task latency max (ms)", max(lat) if lat else float("nan"))
    for name, seconds in result["cpu"].items():
        row(f"CPU per task: {name} (ms)", seconds * 1000 / max(1, done + 20))
    row("SSE watchers", args.streams)
    row("SSE streams opened", load.streams_opened)
    row("SSE streams completed (finished frame)", load.streams_completed)
    row("SSE streams open at once (peak)", load.streams_peak)
    row("SSE frames read", load.stream_frames)
    row("SSE stream errors", sum(load.stream_errors.values()))
    row("running-task polls failed", sum(load.poll_errors.values()))
    row("agent RSS idle after start (MiB)", result["idle"] / MIB)
    row("agent RSS after warm-up, 20 tasks (MiB)", result["warmed"] / MIB)
    row("agent RSS peak (MiB)", memory.peak / MIB)
    row("agent RSS after (MiB)", result["after"] / MIB)
    row("tasks in flight afterwards", result["in_flight"])
    row("SSE streams open afterwards", result["streams_open"])
    ok = (
        not load.errors
        and not load.stream_errors
        and not load.poll_errors
        and load.streams_completed == load.streams_opened
        and result["in_flight"] == 0
        and result["streams_open"] == 0
    )
    for name, kinds in (
        ("task", load.errors),
        ("stream", load.stream_errors),
        ("poll", load.poll_errors),
    ):
        if kinds:
            print(
                f"{name} errors by kind: " + ", ".join(f"{k}: {v}" for k, v in kinds.most_common())
            )
    print()
    print(f"{'latency by task type':<22} {'tasks':>6} {'p50 ms':>9} {'p99 ms':>9}")
    for kind in sorted(load.by_type, key=lambda k: int(k.removeprefix("task"))):
        values = [x * 1000 for x in load.by_type[kind]]
        print(f"{kind:<22} {len(values):>6d} {pct(values, 0.5):>9.1f} {pct(values, 0.99):>9.1f}")
    if soak:
        print()
        print(f"{'RSS samples':<20} {'t (s)':>8} {'tasks':>8} {'RSS MiB':>9}")
        for t, n, rss in memory.samples:
            print(f"{'':<20} {t:>8.0f} {n:>8d} {rss / MIB:>9.1f}")
        base = next(((t, r) for t, _, r in memory.samples if t >= args.warmup_seconds), None)
        if base is None:
            print("no sample after warm-up: run longer than --warmup-seconds")
            return False
        growth = memory.samples[-1][2] - base[1]
        margin = max(base[1] * args.rss_margin_pct / 100, args.rss_margin_mib * MIB)
        tail = [r for t, _, r in memory.samples if t >= args.warmup_seconds]
        slope = statistics.linear_regression(
            [t for t, _, _ in memory.samples if t >= args.warmup_seconds], tail
        ).slope if len(tail) >= 2 else 0.0  # fmt: skip
        print(
            f"RSS growth after warm-up ({base[0]:.0f} s → end): {growth / MIB:+.1f} MiB, margin "
            f"{margin / MIB:.1f} MiB (max of {args.rss_margin_pct:g} % and "
            f"{args.rss_margin_mib:g} MiB); trend {slope * 60 / MIB:+.2f} MiB/min"
        )
        ok = ok and growth <= margin
    print("PASS" if ok else "FAIL")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks to run (not with --soak)")
    parser.add_argument("--concurrency", type=int, default=64, help="task workers at once")
    parser.add_argument("--streams", type=int, default=200, help="concurrent SSE watchers")
    parser.add_argument("--patients", type=int, default=50, help="synthetic EHR patients")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per HTTP call")
    parser.add_argument(
        "--keepalive-expiry", type=float, default=2.0, help="client: idle connection kept (s)"
    )
    parser.add_argument("--soak-seconds", type=float, default=0, help="soak this long instead")
    parser.add_argument("--sample-seconds", type=float, default=30, help="RSS sample interval")
    parser.add_argument("--warmup-seconds", type=float, default=60, help="soak: growth after")
    parser.add_argument("--rss-margin-pct", type=float, default=10.0)
    parser.add_argument("--rss-margin-mib", type=float, default=50.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sara-load-agent-"))
    fhir = local_stack.fhir(tmp, args.patients)
    model = local_stack.model(tmp)
    env, unknown = agent_env()
    agent = local_stack.Proc(
        ["agent", "serve", "--fhir-url", f"{fhir.root}/fhir/", "--model-url", f"{model.root}/v1",
         "--model", "sara-reference-policy", "--write-mode", "acknowledge",
         "--max-concurrent-tasks", str(max(64, args.concurrency)),
         "--store", f"sqlite:///{tmp / 'runs.db'}", "--audit-sink", str(tmp / "audit.jsonl"),
         "--log-level", "INFO"],
        "/healthz",
        tmp / "agent.log",
        env=env,
    )  # fmt: skip
    procs = [fhir, model, agent]
    try:
        for proc in procs:
            proc.spawn()
        for proc in procs:
            proc.wait_ready(300)
        tasks = asyncio.run(synthetic_tasks(f"{fhir.root}/fhir/", 100))
        pids = {"agent": agent.pid, "model server": model.pid, "FHIR server": fhir.pid}
        result = asyncio.run(drive(agent.root, pids, tasks, args))
    finally:
        local_stack.stop_all(procs)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    ok = report(result, args, unknown)
    if args.keep:
        print(f"logs and stores kept in {tmp}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
