"""The embedded FHIR server under 200 concurrent clients, mixed reads and writes (issue 15, §5).

Starts ``sara fhir serve --synthetic P`` on a free port of 127.0.0.1 (the synthetic EHR, seed 1,
a fresh SQLite file), reads its patients, then ``--clients C`` asyncio clients (httpx, one
keep-alive connection each) send ``--requests N`` requests between them, or stop at
``--seconds`` — whichever comes first. Each request is drawn (seeded) from the mix:

    80 % reads   Observation?patient=MRN&code=MG|GLU|K|A1C&_count=5000   50 %
                 Patient?identifier=MRN                                  20 %
                 Patient/MRN                                             10 %
    20 % writes  POST MedicationRequest (IV magnesium, as the agent orders it)   10 %
                 POST Observation (a blood pressure, as the agent charts it)      10 %

An error is a transport exception or any status but 200 (reads) / 201 (writes). The table
gives requests, errors and latency percentiles per kind and in all; the server's RSS before and
after. The client runs in this process on the same machine: on 2 cores it takes a good part of
the CPU (benchmarks/fhir_search.py uses aiohttp for that reason; httpx here, as the agent uses).

    .venv/bin/python benchmarks/load_fhir.py [--clients 200] [--requests 20000] [--seconds 120]
        [--patients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

import local_stack

MIB = 1024 * 1024
CODES = ("MG", "GLU", "K", "A1C")
MIX = (  # kind, weight (percent)
    ("search Observation?patient&code", 50),
    ("search Patient?identifier", 20),
    ("read Patient/{id}", 10),
    ("create MedicationRequest", 10),
    ("create Observation", 10),
)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def medication_request(mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0338-1715-40"}],
            "text": "Magnesium sulfate in water",
        },
        "subject": {"reference": f"Patient/{mrn}"},
        "authoredOn": "2023-11-13T10:15:00+00:00",
        "dosageInstruction": [
            {
                "route": "IV",
                "doseAndRate": [
                    {
                        "doseQuantity": {"value": 1, "unit": "g"},
                        "rateQuantity": {"value": 1, "unit": "h"},
                    }
                ],
            }
        ],
    }


def observation(mrn: str, n: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": {"text": "BP"},
        "effectiveDateTime": "2023-11-13T10:15:00+00:00",
        "valueString": f"{110 + n % 30}/{70 + n % 15} mmHg",
        "subject": {"reference": f"Patient/{mrn}"},
    }


class Mix:
    def __init__(self, mrns: list[str], total: int, deadline: float, seed: int) -> None:
        self.mrns = mrns
        self.total = total
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.kinds = [k for k, _ in MIX]
        self.weights = [w for _, w in MIX]
        self.sent = 0
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)

    def next(self) -> tuple[str, str, str, dict[str, Any] | None] | None:
        if self.sent >= self.total or time.monotonic() >= self.deadline:
            return None
        self.sent += 1
        kind = self.rng.choices(self.kinds, self.weights)[0]
        mrn = self.rng.choice(self.mrns)
        if kind.startswith("search Observation"):
            return (
                kind,
                "GET",
                f"Observation?patient={mrn}&code={self.rng.choice(CODES)}&_count=5000",
                None,
            )
        if kind.startswith("search Patient"):
            return kind, "GET", f"Patient?identifier={mrn}", None
        if kind.startswith("read"):
            return kind, "GET", f"Patient/{mrn}", None
        if kind == "create MedicationRequest":
            return kind, "POST", "MedicationRequest", medication_request(mrn)
        return kind, "POST", "Observation", observation(mrn, self.sent)


async def client(url: str, mix: Mix, seconds: float) -> None:
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=url, timeout=seconds, limits=limits, trust_env=False, headers=headers
    ) as c:
        while (job := mix.next()) is not None:
            kind, method, path, body = job
            began = time.perf_counter()
            try:
                if body is None:
                    r = await c.get(path)
                else:
                    r = await c.post(path, json=body)
                await r.aread()
            except httpx.HTTPError as exc:
                mix.errors[kind][type(exc).__name__] += 1
                continue
            mix.latencies[kind].append(time.perf_counter() - began)
            if r.status_code != (200 if method == "GET" else 201):
                mix.errors[kind][f"HTTP {r.status_code}"] += 1


async def drive(url: str, mrns: list[str], args: Any) -> tuple[Mix, float]:
    mix = Mix(mrns, args.requests, time.monotonic() + args.seconds, args.seed)
    warm = Mix(mrns, 200, time.monotonic() + 30, args.seed + 1)  # warm-up, not counted
    await asyncio.gather(*(client(url, warm, args.timeout) for _ in range(10)))
    started = time.perf_counter()
    await asyncio.gather(*(client(url, mix, args.timeout) for _ in range(args.clients)))
    return mix, time.perf_counter() - started


def report(
    mix: Mix, wall: float, args: Any, rss: tuple[int, int], cpu: tuple[float, float]
) -> bool:
    print(
        f"FHIR server load: {args.clients} concurrent clients (httpx), {args.patients} synthetic "
        f"patients, 80 % reads / 20 % writes"
    )
    head = (
        f"{'kind':<34} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8}"
    )
    print(head)
    print("-" * len(head))
    every: list[float] = []
    for kind, _ in MIX:
        lat = [x * 1000 for x in mix.latencies[kind]]
        every += lat
        errors = sum(mix.errors[kind].values())
        print(
            f"{kind:<34} {len(lat) + errors:>8d} {errors:>6d} {len(lat) / wall:>8.0f} "
            f"{pct(lat, 0.5):>8.1f} {pct(lat, 0.95):>8.1f} {pct(lat, 0.99):>8.1f}"
        )
    errors = sum(sum(c.values()) for c in mix.errors.values())
    print(
        f"{'all':<34} {len(every) + errors:>8d} {errors:>6d} {len(every) / wall:>8.0f} "
        f"{pct(every, 0.5):>8.1f} {pct(every, 0.95):>8.1f} {pct(every, 0.99):>8.1f}"
    )
    print(
        f"wall time {wall:.1f} s; FHIR server RSS {rss[0] / MIB:.0f} MiB before, "
        f"{rss[1] / MIB:.0f} MiB after"
    )
    n = max(1, len(every) + errors + 200)  # the warm-up's 200 included
    print(
        f"CPU per request: FHIR server {cpu[0] * 1000 / n:.2f} ms, load client (this process) "
        f"{cpu[1] * 1000 / n:.2f} ms"
    )
    for kind, kinds in mix.errors.items():
        if kinds:
            print(f"{kind} errors: " + ", ".join(f"{k}: {v}" for k, v in kinds.most_common()))
    ok = errors == 0 and len(every) > 0
    print("PASS" if ok else "FAIL")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=20_000, help="requests in all")
    parser.add_argument("--seconds", type=float, default=120, help="stop after, at the latest")
    parser.add_argument("--patients", type=int, default=50, help="synthetic EHR patients")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per request")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sara-load-fhir-"))
    server = local_stack.fhir(tmp, args.patients)
    try:
        server.spawn()
        server.wait_ready(300)
        bundle = httpx.get(
            f"{server.root}/fhir/Patient?_count=1000", timeout=60, trust_env=False
        ).json()
        mrns = sorted(e["resource"]["id"] for e in bundle.get("entry", []))
        before = local_stack.rss_bytes(server.pid)
        cpu = (local_stack.cpu_seconds(server.pid), time.process_time())
        mix, wall = asyncio.run(drive(f"{server.root}/fhir/", mrns, args))
        after = local_stack.rss_bytes(server.pid)
        cpu = (local_stack.cpu_seconds(server.pid) - cpu[0], time.process_time() - cpu[1])
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if report(mix, wall, args, (before, after), cpu) else 1)


if __name__ == "__main__":
    main()
