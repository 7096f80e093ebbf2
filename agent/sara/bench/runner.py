"""Run a task set through the agent loop, concurrently, grading and recording each task.

Every task runs once (pass@1) through :mod:`sara.agent.loop` with the benchmark's settings
(protocol ``medagentbench``, POSTs acknowledged not sent, strict parsing), is graded against the
FHIR server as it stands at grading time (faithful and strict), and is appended to the output
directory before the next result is taken, so an interruption loses at most the tasks in flight.

A task whose run or grading met an unreachable FHIR server is not recorded: the server's outage is
not the model's mistake. ``--resume`` runs it again. That is a transport failure, or a 5xx answer
to an agent GET while the server also fails a ``metadata`` probe after the task; a 5xx from a
server that is up is its answer to that request, shown to the model as the harness shows it, and
the task is recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sara.agent import loop, runtime
from sara.agent.events import FhirResponse, Finished, ModelOutput, TaskResult
from sara.agent.settings import AgentSettings, ParseMode, WriteMode
from sara.bench import grader, protocols, results, summary
from sara.bench.endpoint import EndpointTransport
from sara.bench.errors import GroundTruthError
from sara.bench.groundtruth import GroundTruth
from sara.bench.protocols import RetryPolicy
from sara.bench.tasks import Task
from sara.common.errors import UserError


@dataclass(frozen=True)
class RunOptions:
    fhir_url: str
    model_url: str
    model: str
    out: Path
    api_key: str | None = None
    concurrency: int = 16
    max_rounds: int = 8
    protocol: str = "medagentbench"
    prompt: str | None = None  # None: the protocol's own profile
    functions: Path | None = None
    label: str | None = None  # display name in reports and comparisons
    size_b: float | None = None  # parameters in billions, when known (comparisons plot it)
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    request_timeout: float = 120.0  # one try of one model call, body included
    retry: RetryPolicy | None = None  # None: the protocol's policy
    endpoint_concurrency: int | None = None  # model requests in flight; None: = concurrency
    resume: bool = False
    retry_errors: bool = False  # on resume, run again the tasks recorded as `task error`
    progress: bool = True
    # Injected transports (tests, benchmarks): the model server, and the FHIR server as seen by
    # both the agent and the grader.
    model_transport: httpx.AsyncBaseTransport | None = field(default=None, compare=False)
    fhir_transport: httpx.AsyncBaseTransport | None = field(default=None, compare=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    @property
    def api_base(self) -> str:
        return self.fhir_url if self.fhir_url.endswith("/") else self.fhir_url + "/"


@dataclass
class RunOutcome:
    summary: dict[str, Any]
    recorded: int  # graded and written in this session
    skipped: int  # already recorded before (resume)
    unrecorded: int  # left for --resume (FHIR server unreachable)


def loop_config(options: RunOptions) -> loop.LoopConfig:
    functions = read_functions(options.functions) if options.functions else None
    protocol = protocols.get(options.protocol)
    return loop.LoopConfig(
        api_base=options.api_base,
        max_rounds=options.max_rounds,
        prompt=options.prompt or protocol.prompt,
        functions=functions,
        parse_mode=ParseMode.STRICT,
        write_mode=WriteMode.ACKNOWLEDGE,
        protocol=protocol.loop_protocol,
    )


def read_functions(path: Path) -> list[dict[str, Any]]:
    """The function list shown to the model (e.g. the benchmark's ``funcs_v1.json``)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read --functions {path}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(f, dict) and "name" in f for f in data):
        raise UserError(f"--functions {path} must be a JSON list of objects with a 'name'")
    return data


async def run(selected: Sequence[tuple[int, Task]], options: RunOptions) -> RunOutcome:
    """Run the not-yet-recorded tasks of ``selected``; write results and ``summary.json``."""
    store = results.Store.open(
        options.out, resume=options.resume, retry_errors=options.retry_errors
    )
    previous = summary.read(options.out) if options.resume else None
    prior = float(previous.get("elapsed_seconds", 0.0)) if previous else 0.0
    pending = [(i, t) for i, t in selected if t["id"] not in store.done]
    skipped = len(selected) - len(pending)
    session = _Session(store, len(selected), skipped)
    started = time.perf_counter()
    protocol = protocols.get(options.protocol)
    endpoint = model_endpoint(options)
    settings = AgentSettings.model_construct(
        model_api_key=None if options.api_key is None else _secret(options.api_key),
        model_max_retries=0,  # the endpoint transport retries, by the protocol's policy
        model_timeout_seconds=endpoint.retry.budget(options.request_timeout),
    )
    agent = runtime.build_loop(
        loop_config(options),
        model_url=options.model_url,
        model=options.model,
        model_transport=endpoint,
        fhir_transport=options.fhir_transport,
        settings=settings,
        context_limit=protocol.context_limit,
    )
    try:
        async with (
            agent,
            httpx.AsyncClient(
                transport=options.fhir_transport, timeout=120, trust_env=False
            ) as client,
        ):
            truth = GroundTruth(client, options.api_base)
            queue: asyncio.Queue[tuple[int, Task]] = asyncio.Queue()
            for item in pending:
                queue.put_nowait(item)
            with session.progress(options.progress):
                workers = [
                    asyncio.create_task(_worker(queue, agent, truth, options, session))
                    for _ in range(max(1, min(options.concurrency, len(pending))))
                ]
                await asyncio.gather(*workers)
    finally:
        store.close()
        final = summary.summarize(
            store.records,
            model=options.model,
            elapsed_seconds=prior + time.perf_counter() - started,
            expected=len(selected),
            protocol=options.protocol,
            label=options.label,
            size_b=options.size_b,
        )
        summary.write(options.out, final)
    return RunOutcome(final, session.recorded, skipped, session.unrecorded)


def model_endpoint(options: RunOptions) -> EndpointTransport:
    """The transport every model call of the run goes through (headers, bound, retries)."""
    return EndpointTransport(
        options.model_transport,
        headers=options.extra_headers,
        concurrency=options.endpoint_concurrency or options.concurrency,
        retry=options.retry or protocols.get(options.protocol).retry,
        timeout=options.request_timeout,
        sleep=options.sleep,
    )


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


async def _worker(
    queue: asyncio.Queue[tuple[int, Task]],
    agent: loop.Loop,
    truth: GroundTruth,
    options: RunOptions,
    session: _Session,
) -> None:
    while True:
        try:
            index, task = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        record = await run_one(agent, truth, options.api_base, index, task)
        session.finish(record)


async def run_one(
    agent: loop.Loop, truth: GroundTruth, api_base: str, index: int, task: Task
) -> dict[str, Any] | None:
    """Run and grade one task; ``None`` when the FHIR server was unreachable meanwhile."""
    spec = loop.TaskSpec(task["instruction"], task["context"], task_id=task["id"], caller="bench")
    latencies: list[float] = []
    unreachable = server_error = False
    final: TaskResult | None = None
    async for event in agent.run(spec):
        if isinstance(event, ModelOutput):
            latencies.append(event.elapsed_ms)
        elif isinstance(event, FhirResponse):
            unreachable |= event.outcome == "transport_error"
            server_error |= (event.status or 0) >= 500
        elif isinstance(event, Finished):
            final = event.result
    if final is None or unreachable or (server_error and not await truth.up()):
        return None
    outcome = grader.Outcome(final.status, final.result, final.history)
    try:
        lookup = await truth.lookup_for(task) if final.result is not None else _no_lookup
        faithful = grader.grade(task, outcome, lookup, api_base)
        strict = grader.grade(task, outcome, lookup, api_base, grader.Variant.STRICT)
    except GroundTruthError:
        return None
    return {
        "index": index,
        "task_id": task["id"],
        "status": final.status,
        "result": final.result,
        "correct": faithful.correct,
        "strict_correct": strict.correct,
        "reason": faithful.reason,
        "strict_reason": strict.reason,
        "rounds": final.rounds,
        "usage": dict(final.usage),
        "elapsed_seconds": round(final.elapsed_seconds, 4),
        "model_latency_ms": latencies,
        "finished_at": results.now_text(),
        "task": task,
        "history": final.history,
    }


def _no_lookup(query: grader.Query) -> Any:
    raise GroundTruthError("not needed: the task has no result")


class _Session:
    """Progress bookkeeping: records as they come, shows done/total, accuracy, rate, ETA."""

    def __init__(self, store: results.Store, total: int, skipped: int) -> None:
        self.store = store
        self.total = total
        self.recorded = 0
        self.unrecorded = 0
        self.correct = sum(bool(r["correct"]) for r in store.records)
        self._bar: Any = None
        self._task: Any = None
        self._skipped = skipped

    def progress(self, enabled: bool) -> Any:
        from contextlib import nullcontext

        if not enabled:
            return nullcontext()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]bench"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]}"),
            TextColumn("{task.fields[rate]} tasks/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(
            "bench", total=self.total, completed=self._skipped, acc=self._accuracy(), rate="-"
        )
        self._started = time.perf_counter()
        return self._bar

    def _accuracy(self) -> str:
        done = len(self.store.done)
        return f"{100.0 * self.correct / done:.1f}%" if done else "-"

    def finish(self, record: dict[str, Any] | None) -> None:
        if record is None:
            self.unrecorded += 1
        else:
            self.store.append(record)
            self.recorded += 1
            self.correct += bool(record["correct"])
        if self._bar is not None:
            elapsed = max(time.perf_counter() - self._started, 1e-9)
            self._bar.update(
                self._task,
                advance=1,
                acc=self._accuracy(),
                rate=f"{(self.recorded + self.unrecorded) / elapsed:.2f}",
            )
