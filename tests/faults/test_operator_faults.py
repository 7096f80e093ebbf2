"""Operator faults: the API server answers 409/500/503 to applies; a restart mid-rollout.

Against the Kubernetes emulator of tests/operator (``kube_emulator.Fault`` scripts one error
answer per request). A 5xx is a ``kopf.TemporaryError`` (``ApplyFailed``, retried); a 409 on
create turns into a read and a merge patch; every pass applies by name, so the children
converge with exactly one of each, however often the rollout is retried or restarted.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import kubernetes
import pytest
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from kube_emulator import Fault, SaraEmulator, run_operator, serve

from sara.operator import builders, errors, handlers, kube, model
from sara.operator.metrics import Metrics

pytestmark = [
    pytest.mark.timeout(60),
    # kmock 0.8 loads its bundled resource list with the deprecated importlib.resources API
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

NS = "ward"
REFERENCE = {"model": {"engine": "reference"}, "agent": {"replicas": 1}}
LISTS = {
    "Deployment": f"/apis/apps/v1/namespaces/{NS}/deployments",
    "StatefulSet": f"/apis/apps/v1/namespaces/{NS}/statefulsets",
    "Service": f"/api/v1/namespaces/{NS}/services",
    "ConfigMap": f"/api/v1/namespaces/{NS}/configmaps",
    "Secret": f"/api/v1/namespaces/{NS}/secrets",
    "NetworkPolicy": f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
}
CR_PATH = f"/apis/{model.GROUP}/v1alpha1/namespaces/{NS}/clinicalagents"


async def stored(emulator: SaraEmulator) -> Counter[tuple[str, str]]:
    """How many objects of each (kind, name) the API server holds."""
    found: Counter[tuple[str, str]] = Counter()
    async with aiohttp.ClientSession(base_url=str(emulator.url)) as s:
        for kind, path in LISTS.items():
            async with s.get(path) as r:
                items = (await r.json())["items"] if r.status == 200 else []
            found.update((kind, o["metadata"]["name"]) for o in items)
    return found


def expected(name: str) -> Counter[tuple[str, str]]:
    spec = model.parse(name, REFERENCE)
    children = builders.children(
        spec, model.Names(name, NS), model.Images(), api_key="k", include_seed=False
    )
    return Counter((c["kind"], c["metadata"]["name"]) for c in children if c["kind"] in LISTS)


async def test_apply_survives_409_and_5xx_and_converges_once(tmp_path: Path) -> None:
    async with serve(tmp_path) as emulator:
        kubernetes.config.load_kube_config(config_file=str(tmp_path / "kubeconfig"))
        cluster = kube.Cluster.from_default()
        spec = model.parse("a", REFERENCE)
        children = builders.children(
            spec, model.Names("a", NS), model.Images(), api_key="k", include_seed=False
        )
        emulator.faults += [
            Fault("POST", "statefulsets", "a-fhir", 500),
            Fault("POST", "deployments", "a-agent", 503),
            # created, but answered 409 (another writer got there, or the answer was lost)
            Fault("POST", "services", "a-model", 409, applied=True),
            Fault("POST", "secrets", "a-agent-api-keys", 409, applied=True),
        ]
        failures: list[kopf.TemporaryError] = []
        for _ in range(5):  # what Kopf does: retry the handler after each TemporaryError
            try:
                await cluster.apply_all(children)
                break
            except errors.ApplyFailed as exc:
                failures.append(exc)
        assert [str(f) for f in failures] == [
            "create StatefulSet/a-fhir: HTTP 500",
            "create Deployment/a-agent: HTTP 503",
        ]
        assert all(isinstance(f, kopf.TemporaryError) and f.delay == 10 for f in failures)
        assert all(f.served for f in emulator.faults)
        assert await stored(emulator) == expected("a")  # exactly one of each
        again = await cluster.apply_all(children)  # idempotent: nothing left to do
        assert again == {"unchanged": len(children)}
        assert await stored(emulator) == expected("a")


def fresh_registry() -> kopf.OperatorRegistry:
    """A new operator's handlers (no memory of the previous process)."""
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kopf.login_via_client)
    handlers.register(
        registry, model.OperatorConfig(status_interval=0.2), Metrics(CollectorRegistry())
    )
    return registry


async def eventually(check: Any, within: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_operator_restarted_mid_rollout_converges_without_duplicates(
    tmp_path: Path,
) -> None:
    async with (
        serve(tmp_path) as emulator,
        aiohttp.ClientSession(base_url=str(emulator.url)) as s,
    ):
        fault = Fault("POST", "deployments", "r-agent", 503)
        emulator.faults.append(fault)
        body = {
            "apiVersion": model.API_VERSION,
            "kind": model.KIND,
            "metadata": {"name": "r", "namespace": NS},
            "spec": REFERENCE,
        }
        async with run_operator(fresh_registry()):
            async with s.post(CR_PATH, json=body) as r:
                assert r.status < 300

            async def failed() -> bool:
                return fault.served

            assert await eventually(failed), "the rollout never met the injected 503"
            partial = await stored(emulator)
            assert ("Deployment", "r-agent") not in partial  # stopped mid-rollout
        # a new operator process, same cluster state: it resumes the rollout
        async with run_operator(fresh_registry()):

            async def accepted() -> bool:
                async with s.get(f"{CR_PATH}/r") as r:
                    conditions = (await r.json()).get("status", {}).get("conditions", [])
                return any(c["type"] == "Accepted" and c["status"] == "True" for c in conditions)

            assert await eventually(accepted), "the restarted operator did not converge"
            assert await stored(emulator) == expected("r")
        creates = Counter(
            (str(getattr(req.resource, "plural", "")), (req.data or {})["metadata"]["name"])
            for req in emulator.history
            if str(getattr(req.method, "value", req.method)).upper() == "POST"
            and isinstance(req.data, dict)
            and req.data.get("kind") != "Event"
            and (req.data.get("metadata") or {}).get("name")
        )
        # each child was created at most twice (once refused with 503, or once answered 409
        # after the restart), and the store holds exactly one of each
        assert max(creates.values()) <= 2
