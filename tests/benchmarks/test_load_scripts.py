"""The load benchmarks still run (tiny sizes; the real runs are in docs/benchmarks/load.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_load_agent_runs_tasks_and_streams_without_errors() -> None:
    out = run(
        "load_agent.py", "--tasks", "20", "--concurrency", "4", "--streams", "5",
        "--patients", "5",
    )  # fmt: skip
    assert "tasks completed                                                  20" in out, out
    assert "task errors                                                       0" in out, out
    assert "SSE stream errors                                                 0" in out, out
    assert out.rstrip().endswith("PASS")


def test_load_agent_soak_samples_memory() -> None:
    out = run(
        "load_agent.py", "--soak-seconds", "4", "--sample-seconds", "1", "--warmup-seconds", "1",
        "--concurrency", "2", "--streams", "2", "--patients", "5",
    )  # fmt: skip
    assert "RSS growth after warm-up" in out, out
    assert out.rstrip().endswith("PASS")


def test_load_fhir_mixes_reads_and_writes_without_errors() -> None:
    out = run("load_fhir.py", "--clients", "8", "--requests", "200", "--patients", "5")
    assert "create MedicationRequest" in out and "search Patient?identifier" in out, out
    assert out.rstrip().endswith("PASS")
