"""Suite-wide options and fixtures.

Tests may read the reference data in ``../shared/medagentbench`` (CI has ``shared/`` beside the
clone); the project never copies that data. Anything that needs a real cluster is opt-in with
``--with-e2e`` and skipped otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from postgres import PostgresServer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# Shared test helpers (tests/support/*.py) import by module name under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--with-e2e",
        action="store_true",
        default=False,
        help="run end-to-end tests against the cluster of the current kubeconfig",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--with-e2e"):
        return
    skip = pytest.mark.skip(reason="needs a real cluster: pass --with-e2e")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mab_dir() -> Path:
    """The MedAgentBench reference data beside the clone (../shared/medagentbench)."""
    path = SHARED / "medagentbench"
    if not path.is_dir():
        pytest.skip("../shared/medagentbench is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server on 127.0.0.1 for the whole session, started on first request.

    Binaries as in tests/support/postgres.py (``make test`` installs Debian's postgresql where
    it can). Without them the requesting tests skip on a laptop and fail under CI, so CI cannot
    pass without running them. Tests that want a clean slate call ``create_database(name)``.
    """
    from postgres import PostgresServer, find_pg_bin

    if find_pg_bin() is None:
        missing = "PostgreSQL server binaries (initdb; apt-get install postgresql, or SARA_PG_BIN)"
        if os.environ.get("CI"):
            pytest.fail(f"test needs {missing}; make test installs them on CI")
        pytest.skip(f"test needs {missing}")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _agent_run_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every agent built from settings in a test keeps its runs in a fresh SQLite file (never
    in the checkout's ``var/``); tests that want another store say so explicitly."""
    path = tmp_path_factory.mktemp("runs") / "runs.db"
    monkeypatch.setenv("SARA_AGENT_STORE", f"sqlite:///{path}")
