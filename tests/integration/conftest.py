"""Real processes on 127.0.0.1 for the end-to-end benchmark tests.

Once per session: ``sara ehr generate --patients-from patients.json --patients 100 --scale small``
charts the first 100 real MedAgentBench patients (all 98 task patients among them; the other 400
stay demographics-only, as on the benchmark's server), ``sara fhir serve --load`` loads them
(``ehr_db``), a copy is served (``ehr_fhir``), and ``sara model serve --policy reference``
answers as the reference policy. Every process gets an OS-assigned port and is stopped in
teardown.

Loading about 200K records takes a minute or two, so the loaded SQLite database is cached outside
the repository (``$SARA_TEST_CACHE``, default ``~/.cache/sara-tests``) under a key hashing the
EHR generator's and FHIR server's sources and ``patients.json``: any change to them rebuilds it.
Each session serves a fresh copy; modules that write to the FHIR server serve one of their own
(``ehr_fhir_copy``), so the shared ``ehr_fhir`` stays as loaded. ``SARA_TEST_CACHE=off`` always
rebuilds.

Child processes inherit no ``SARA_AGENT_*`` variable from the test runner (only what a test passes
explicitly), and every ``sara agent serve`` started through ``start_sara`` keeps its run store in
a temporary directory (``--store``): never ``var/runs.db`` in the checkout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import SARA, Proc

REPO = Path(__file__).resolve().parents[2]
# The benchmark's shape: the first 100 patients charted (all 98 task patients among them), the
# other 400 demographics-only.
EHR_ARGS = ["--patients", "100", "--scale", "small", "--seed", "1"]


def _ehr_key(patients: Path) -> str:
    digest = hashlib.sha256(" ".join(EHR_ARGS).encode())
    for root in (REPO / "fhir" / "sara" / "ehr", REPO / "fhir" / "sara" / "fhir"):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".json", ".txt", ".sql"):
                digest.update(path.relative_to(REPO).as_posix().encode() + path.read_bytes())
    digest.update(patients.read_bytes())
    return digest.hexdigest()[:16]


def _fhir(db: Path, log: Path) -> Proc:
    return Proc(["fhir", "serve", "--db", str(db), "--log-level", "WARNING"], "/fhir/metadata", log)


def _build_ehr_db(patients: Path, db: Path) -> None:
    """Generate the charted EHR and load it into ``db`` through a real ``sara fhir serve``."""
    work = db.parent / f"build-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        ndjson = work / "ehr.ndjson"
        generate = [SARA, "ehr", "generate", "--patients-from", str(patients), *EHR_ARGS]
        subprocess.run(
            [*generate, "--out", str(ndjson)], check=True, capture_output=True, timeout=600
        )
        server = _fhir(work / "fhir.db", work / "fhir.log")
        server.start(timeout=1200, extra=["--load", str(ndjson)])
        server.stop()
        with sqlite3.connect(work / "fhir.db") as connection:  # fold any WAL into the file
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (work / "fhir.db").replace(db)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def ehr_db(mab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loaded EHR database (cached across sessions). Never served itself: servers get
    copies, so it stays exactly as loaded."""
    patients = mab_dir / "patients.json"
    setting = os.environ.get("SARA_TEST_CACHE", str(Path.home() / ".cache" / "sara-tests"))
    if setting == "off":
        db = tmp_path_factory.mktemp("ehr-build") / "fhir.db"
        _build_ehr_db(patients, db)
        return db
    cache = Path(setting)
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / f"ehr-{_ehr_key(patients)}.db"
    if not cached.exists():
        for stale in cache.glob("ehr-*.db"):
            stale.unlink()
        _build_ehr_db(patients, cached)
    return cached


def _serve_copy(db: Path, tmp: Path) -> Proc:
    """A FHIR server on a fresh copy of ``db`` in ``tmp`` (the caller stops it)."""
    shutil.copyfile(db, tmp / "fhir.db")
    server = _fhir(tmp / "fhir.db", tmp / "fhir.log")
    try:
        server.start(timeout=300)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def ehr_fhir(ehr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The embedded FHIR server holding the EHR charted for the real patients, shared by the
    session: tests that write to it use ``ehr_fhir_copy``."""
    server = _serve_copy(ehr_db, tmp_path_factory.mktemp("ehr"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ehr_fhir_copy(ehr_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A FHIR server of the module's own on a fresh copy of the same EHR: what the module
    writes (signed orders) never reaches ``ehr_fhir``."""
    tmp = tmp_path_factory.mktemp("ehr-copy")
    server = _serve_copy(ehr_db, tmp)
    yield server
    server.stop()
    for path in tmp.glob("fhir.db*"):  # a few hundred MB: not kept with pytest's old tmp dirs
        path.unlink()


def model_server(tmp: Path, latency: float = 0.0) -> Proc:
    server = Proc(
        ["model", "serve", "--policy", "reference", "--latency", str(latency)],
        "/v1/models",
        tmp / f"model-{latency}.log",
    )
    server.start(timeout=120)
    return server


@pytest.fixture(scope="session")
def reference_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    server = model_server(tmp_path_factory.mktemp("model"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slow_reference_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The reference policy with 0.2 s latency per completion: runs last long enough to
    interrupt."""
    server = model_server(tmp_path_factory.mktemp("model-slow"), latency=0.2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def start_sara(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start more ``sara`` processes on free ports: ``start_sara(args, ready_path, env)``.

    ``env`` is added to the process's environment at every (re)start. An ``agent serve`` without
    ``--store`` gets a fresh SQLite run store in a temporary directory. Every process started
    through it is stopped when the module's tests are done.
    """
    started: list[Proc] = []
    tmp = tmp_path_factory.mktemp("procs")

    def start(args: list[str], ready_path: str, env: dict[str, str] | None = None) -> Proc:
        n = len(started)
        if args[:2] == ["agent", "serve"] and "--store" not in args:
            args = [*args, "--store", f"sqlite:///{tmp / f'runs-{n}.db'}"]
        proc = Proc(args, ready_path, tmp / f"{args[0]}-{n}.log", env=dict(env or {}))
        started.append(proc)  # stopped in teardown even when it never became ready
        proc.start(timeout=120)
        return proc

    yield start
    for proc in started:
        proc.stop()
