"""The operator (Kopf) against kmock's Kubernetes emulator, extended in ``kube_emulator.py``.

Readiness is simulated by patching the children's ``/status`` as the kubelet and controllers
would. The emulator does no garbage collection: deletion checks the owner references.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from kube_emulator import SaraEmulator, run_operator, serve
from prometheus_client import CollectorRegistry

from sara.operator import handlers, model
from sara.operator.metrics import Metrics

pytestmark = [
    # kmock 0.8 loads its bundled resource list with the deprecated importlib.resources API
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]

NS = "ward"
CR_PATH = f"/apis/clinical.sara.dev/v1alpha1/namespaces/{NS}/clinicalagents"
PATHS = {
    "Deployment": f"/apis/apps/v1/namespaces/{NS}/deployments",
    "StatefulSet": f"/apis/apps/v1/namespaces/{NS}/statefulsets",
    "Job": f"/apis/batch/v1/namespaces/{NS}/jobs",
    "Service": f"/api/v1/namespaces/{NS}/services",
    "ConfigMap": f"/api/v1/namespaces/{NS}/configmaps",
    "Secret": f"/api/v1/namespaces/{NS}/secrets",
    "PersistentVolumeClaim": f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
    "NetworkPolicy": f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
    "ServiceMonitor": f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/servicemonitors",
    "Event": f"/api/v1/namespaces/{NS}/events",
}

REFERENCE = {"model": {"engine": "reference"}, "agent": {"replicas": 1}}
VLLM = {"model": {"uri": "hf://org/model", "vllm": {"maxModelLen": 8192}}}
POSTGRESQL = {"type": "postgresql", "postgresql": {"urlSecretRef": {"name": "db", "key": "url"}}}


class Api:
    """A small async client for the emulator (the sync kubernetes client would block it)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.s = session

    async def get(self, path: str) -> dict[str, Any] | None:
        async with self.s.get(path) as r:
            return None if r.status == 404 else await r.json()  # type: ignore[no-any-return]

    async def items(self, kind: str) -> list[dict[str, Any]]:
        found = await self.get(PATHS[kind])
        return list(found["items"]) if found else []

    async def names(self, kind: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in await self.items(kind))

    async def create_cr(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": model.API_VERSION,
            "kind": model.KIND,
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
        async with self.s.post(CR_PATH, json=body) as r:
            assert r.status < 300, await r.text()
            return await r.json()  # type: ignore[no-any-return]

    async def patch(self, path: str, body: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.s.patch(path, json=body, headers=headers) as r:
            assert r.status < 300, await r.text()

    async def delete(self, path: str) -> None:
        async with self.s.delete(path) as r:
            assert r.status < 300, await r.text()

    async def cr(self, name: str) -> dict[str, Any]:
        found = await self.get(f"{CR_PATH}/{name}")
        assert found is not None
        return found

    async def condition(self, name: str, type_: str) -> dict[str, Any]:
        for c in (await self.cr(name)).get("status", {}).get("conditions", []):
            if c["type"] == type_:
                return c  # type: ignore[no-any-return]
        return {}

    async def ready(self, kind: str, name: str, **status: Any) -> None:
        await self.patch(f"{PATHS[kind]}/{name}/status", {"status": status})


async def eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Await ``check()`` until it returns something truthy (async or not)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {within}s: {check}")
        await asyncio.sleep(0.05)


def new_registry(interval: float = 0.2) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kopf.login_via_client)
    config = model.OperatorConfig(status_interval=interval)
    handlers.register(registry, config, Metrics(CollectorRegistry()))
    return registry


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[SaraEmulator]:
    async with serve(tmp_path) as emu:
        yield emu


@pytest.fixture
async def api(emulator: SaraEmulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(base_url=str(emulator.url)) as session:
        yield Api(session)


def owners(obj: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences", [])]


async def test_create_builds_every_child_owned_and_reports_status(api: Api) -> None:
    async with run_operator(new_registry()):
        cr = await api.create_cr("a", REFERENCE)
        uid = cr["metadata"]["uid"]
        await eventually(lambda: api.names("Deployment"))
        await eventually(lambda: api.condition("a", "Accepted"))
        assert await api.names("Deployment") == ["a-agent", "a-model"]
        assert await api.names("StatefulSet") == ["a-fhir"]
        assert await api.names("Service") == ["a-agent", "a-fhir", "a-fhir-headless", "a-model"]
        assert await api.names("ConfigMap") == ["a-fhir-config"]
        assert await api.names("Secret") == ["a-agent-api-keys"]
        assert await api.names("NetworkPolicy") == ["a-agent", "a-fhir", "a-model"]
        assert await api.names("Job") == []  # the seed waits for the FHIR server
        assert await api.names("ServiceMonitor") == []  # no Prometheus Operator CRD here
        for kind in ("Deployment", "StatefulSet", "Service", "ConfigMap", "Secret"):
            for obj in await api.items(kind):
                assert owners(obj) == [uid], obj["metadata"]["name"]
                assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "a"
        accepted = await api.condition("a", "Accepted")
        assert accepted["status"] == "True" and accepted["observedGeneration"] == 1
        body = await api.cr("a")
        assert body["status"]["phase"] in ("Pending", "Progressing")
        assert body["metadata"]["finalizers"] == ["clinical.sara.dev/operator"]
        assert "clinical.sara.dev/last-handled-configuration" in body["metadata"]["annotations"]
        assert "kopf" not in body["status"]  # Kopf's progress stays in annotations
        assert body["status"]["endpoints"]["agent"] == f"http://a-agent.{NS}.svc:8000"


async def test_status_follows_children_and_seeds_once(api: Api) -> None:
    async with run_operator(new_registry()):
        await api.create_cr("b", REFERENCE)
        await eventually(lambda: api.condition("b", "Accepted"))  # all children applied
        await api.ready("Deployment", "b-model", availableReplicas=1)
        await api.ready("Deployment", "b-agent", availableReplicas=1)
        model_ready = await eventually(lambda: _status_is(api, "b", "ModelReady", "True"))
        assert model_ready["reason"] == "Available"
        assert (await api.condition("b", "Ready"))["status"] == "False"
        await api.ready("StatefulSet", "b-fhir", readyReplicas=1)
        await eventually(lambda: api.names("Job"))  # created only now that HAPI is ready
        [job] = await api.items("Job")
        assert owners(job) == [(await api.cr("b"))["metadata"]["uid"]]
        seeding = await eventually(lambda: _status_is(api, "b", "FHIRReady", "False", "Seeding"))
        assert seeding["message"] == "loading the synthetic EHR"
        await api.ready("Job", "b-seed", succeeded=1)
        ready = await eventually(lambda: _status_is(api, "b", "Ready", "True"))
        assert ready["reason"] == "AllReady"
        body = await api.cr("b")
        assert body["status"]["phase"] == "Ready" and body["status"]["seedCompleted"] is True
        # the Job is gone (e.g. deleted by hand): never re-created, still Ready
        await api.delete(f"{PATHS['Job']}/b-seed")
        await asyncio.sleep(0.8)
        assert await api.names("Job") == []
        assert (await api.condition("b", "Ready"))["status"] == "True"
        # transitions were announced as Events, with no patient data possible in them
        events = await api.items("Event")
        reasons = {e["reason"] for e in events}
        assert {"ModelReady", "FHIRReady", "AgentReady", "Ready", "Seeding"} <= reasons
        for e in events:
            assert e["involvedObject"]["name"] == "b"


async def _status_is(
    api: Api, name: str, type_: str, status: str, reason: str | None = None
) -> dict[str, Any] | None:
    c = await api.condition(name, type_)
    if c.get("status") == status and (reason is None or c.get("reason") == reason):
        return c
    return None


async def test_update_patches_children_in_place_and_prunes(api: Api) -> None:
    async with run_operator(new_registry()):
        await api.create_cr("c", VLLM)
        await eventually(lambda: api.names("Deployment"))
        await eventually(lambda: api.condition("c", "Accepted"))
        before = {o["metadata"]["name"]: o for o in await api.items("Deployment")}
        pvcs = await api.items("PersistentVolumeClaim")
        # the weights cache and the run store outlive the ClinicalAgent
        assert {p["metadata"]["name"] for p in pvcs} == {"c-agent-runs", "c-model-cache"}
        assert all(owners(p) == [] for p in pvcs)
        assert "--max-model-len=8192" in _container(before["c-model"])["args"]
        assert before["c-agent"]["spec"]["strategy"] == {"type": "Recreate"}

        spec = copy.deepcopy(VLLM)
        spec["model"]["vllm"] = {"maxModelLen": 4096, "maxNumSeqs": 16}
        spec["agent"] = {"replicas": 5, "store": POSTGRESQL}  # more replicas: a shared store
        spec["fhir"] = {"mode": "external", "external": {"baseUrl": "https://fhir.h/R4"}}
        spec["agent"]["apiKeySecretRef"] = {"name": "own-keys", "key": "keys"}
        assert await api.names("Secret") == ["c-agent-api-keys"]
        await api.patch(f"{CR_PATH}/c", {"spec": spec})

        async def model_patched() -> bool:
            dep = await api.get(f"{PATHS['Deployment']}/c-model")
            return dep is not None and "--max-model-len=4096" in _container(dep)["args"]

        await eventually(model_patched)
        await eventually(lambda: _gen_observed(api, "c", 2))
        after = {o["metadata"]["name"]: o for o in await api.items("Deployment")}
        args = _container(after["c-model"])["args"]
        assert "--max-num-seqs=16" in args and "--max-model-len=8192" not in args
        assert after["c-agent"]["spec"]["replicas"] == 5
        assert after["c-agent"]["spec"]["strategy"]["type"] == "RollingUpdate"
        env = {e["name"]: e.get("value") for e in _container(after["c-agent"])["env"]}
        assert env["SARA_AGENT_FHIR_URL"] == "https://fhir.h/R4/"
        assert env["SARA_AGENT_STORE"] is None  # from the Secret now, not the PVC's file
        agent_pod = after["c-agent"]["spec"]["template"]["spec"]
        assert [v["name"] for v in agent_pod["volumes"]] == ["api-keys"]
        for name in ("c-model", "c-agent"):  # patched, not re-created
            assert after[name]["metadata"]["uid"] == before[name]["metadata"]["uid"]
        # FHIR mode external: the managed server and its policy are gone, the rest stays
        assert await api.names("StatefulSet") == []
        assert await api.names("ConfigMap") == []
        assert await api.names("Service") == ["c-agent", "c-model"]
        assert await api.names("NetworkPolicy") == ["c-agent", "c-model"]
        # PVCs are never pruned: the SQLite run store's history stays for a switch back
        assert await api.names("PersistentVolumeClaim") == ["c-agent-runs", "c-model-cache"]
        assert await api.names("Secret") == []  # the generated key gave way to the given one
        fhir = await api.condition("c", "FHIRReady")
        assert fhir["status"] == "True" and fhir["reason"] == "External"


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


async def _gen_observed(api: Api, name: str, generation: int) -> bool:
    st = (await api.cr(name)).get("status", {})
    return bool(st.get("observedGeneration") == generation)


async def test_invalid_spec_is_rejected_without_children_or_retries(
    api: Api, emulator: SaraEmulator
) -> None:
    async with run_operator(new_registry()):
        await api.create_cr("d", {"model": {"engine": "vllm", "gpu": {"count": 0}}})
        accepted = await eventually(lambda: _status_is(api, "d", "Accepted", "False"))
        assert accepted["reason"] == "InvalidSpec"
        assert "model.uri" in accepted["message"]
        assert (await api.cr("d"))["status"]["phase"] == "Invalid"
        seen = len(emulator.history)
        await asyncio.sleep(1.0)  # five timer periods: no retry storm, no children
        later = emulator.history[seen:]
        writes = [r for r in later if str(r.method).upper().endswith(("PATCH", "POST"))]
        assert len(writes) <= 1, [(str(r.method), str(r.url.path)) for r in writes]
        for kind in ("Deployment", "StatefulSet", "Service", "Secret", "ConfigMap"):
            assert await api.names(kind) == []
        events = await api.items("Event")
        assert any(e["type"] == "Warning" and e["reason"] == "Accepted" for e in events)
        # fixing the spec reconciles it
        await api.patch(f"{CR_PATH}/d", {"spec": {"model": {"engine": "reference", "gpu": None}}})
        await eventually(lambda: _status_is(api, "d", "Accepted", "True"))
        assert await api.names("Deployment") == ["d-agent", "d-model"]


async def test_agent_replicas_on_sqlite_are_refused_until_the_store_is_shared(
    api: Api,
) -> None:
    async with run_operator(new_registry()):
        await api.create_cr("r", {**REFERENCE, "agent": {"replicas": 3}})
        rejected = await eventually(lambda: _status_is(api, "r", "Accepted", "False"))
        assert rejected["reason"] == "InvalidSpec"
        assert "agent.replicas > 1 needs agent.store.type: postgresql" in rejected["message"]
        assert (await api.cr("r"))["status"]["phase"] == "Invalid"
        assert await api.names("Deployment") == []
        assert await api.names("PersistentVolumeClaim") == []
        await api.patch(f"{CR_PATH}/r", {"spec": {"agent": {"store": POSTGRESQL}}})
        await eventually(lambda: _status_is(api, "r", "Accepted", "True"))
        agent = await api.get(f"{PATHS['Deployment']}/r-agent")
        assert agent is not None and agent["spec"]["replicas"] == 3
        assert await api.names("PersistentVolumeClaim") == []  # nothing to mount


async def test_operator_restart_creates_no_duplicates(api: Api) -> None:
    async with run_operator(new_registry()):
        await api.create_cr("e", VLLM)
        await eventually(lambda: api.condition("e", "Accepted"))
    snapshot = {
        kind: {o["metadata"]["name"]: o["metadata"]["uid"] for o in await api.items(kind)}
        for kind in PATHS
        if kind not in ("Event", "ServiceMonitor")
    }
    assert len(snapshot["Deployment"]) == 2
    async with run_operator(new_registry()):
        await api.patch(f"{CR_PATH}/e", {"spec": {"agent": {"replicas": 0}}})
        await eventually(lambda: _gen_observed(api, "e", 2))
    for kind, objs in snapshot.items():
        now = {o["metadata"]["name"]: o["metadata"]["uid"] for o in await api.items(kind)}
        assert now == objs, kind
    agent = await api.get(f"{PATHS['Deployment']}/e-agent")
    assert agent is not None and agent["spec"]["replicas"] == 0


async def test_delete_leaves_cleanup_to_owner_references(api: Api) -> None:
    async with run_operator(new_registry()):
        cr = await api.create_cr("f", VLLM)
        await eventually(lambda: api.condition("f", "Accepted"))
        await api.delete(f"{CR_PATH}/f")
        await eventually(lambda: _gone(api, f"{CR_PATH}/f"))
        uid = cr["metadata"]["uid"]
        owned = [
            o for kind in ("Deployment", "StatefulSet", "Service") for o in await api.items(kind)
        ]
        assert owned and all(owners(o) == [uid] for o in owned)  # the API server's GC deletes
        pvcs = await api.items("PersistentVolumeClaim")
        assert len(pvcs) == 2 and all(owners(p) == [] for p in pvcs)  # weights and runs kept


async def _gone(api: Api, path: str) -> bool:
    return await api.get(path) is None


async def test_service_monitors_when_the_crd_exists(tmp_path: Path) -> None:
    async with (
        serve(tmp_path, service_monitors=True) as emu,
        aiohttp.ClientSession(base_url=str(emu.url)) as session,
        run_operator(new_registry()),
    ):
        api = Api(session)
        await api.create_cr("g", VLLM)
        await eventually(lambda: api.condition("g", "Accepted"))  # every child applied
        assert await api.names("ServiceMonitor") == ["g-agent", "g-model"]
        await api.patch(f"{CR_PATH}/g", {"spec": {"monitoring": {"serviceMonitor": False}}})
        await eventually(lambda: _none(api, "ServiceMonitor"))


async def _none(api: Api, kind: str) -> bool:
    return not await api.names(kind)


async def test_invalid_update_keeps_children_and_reports(api: Api) -> None:
    async with run_operator(new_registry()):
        await api.create_cr("h", REFERENCE)
        await eventually(lambda: _status_is(api, "h", "Accepted", "True"))
        before = await api.names("Deployment")
        await api.patch(f"{CR_PATH}/h", {"spec": {"model": {"engine": "external"}}})
        rejected = await eventually(lambda: _status_is(api, "h", "Accepted", "False"))
        assert "model.external.baseUrl" in rejected["message"]
        assert rejected["observedGeneration"] == 2
        assert (await api.cr("h"))["status"]["phase"] == "Invalid"
        assert await api.names("Deployment") == before == ["h-agent", "h-model"]


async def test_a_stale_accepted_status_on_an_invalid_spec_is_corrected(api: Api) -> None:
    """The status timer runs beside the reconcile handler: one that began on the previous,
    valid spec could write "accepted" after the handler reported the new spec invalid (seen in
    CI). Whatever wrote it, an invalid spec's status is corrected by the next timer round."""
    async with run_operator(new_registry()):
        await api.create_cr("st", REFERENCE)
        await eventually(lambda: _status_is(api, "st", "Accepted", "True"))
        accepted = await api.condition("st", "Accepted")
        await api.patch(f"{CR_PATH}/st", {"spec": {"model": {"engine": "external"}}})
        await eventually(lambda: _status_is(api, "st", "Accepted", "False"))
        # the late write of a status computed from generation 1
        await api.patch(f"{CR_PATH}/st/status", {"status": {"conditions": [accepted]}})
        assert await _status_is(api, "st", "Accepted", "True")
        corrected = await eventually(lambda: _status_is(api, "st", "Accepted", "False"))
        assert "model.external.baseUrl" in corrected["message"]


async def test_watches_carry_timeouts_so_a_dropped_connection_is_renewed(
    emulator: SaraEmulator, api: Api
) -> None:
    async with run_operator(new_registry()):
        await api.create_cr("w", REFERENCE)
        await eventually(lambda: api.names("Deployment"))
    watches = [
        r
        for r in emulator.history
        if r.params.get("watch") in ("true", "1") and "clinicalagents" in str(r.resource)
    ]
    assert watches
    assert {r.params.get("timeoutSeconds") for r in watches} == {str(handlers.WATCH_SERVER_TIMEOUT)}


async def test_engine_switch_removes_gpu_scheduling_from_the_model_pods(api: Api) -> None:
    gpu = {
        "uri": "hf://org/model",
        "gpu": {"nodeSelector": {"gpu": "l4"}, "runtimeClassName": "nvidia"},
    }
    async with run_operator(new_registry()):
        await api.create_cr("s", {"model": gpu})
        await eventually(lambda: _gen_observed(api, "s", 1))
        await api.patch(f"{CR_PATH}/s", {"spec": {"model": {"engine": "reference"}}})
        await eventually(lambda: _gen_observed(api, "s", 2))
    dep = await api.get(f"{PATHS['Deployment']}/s-model")
    assert dep is not None
    pod = dep["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["reference"]
    # a CPU pod pinned to GPU nodes by a leftover selector and RuntimeClass would be wrong
    assert not pod.get("runtimeClassName") and not pod.get("nodeSelector")
