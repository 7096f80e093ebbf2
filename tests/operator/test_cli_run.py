"""``sara operator run`` as a real process against the emulator: liveness, metrics, reconcile."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from kube_emulator import SaraEmulator, serve

pytestmark = [
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

SARA = str(Path(sys.executable).with_name("sara"))
CR_PATH = "/apis/clinical.sara.dev/v1alpha1/namespaces/{ns}/clinicalagents"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[SaraEmulator]:
    async with serve(tmp_path, namespaces=("lab",)) as emu:
        yield emu


async def wait_http(session: aiohttp.ClientSession, url: str, within: float = 20) -> str:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            async with session.get(url) as r:
                if r.status == 200:
                    return await r.text()
        except aiohttp.ClientError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{url} did not answer 200 within {within}s")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("scope", [["--namespace", "lab"], []], ids=["namespaced", "cluster"])
async def test_run_serves_liveness_and_metrics_and_reconciles(
    emulator: SaraEmulator, tmp_path: Path, scope: list[str]
) -> None:
    live, metrics = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")}
    args = [SARA, "operator", "run", *scope, "--liveness-port", str(live)]
    args += ["--metrics-port", str(metrics), "--status-interval", "1"]
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    failure: BaseException | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await wait_http(session, f"http://127.0.0.1:{live}/healthz")
            body = {
                "apiVersion": "clinical.sara.dev/v1alpha1",
                "kind": "ClinicalAgent",
                "metadata": {"name": "cli", "namespace": "lab"},
                "spec": {"model": {"engine": "reference"}},
            }
            path = str(emulator.url) + CR_PATH.format(ns="lab")
            async with session.post(path, json=body) as r:
                assert r.status < 300
            deploy = str(emulator.url) + "/apis/apps/v1/namespaces/lab/deployments/cli-agent"
            await wait_http(session, deploy)
            # the Deployment exists before the reconcile handler has finished (and observed
            # its duration): scrape until it has, within the same bound as the waits above
            wanted = 'sara_operator_reconcile_seconds_count{handler="reconcile"}'
            deadline = asyncio.get_running_loop().time() + 20
            text = await wait_http(session, f"http://127.0.0.1:{metrics}/metrics")
            while wanted not in text and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
                text = await wait_http(session, f"http://127.0.0.1:{metrics}/metrics")
            assert wanted in text
    except AssertionError as exc:
        failure = exc
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert failure is None, f"{failure}\n--- operator stderr ---\n{err.decode()[-4000:]}"
    assert b"Traceback" not in err, err.decode()[-4000:]
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)  # JSON logs only
