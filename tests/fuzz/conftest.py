"""Hypothesis profiles for the fuzz tests, and real servers on 127.0.0.1 for the API fuzzing.

``ci`` (the default) keeps the whole folder under a minute on two cores; ``SARA_FUZZ=long``
selects ``long``, an opt-in run with many more examples per property and per API operation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import fuzzapps
import httpx
import pytest
from hypothesis import HealthCheck, settings
from inthread import serve_in_thread

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=_QUIET)
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("SARA_FUZZ", "ci"))


@pytest.fixture(scope="session")
def agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The agent API (temp SQLite run store, one key, fake model and FHIR) on 127.0.0.1."""
    app = fuzzapps.agent(tmp_path_factory.mktemp("agent") / "runs.db")
    with serve_in_thread(app, lifespan="on", log_level="error") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def fhir_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded FHIR server on a temp database holding :data:`fuzzapps.FHIR_SEED`."""
    app = fuzzapps.fhir(tmp_path_factory.mktemp("fhir") / "fhir.db")
    with serve_in_thread(app, lifespan="on", log_level="error") as port:
        url = f"http://127.0.0.1:{port}"
        for resource in fuzzapps.FHIR_SEED:
            path = f"/fhir/{resource['resourceType']}/{resource['id']}"
            httpx.put(url + path, json=resource, timeout=10).raise_for_status()
        yield url
