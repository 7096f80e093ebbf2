"""Real server processes on 127.0.0.1 and real clients: the benchmark harness's own calls
(``requests``), fhirpy (async), fhirclient; restart durability after SIGKILL; bounded load.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from sara.fhir import ingest


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ehr") / "ehr.ndjson"
    with path.open("w") as fh:
        for res in ingest.synthetic(2, 3, "small"):
            fh.write(json.dumps(res) + "\n")
    return path


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, data_file: Path, spawn: type[Any]
) -> Iterator[Any]:
    db = tmp_path_factory.mktemp("db") / "fhir.db"
    srv = spawn(db, "--load", str(data_file))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def mrn(data_file: Path) -> str:
    first = json.loads(data_file.read_text().split("\n", 1)[0])
    return str(first["id"])


def test_harness_style_get(server: Any, mrn: str) -> None:
    """MedAgentBench: requests.get(url + '&_format=json'); dict only if plain application/json."""
    url = f"{server.base}Observation?patient={mrn}&code=GLU"
    response = requests.get(url + "&_format=json", timeout=30)
    response.raise_for_status()
    assert response.headers["Content-Type"] != "application/json"
    assert response.headers["Content-Type"] == "application/fhir+json;charset=UTF-8"
    doc = json.loads(response.text)
    assert doc["resourceType"] == "Bundle"
    assert all(e["resource"]["code"]["text"] == "GLU" for e in doc["entry"])


def test_error_reason_phrase_is_empty(server: Any) -> None:
    response = requests.get(f"{server.base}Patient?legal-sex=male&_format=json", timeout=30)
    assert response.status_code == 400
    assert response.reason == ""
    with pytest.raises(requests.HTTPError, match=r"^400 Client Error:  for url: "):
        response.raise_for_status()
    assert "HAPI-0524" in response.text


async def test_fhirpy_sort_count_and_paging(server: Any, mrn: str) -> None:
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(server.base.rstrip("/"))
    search = client.resources("Observation").search(patient=mrn, code="GLU")
    latest = await search.sort("-date").limit(1).fetch()
    everything = await search.limit(7).fetch_all()  # follows next links, 7 per page
    assert len(everything) > 14
    dates = sorted(str(o["effectiveDateTime"]) for o in everything)
    assert latest[0]["effectiveDateTime"] == dates[-1]
    ids = [o["id"] for o in everything]
    assert ids == sorted(ids, key=int)  # load order without _sort
    assert len(set(ids)) == len(ids)
    patient = await client.resources("Patient").search(identifier=mrn).first()
    assert patient is not None and patient["id"] == mrn


def test_fhirclient_search_and_read(server: Any, mrn: str) -> None:
    from fhirclient import client
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "sara-test", "api_base": server.base})
    found = list(Patient.where(struct={"identifier": mrn}).perform_resources_iter(smart.server))
    assert [p.id for p in found] == [mrn]
    read = Patient.read(mrn, smart.server)
    assert read.birthDate is not None


async def test_bounded_concurrent_load_has_no_errors(server: Any, mrn: str) -> None:
    urls = [
        f"{server.base}Patient?identifier={mrn}",
        f"{server.base}Observation?patient={mrn}&code=GLU&_count=5000",
        f"{server.base}Observation?patient={mrn}&code=GLU&_sort=-date&_count=1",
    ]
    statuses: list[int] = []
    deadline = time.monotonic() + 2.0

    async def worker(n: int, http: httpx.AsyncClient) -> None:
        i = n
        while time.monotonic() < deadline and i < n + 40:
            statuses.append((await http.get(urls[i % 3])).status_code)
            i += 1

    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(worker(n, http) for n in range(50)))
    assert statuses and set(statuses) == {200}


def test_restart_after_kill_keeps_committed_writes(tmp_path: Path, spawn: type[Any]) -> None:
    db = tmp_path / "crash.db"
    first = spawn(db)
    created: list[dict[str, Any]] = []
    try:
        for i in range(3):
            response = requests.post(
                f"{first.base}Patient",
                json={"resourceType": "Patient", "name": [{"family": f"Crash{i}"}]},
                timeout=30,
            )
            assert response.status_code == 201
            created.append(response.json())
    finally:
        first.stop(signal.SIGKILL)  # no clean shutdown
    second = spawn(db)
    try:
        for res in created:
            back = requests.get(f"{second.base}Patient/{res['id']}", timeout=30)
            assert back.status_code == 200
            assert back.json() == res
        more = requests.post(f"{second.base}Patient", json={"resourceType": "Patient"}, timeout=30)
        assert int(more.json()["id"]) > max(int(r["id"]) for r in created)
    finally:
        second.stop()


def test_serve_rejects_bad_flags_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sara.cli",
            "fhir",
            "serve",
            "--scale",
            "huge",
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "error: --scale must be one of small, full, not 'huge'"


def test_serve_on_a_taken_port_fails_at_once_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cmd = [sys.executable, "-m", "sara.cli", "fhir", "serve", "--port", port]
        cmd += ["--db", str(tmp_path / "x.db"), "--synthetic", "50"]
        started = time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use); stop what uses it "
        "or choose another port with --port"
    )
    assert not (tmp_path / "x.db").exists()  # refused before seeding 50 patients
    assert time.monotonic() - started < 30


def test_serve_seeds_from_the_generator_once(tmp_path: Path, spawn: type[Any]) -> None:
    db = tmp_path / "seeded.db"
    srv = spawn(db, "--synthetic", "1", "--seed", "4", "--scale", "small")
    try:
        total = requests.get(f"{srv.base}Observation?_summary=count", timeout=30).json()["total"]
        assert total > 100
        patients = requests.get(f"{srv.base}Patient", timeout=30).json()
        assert patients["total"] == 1
    finally:
        srv.stop()
    again = spawn(db, "--synthetic", "1", "--seed", "9")  # not empty: no second seed
    try:
        count = requests.get(f"{again.base}Observation?_summary=count", timeout=30).json()["total"]
        assert count == total
    finally:
        again.stop()
