"""Run history benchmark: ``GET /v1/tasks`` pages at 100,000 stored tasks.

Fills an empty run store (SQLite in a temporary directory; PostgreSQL too with ``--postgres``)
with ``--tasks`` tasks shaped like the agent's own rows — 40 principals, 2,000 patients, created
over the last 60 days; mostly ``finished`` (a few ending in a model or task error), some
``cancelled`` and ``interrupted``, a few ``running``, and ``awaiting_approval`` tasks from the
last day, each with its pending action; each finished task carries a stored result of about
``--result-kb`` KiB (the bounded ``TaskResult``: the conversation, system prompt included; 18 KiB
is what a five-round task of ``agent_overhead.py`` stores). The rows go in with SQLAlchemy Core
``executemany`` through the store's own engine, after ``RunStore.open`` migrated the schema; no
events (a history page never reads them).

Then times ``list_tasks`` plus the page's summaries encoded as the route answers them (what
``GET /v1/tasks`` costs without HTTP), ``--calls`` calls per query after a few unmeasured ones,
a page of 50, newest first:

    no filter          the first page
    status             status=awaiting_approval (the sign-off queue: pending actions joined)
    patient            a random patient's runs
    principal          a random principal's runs
    since 7 days       created in the last week
    status+principal   awaiting_approval runs of a random principal (few: the page is not full)
    deep pages         no filter, following next_cursor for 20 pages; every page 2–21 timed

Target: p95 <= 50 ms for each. SQLite is left as the store leaves it (no ANALYZE); PostgreSQL is
ANALYZEd after the fill, as autovacuum would leave it. ``--postgres`` takes the URL of an empty
scratch database (the rows stay there) or ``auto`` (a throw-away local server, bench_postgres.py).

    .venv/bin/python benchmarks/run_history.py [--tasks 100000] [--calls 200] [--result-kb 18]
        [--postgres URL|auto] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench_postgres import describe, postgres_url
from sara.agent import prompts
from sara.agent.store.runs import RunStore, canonical, sha256
from sara.agent.store.schema import pending_actions, tasks

PRINCIPALS = 40
PATIENTS = 2_000
DAYS = 60
PAGE = 50
DEEP_PAGES = 20
WARM_UP_CALLS = 5
TARGET_P95_MS = 50.0
CHUNK = 1_000  # rows per executemany
APPROVAL_TTL = timedelta(hours=24)  # the fill's waiting tasks all fall inside it
OUTCOMES = (  # the loop's final statuses of finished tasks, roughly as a model leaves them
    ("completed", 0.93),
    ("task limit reached", 0.03),
    ("agent invalid action", 0.02),
    ("task error", 0.02),
)
INSTRUCTIONS = (
    "What's the most recent magnesium level of the patient {p} within last 24 hours?",
    "What is the average CBG of the patient {p} over the last 24 hours?",
    "Check patient {p}'s most recent potassium level. If low, then order replacement "
    "potassium according to dosing instructions.",
    "Order orthopedic surgery referral for patient {p}. Specify within the free text of "
    "the referral, 'Situation: acute left knee injury'.",
    "What's the age of the patient with name and DOB of Jane Doe 1962-04-21? ({p})",
)
SETTINGS = orjson.dumps(
    {
        "write_mode": "approve",
        "parse_mode": "strict",
        "max_rounds": 8,
        "model": "medagentbench-llm",
        "prompt": "medagentbench",
        "protocol": "medagentbench",
    }
).decode()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Rows:
    """Deterministic task rows (and pending actions) for the fill."""

    def __init__(self, count: int, result_kb: float, seed: int, now: datetime) -> None:
        self.count = count
        self.rng = random.Random(seed)
        self.now = now
        self.principals = [f"clinician-{i:02d}" for i in range(PRINCIPALS)]
        self.patients = [f"S{self.rng.randrange(1_000_000, 9_999_999)}" for _ in range(PATIENTS)]
        self.prompt = prompts.template("medagentbench")
        bundle = orjson.dumps(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Observation",
                            "status": "final",
                            "code": {"text": "MG"},
                            "effectiveDateTime": "2023-11-12T08:15:00+00:00",
                            "valueQuantity": {"value": 1.8, "unit": "mg/dL"},
                        }
                    }
                ]
                * 8,
            }
        ).decode()
        self.bundle = bundle
        self.result_bytes = int(result_kb * 1024)

    def _id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _result(self, task_id: str, patient: str, status: str, answer: str | None) -> str:
        history = [{"role": "user", "content": self.prompt + f"\nPatient MRN {patient}"}]
        size = len(self.prompt)
        turn = 0
        while size < self.result_bytes - 600:
            turn += 1
            history.append({"role": "agent", "content": f"GET Observation?patient={patient}"})
            history.append({"role": "user", "content": f"Here is the response: {self.bundle}"})
            size += len(self.bundle) + 90
        history.append({"role": "agent", "content": f"FINISH({answer})"})
        return canonical(
            {
                "status": status,
                "result": answer,
                "history": history,
                "rounds": turn + 1,
                "usage": {"prompt_tokens": 1200 * (turn + 1), "completion_tokens": 40},
                "elapsed_seconds": round(self.rng.uniform(2, 40), 3),
                "task_id": task_id,
                "error": "the model server answered 503" if status == "task error" else None,
            }
        )

    def chunks(self) -> Any:
        """Lists of (task rows, action rows), ``CHUNK`` tasks at a time."""
        rng = self.rng
        task_rows: list[dict[str, Any]] = []
        action_rows: list[dict[str, Any]] = []
        for _ in range(self.count):
            task_id = self._id()
            patient = rng.choice(self.patients)
            principal = rng.choice(self.principals)
            roll = rng.random()
            if roll < 0.005:
                status = "awaiting_approval"
                created = self.now - timedelta(seconds=rng.uniform(60, 86_000))
            elif roll < 0.0055:
                status = "running"
                created = self.now - timedelta(seconds=rng.uniform(1, 60))
            else:
                status = "finished"
                if roll < 0.035:
                    status = "interrupted"
                elif roll < 0.075:
                    status = "cancelled"
                created = self.now - timedelta(seconds=rng.uniform(60, DAYS * 86_400))
            took = timedelta(seconds=rng.uniform(2, 40))
            row: dict[str, Any] = {
                "id": task_id,
                "created_at": created,
                "updated_at": created + took,
                "finished_at": None,
                "status": status,
                "principal": principal,
                "patient": patient,
                "instruction": rng.choice(INSTRUCTIONS).format(p=patient),
                "context": "It's 2023-11-13T10:15:00+00:00 now",
                "settings": SETTINGS,
                "outcome": None,
                "answer": None,
                "result": None,
                "error": None,
                "reason": None,
                "checkpoint": None,
                "owner": None,
                "cancel_requested": False,
                "rounds": rng.randint(1, 6),
                "last_seq": rng.randint(4, 30),
            }
            if status == "finished":
                outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
                answer = f"[{rng.uniform(1.2, 2.6):.1f}]" if outcome == "completed" else None
                row.update(
                    finished_at=created + took,
                    outcome=outcome,
                    answer=answer,
                    result=self._result(task_id, patient, outcome, answer),
                    error="the model server answered 503" if outcome == "task error" else None,
                )
            elif status in ("interrupted", "cancelled"):
                row.update(
                    finished_at=created + took,
                    reason="client disconnected"
                    if status == "cancelled"
                    else "the agent shut down while this task ran; it was not re-run",
                )
            elif status == "running":
                row.update(owner="agent-0-1-bench", updated_at=created)
            else:  # awaiting_approval: the loop's state and the write it asked for
                row["checkpoint"] = canonical(
                    {
                        "history": [{"role": "user", "content": self.prompt}],
                        "rounds": 2,
                        "usage": {"prompt_tokens": 2400, "completion_tokens": 80},
                        "retried": False,
                        "active_seconds": 4.2,
                        "patient": f"Patient/{patient}",
                    }
                )
                payload = canonical(
                    {
                        "resourceType": "MedicationRequest",
                        "status": "active",
                        "intent": "order",
                        "subject": {"reference": f"Patient/{patient}"},
                        "medicationCodeableConcept": {"text": "potassium chloride 20 mEq"},
                    }
                )
                action_rows.append(
                    {
                        "id": self._id(),
                        "task_id": task_id,
                        "round": 2,
                        "method": "POST",
                        "url": "MedicationRequest",
                        "resource_type": "MedicationRequest",
                        "patient": patient,
                        "summary": f"Order potassium chloride 20 mEq for {patient}",
                        "payload": payload,
                        "payload_sha256": sha256(payload),
                        "status": "pending",
                        "created_at": created + took,
                        "expires_at": created + took + APPROVAL_TTL,
                    }
                )
            task_rows.append(row)
            if len(task_rows) == CHUNK:
                yield task_rows, action_rows
                task_rows, action_rows = [], []
        if task_rows:
            yield task_rows, action_rows


async def fill(store: RunStore, rows: Rows) -> dict[str, Any]:
    start = time.perf_counter()
    actions = 0
    for task_rows, action_rows in rows.chunks():
        async with store.engine.begin() as conn:
            await conn.execute(tasks.insert(), task_rows)
            if action_rows:
                await conn.execute(pending_actions.insert(), action_rows)
        actions += len(action_rows)
    seconds = time.perf_counter() - start
    if store.backend == "postgresql":
        async with store.engine.connect() as conn:
            await conn.execute(sa.text("COMMIT"))  # ANALYZE outside a transaction block
            await conn.execute(sa.text("ANALYZE"))
    return {"seconds": seconds, "actions": actions}


async def size_of(store: RunStore, url: str) -> str:
    if store.backend == "sqlite":
        path = Path(sa.make_url(url).database or "")
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    else:
        async with store.engine.connect() as conn:
            query = sa.text("SELECT pg_database_size(current_database())")
            total = int((await conn.execute(query)).scalar_one())
    return f"{total / 2**30:.2f} GiB" if total >= 2**30 else f"{total / 2**20:.0f} MiB"


@dataclass
class Query:
    name: str
    call: Callable[[random.Random], Awaitable[tuple[list[float], int]]]


def queries(store: RunStore, rows: Rows) -> list[Query]:
    """Each query returns the seconds of its page(s) and how many tasks they held."""

    async def page(**filters: Any) -> tuple[float, int, str | None]:
        start = time.perf_counter()
        found, next_cursor = await store.list_tasks(limit=PAGE, **filters)
        orjson.dumps({"items": [t.summary() for t in found], "next_cursor": next_cursor})
        return time.perf_counter() - start, len(found), next_cursor

    def one(**fixed: Any) -> Callable[[random.Random], Awaitable[tuple[list[float], int]]]:
        async def call(rng: random.Random) -> tuple[list[float], int]:
            filters = {k: (v(rng) if callable(v) else v) for k, v in fixed.items()}
            seconds, count, _ = await page(**filters)
            return [seconds], count

        return call

    async def deep(_rng: random.Random) -> tuple[list[float], int]:
        _, count, cursor = await page()
        times = []
        for _ in range(DEEP_PAGES):
            seconds, count, cursor = await page(cursor=cursor)
            times.append(seconds)
        return times, count

    def patient(rng: random.Random) -> str:
        return rng.choice(rows.patients)

    def principal(rng: random.Random) -> str:
        return rng.choice(rows.principals)

    week = rows.now - timedelta(days=7)
    return [
        Query("no filter, first page", one()),
        Query("status=awaiting_approval", one(status="awaiting_approval")),
        Query("patient=<random>", one(patient=patient)),
        Query("principal=<random>", one(principal=principal)),
        Query("since=7 days ago", one(since=week)),
        Query(
            "status=awaiting_approval+principal",
            one(status="awaiting_approval", principal=principal),
        ),
        Query(f"deep: cursor pages 2-{DEEP_PAGES + 1}", deep),
    ]


async def measure(url: str, args: argparse.Namespace, label: str) -> dict[str, Any]:
    store = await RunStore.open(url)
    try:
        async with store.engine.connect() as conn:
            stored = (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()
        if stored:
            raise SystemExit(
                f"{label}: the run store already holds {stored} tasks; give an empty one"
            )
        now = datetime.now(UTC)
        rows = Rows(args.tasks, args.result_kb, args.seed, now)
        filled = await fill(store, rows)
        size = await size_of(store, url)
        results = []
        for query in queries(store, rows):
            rng = random.Random(args.seed)
            for _ in range(WARM_UP_CALLS):
                await query.call(rng)
            samples: list[float] = []
            counts: list[int] = []
            calls = args.calls // DEEP_PAGES if query.name.startswith("deep") else args.calls
            for _ in range(max(1, calls)):
                times, count = await query.call(rng)
                samples += times
                counts.append(count)
            p95 = pct(samples, 0.95) * 1000
            results.append(
                {
                    "backend": label,
                    "query": query.name,
                    "pages": len(samples),
                    "rows": statistics.fmean(counts),
                    "p50_ms": pct(samples, 0.50) * 1000,
                    "p95_ms": p95,
                    "max_ms": max(samples) * 1000,
                    "ok": p95 <= TARGET_P95_MS,
                }
            )
        return {"fill": filled, "size": size, "results": results, "backend": label}
    finally:
        await store.close()


def report(run: dict[str, Any], tasks_count: int) -> None:
    fill_ = run["fill"]
    print(
        f"{run['backend']}: filled {tasks_count:,} tasks (+{fill_['actions']:,} pending actions) "
        f"in {fill_['seconds']:.1f} s ({tasks_count / fill_['seconds']:,.0f} tasks/s); "
        f"store {run['size']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks to store")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per query")
    parser.add_argument("--result-kb", type=float, default=18.0, help="stored result per task")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", metavar="URL", help="also PostgreSQL (URL, or auto)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="sara-history-") as tmp:
        runs.append(asyncio.run(measure(f"sqlite:///{tmp}/runs.db", args, "sqlite")))
    with postgres_url(args.postgres, "bench_history") as pg:
        if pg:
            runs.append(asyncio.run(measure(pg, args, "postgresql")))
    print(
        f"Run history: list_tasks + the page's summaries (GET /v1/tasks without HTTP), "
        f"page of {PAGE}, {args.tasks:,} stored tasks, {args.result_kb:g} KiB results"
    )
    for run in runs:
        report(run, args.tasks)
    if args.postgres:
        print(f"postgresql: {describe(args.postgres)}, ANALYZEd after the fill")
    head = (
        f"{'backend':<10} {'query':<36} {'pages':>5} {'rows':>5} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'max ms':>7}"
    )
    print(f"{head} {'target':>13} {'ok':>3}")
    print("-" * (len(head) + 18))
    ok = True
    for run in runs:
        for r in run["results"]:
            ok = ok and r["ok"]
            target, ok_text = f"p95 <= {TARGET_P95_MS:g} ms", "yes" if r["ok"] else "NO"
            print(
                f"{r['backend']:<10} {r['query']:<36} {r['pages']:>5d} {r['rows']:>5.0f} "
                f"{r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['max_ms']:>7.1f} {target:>13} "
                f"{ok_text:>3}"
            )
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
