"""Real ``sara`` processes on free ports of 127.0.0.1 for the load benchmarks (load_agent.py,
load_fhir.py), as the tests start them (``tests/support/procs.py``): start, wait until ready,
read their memory and CPU time, stop. Each logs to a file in the run's temporary folder; none
inherits a ``SARA_AGENT_*`` variable from the caller's shell.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from procs import Proc


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (psutil when installed, else /proc/PID/status VmRSS)."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {pid}") from None
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (psutil, else /proc/PID/stat)."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def fhir(tmp: Path, patients: int, log_level: str = "WARNING") -> Proc:
    """``sara fhir serve`` seeding ``patients`` synthetic patients (seed 1) into ``tmp``."""
    return Proc(
        ["fhir", "serve", "--db", str(tmp / "fhir.db"), "--synthetic", str(patients),
         "--seed", "1", "--log-level", log_level],
        "/fhir/metadata",
        tmp / "fhir.log",
    )  # fmt: skip


def model(tmp: Path, latency: float = 0.0) -> Proc:
    """The reference policy (not a language model) as an OpenAI-compatible server."""
    return Proc(
        ["model", "serve", "--policy", "reference", "--latency", str(latency),
         "--log-level", "WARNING"],
        "/v1/models",
        tmp / "model.log",
    )  # fmt: skip


def stop_all(procs: list[Proc]) -> None:
    for proc in reversed(procs):
        proc.stop()
