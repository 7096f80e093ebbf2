"""Pure builders: every child of many specs is a valid, restricted, labelled Kubernetes object."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from k8s_checks import pod_templates

from sara.operator import builders, model
from sara.operator.builders import vllm

Obj = dict[str, Any]
IMAGES = model.Images()

SPECS: dict[str, dict[str, Any]] = {
    "vllm-managed": {"model": {"uri": "hf://Nadhari/Sara-1.5-4B-it", "revision": "abc123"}},
    "vllm-multi-gpu-pvc": {
        "model": {
            "uri": "pvc://weights/models/sara",
            "gpu": {
                "count": 2,
                "resourceName": "amd.com/gpu",
                "nodeSelector": {"gpu": "mi300"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "runtimeClassName": "rocm",
            },
            "vllm": {
                "maxModelLen": None,
                "maxNumSeqs": 8,
                "enablePrefixCaching": False,
                "extraArgs": ["--enforce-eager"],
            },
            "cache": {"existingClaim": "shared-cache"},
            "hfTokenSecretRef": {"name": "hf", "key": "token"},
            "resources": {"requests": {"cpu": "2", "memory": "16Gi"}},
        },
        "monitoring": {"labels": {"release": "kps"}, "interval": "15s"},
    },
    "reference-medagentbench": {
        "model": {"engine": "reference"},
        "fhir": {"managed": {"preset": "medagentbench", "storage": {"retainOnDelete": False}}},
    },
    "reference-empty": {
        "model": {"engine": "reference", "replicas": 0},
        "fhir": {"managed": {"preset": "empty", "storage": {"storageClassName": "fast"}}},
        "monitoring": {"serviceMonitor": False},
    },
    "reference-no-seed": {
        "model": {"engine": "reference"},
        "fhir": {"managed": {"seed": {"synthetic": None}}},
    },
    "external-everything": {
        "model": {
            "engine": "external",
            "external": {"baseUrl": "https://llm/v1", "apiKeySecretRef": {"name": "k", "key": "v"}},
        },
        "fhir": {
            "mode": "external",
            "external": {
                "baseUrl": "https://fhir/R4",
                "auth": {"secretRef": {"name": "f", "key": "t"}},
                "caBundle": {"name": "ca"},
            },
        },
        "agent": {"apiKeySecretRef": {"name": "keys", "key": "k"}, "writeMode": "deny"},
    },
    "agent-postgresql-approve": {
        "model": {"engine": "reference"},
        "agent": {
            "replicas": 3,
            "writeMode": "approve",
            "approvalTtlSeconds": 600,
            "store": {
                "type": "postgresql",
                "postgresql": {"urlSecretRef": {"name": "runs-db", "key": "url"}},
            },
            "retention": {"days": 0, "maxTasks": 5000},
        },
    },
    "agent-sqlite-sized": {
        "model": {"engine": "reference"},
        "agent": {
            "store": {
                "sqlite": {"size": "5Gi", "storageClassName": "fast", "retainOnDelete": False}
            }
        },
    },
    "pod-defaults": {
        "model": {"engine": "reference"},
        "podDefaults": {
            "nodeSelector": {"zone": "a"},
            "tolerations": [{"key": "dedicated", "value": "sara", "effect": "NoExecute"}],
            "imagePullSecrets": ["regcred"],
            "priorityClassName": "clinical",
        },
        "image": "registry.local/sara:dev",
    },
}


def render(key: str, namespace: str = "ns") -> tuple[model.ClinicalAgentSpec, list[Obj]]:
    spec = model.parse("ward", SPECS[key])
    return spec, builders.children(spec, model.Names("ward", namespace), IMAGES, api_key="k")


def by_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    [found] = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("key", SPECS)
def test_every_child_validates_strictly(key: str, validate: Callable[[Obj], None]) -> None:
    _, objs = render(key)
    for obj in objs:
        validate(obj)


@pytest.mark.parametrize("key", SPECS)
def test_every_pod_passes_pod_security_restricted(
    key: str, restricted: Callable[[Obj], None]
) -> None:
    _, objs = render(key)
    pods = [p for o in objs for p in pod_templates(o)]
    assert pods
    for pod in pods:
        restricted(pod)
        assert pod["automountServiceAccountToken"] is False
        # No <SERVICE>_PORT=tcp://... variables: a Service named "vllm" in the namespace would
        # set VLLM_PORT and stop vLLM; one named "server" would set Spring's server.port.
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


@pytest.mark.parametrize("key", SPECS)
def test_children_are_labelled_namespaced_and_unique(key: str) -> None:
    _, objs = render(key)
    keys = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(keys) == len(set(keys))
    for obj in objs:
        labels = obj["metadata"]["labels"]
        assert obj["metadata"]["namespace"] == "ns"
        assert labels["app.kubernetes.io/name"] == "sara"
        assert labels["app.kubernetes.io/instance"] == "ward"
        assert labels["app.kubernetes.io/part-of"] == "sara"
        assert labels["app.kubernetes.io/managed-by"] == "sara-operator"
        assert labels["app.kubernetes.io/component"] in {"model", "fhir", "seed", "agent"}
        if obj["kind"] in ("Deployment", "StatefulSet"):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
            assert "app.kubernetes.io/version" not in selector


def test_vllm_deployment_renders_engine_flags_gpu_cache_and_probes() -> None:
    _, objs = render("vllm-managed")
    dep = one(objs, "Deployment", "ward-model")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    [c] = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == IMAGES.vllm and ":" in c["image"] and not c["image"].endswith(":latest")
    assert c["args"] == [
        "--host=0.0.0.0",
        "--port=8000",
        "--model=Nadhari/Sara-1.5-4B-it",
        "--served-model-name=sara",
        "--gpu-memory-utilization=0.9",
        "--dtype=auto",
        "--revision=abc123",
        "--max-model-len=16384",
        "--enable-prefix-caching",
    ]
    assert c["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    budget = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
    assert budget >= 20 * 60  # first start downloads the weights
    # the Deployment must not be declared failed (ProgressDeadlineExceeded) before that
    assert dep["spec"]["progressDeadlineSeconds"] > budget
    assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HF_HOME"].startswith(vllm.CACHE_MOUNT)
    pvc = one(objs, "PersistentVolumeClaim", "ward-model-cache")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "30Gi"
    volumes = dep["spec"]["template"]["spec"]["volumes"]
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": "ward-model-cache"}} in volumes
    svc = one(objs, "Service", "ward-model")
    assert svc["spec"]["ports"][0]["port"] == 8000


def test_vllm_multi_gpu_pvc_weights_and_overrides() -> None:
    _, objs = render("vllm-multi-gpu-pvc")
    pvcs = [p["metadata"]["name"] for p in by_kind(objs, "PersistentVolumeClaim")]
    assert pvcs == ["ward-agent-runs"]  # existing weights claim used; the agent's run store
    dep = one(objs, "Deployment", "ward-model")
    pod = dep["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert "--model=/models/pvc/models/sara" in c["args"]
    assert "--tensor-parallel-size=2" in c["args"]
    assert "--no-enable-prefix-caching" in c["args"]
    assert "--max-num-seqs=8" in c["args"]
    assert not any(a.startswith("--max-model-len") for a in c["args"])
    assert c["args"][-1] == "--enforce-eager"
    assert c["resources"] == {
        "requests": {"cpu": "2", "memory": "16Gi"},
        "limits": {"amd.com/gpu": 2},
    }
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}} in c[
        "env"
    ]
    assert pod["nodeSelector"] == {"gpu": "mi300"}
    assert pod["runtimeClassName"] == "rocm"
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}
    assert claims["cache"] == {"claimName": "shared-cache"}
    assert claims["weights"] == {"claimName": "weights", "readOnly": True}
    [sm_agent, sm_model] = by_kind(objs, "ServiceMonitor")
    assert sm_model["metadata"]["labels"]["release"] == "kps"
    assert sm_model["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s"}
    ]
    assert sm_agent["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "agent"


def test_reference_engine_runs_the_sara_image_on_cpu() -> None:
    _, objs = render("reference-medagentbench")
    dep = one(objs, "Deployment", "ward-model")
    [c] = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == IMAGES.sara
    assert c["args"][:4] == ["model", "serve", "--policy", "reference"]
    assert "--port" in c["args"] and "8000" in c["args"]
    assert not c["resources"]
    assert "strategy" not in dep["spec"]
    pvcs = [p["metadata"]["name"] for p in by_kind(objs, "PersistentVolumeClaim")]
    assert pvcs == ["ward-agent-runs"]  # no weights cache on CPU
    assert [m["metadata"]["name"] for m in by_kind(objs, "ServiceMonitor")] == ["ward-agent"]


def test_managed_hapi_statefulset_config_and_services() -> None:
    _, objs = render("reference-empty")
    sts = one(objs, "StatefulSet", "ward-fhir")
    assert sts["spec"]["serviceName"] == "ward-fhir-headless"
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    [c] = sts["spec"]["template"]["spec"]["containers"]
    assert c["image"] == IMAGES.hapi
    assert c["readinessProbe"]["httpGet"]["path"] == "/actuator/health/readiness"
    assert c["livenessProbe"]["httpGet"]["path"] == "/actuator/health/liveness"
    cm = one(objs, "ConfigMap", "ward-fhir-config")
    assert "jdbc:h2:file:/data/hapi/h2" in cm["data"]["application.yaml"]
    # Spring reads the config once: a changed ConfigMap must roll the server
    digest = hashlib.sha256(cm["data"]["application.yaml"].encode()).hexdigest()[:16]
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"clinical.sara.dev/config-sha256": digest}
    assert one(objs, "Service", "ward-fhir-headless")["spec"]["clusterIP"] == "None"
    assert "clusterIP" not in one(objs, "Service", "ward-fhir")["spec"]
    assert not by_kind(objs, "Job")  # preset empty: nothing to seed
    assert not by_kind(objs, "ServiceMonitor")


def test_medagentbench_preset_copies_the_baked_database_once() -> None:
    _, objs = render("reference-medagentbench")
    sts = one(objs, "StatefulSet", "ward-fhir")
    pod = sts["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == IMAGES.medagentbench
    [init] = pod["initContainers"]
    assert init["image"] == IMAGES.medagentbench
    assert "cp -R /data/. /pvc/" in init["args"][0] and ".sara-copied" in init["args"][0]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    assert not by_kind(objs, "ConfigMap") and not by_kind(objs, "Job")


def test_seed_job_generates_then_loads_into_the_managed_server() -> None:
    _, objs = render("vllm-managed")
    job = one(objs, "Job", "ward-seed")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    wait, generate = pod["initContainers"]
    assert wait["command"][-1] == "http://ward-fhir.ns.svc:8080/fhir/"
    assert generate["args"] == [
        "ehr",
        "generate",
        "--patients",
        "100",
        "--seed",
        "1",
        "--out",
        "/work/ehr.ndjson.gz",
    ]
    [load] = pod["containers"]
    assert load["args"] == [
        "fhir",
        "load",
        "--url",
        "http://ward-fhir.ns.svc:8080/fhir/",
        "/work/ehr.ndjson.gz",
    ]
    assert "ttlSecondsAfterFinished" not in job["spec"]  # the finished Job marks "seeded"
    spec = model.parse("ward", SPECS["vllm-managed"])
    without = builders.children(
        spec, model.Names("ward", "ns"), IMAGES, api_key="k", include_seed=False
    )
    assert not by_kind(without, "Job")
    _, objs = render("reference-no-seed")
    assert not by_kind(objs, "Job")


def test_seed_job_containers_take_resources_for_quota_namespaces() -> None:
    # In a namespace with a cpu/memory ResourceQuota, a pod without them is refused: the Job
    # would never start and FHIRReady would stay "Seeding" for ever.
    res = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    spec = model.parse(
        "ward",
        {"model": {"engine": "reference"}, "fhir": {"managed": {"seed": {"resources": res}}}},
    )
    objs = builders.children(spec, model.Names("ward", "ns"), IMAGES, api_key="k")
    pod = one(objs, "Job", "ward-seed")["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["resources"] == res, container["name"]


def test_agent_gets_urls_keys_and_secrets_by_reference() -> None:
    _, objs = render("vllm-managed")
    dep = one(objs, "Deployment", "ward-agent")
    [c] = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["agent", "serve", "--host", "0.0.0.0", "--port", "8000"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SARA_AGENT_FHIR_URL"] == "http://ward-fhir.ns.svc:8080/fhir/"
    assert env["SARA_AGENT_MODEL_URL"] == "http://ward-model.ns.svc:8000/v1"
    assert env["SARA_AGENT_MODEL"] == "sara"
    assert env["SARA_AGENT_API_KEYS_FILE"] == "/etc/sara/api-keys/api-keys"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    secret = one(objs, "Secret", "ward-agent-api-keys")
    assert secret["stringData"] == {"api-keys": "k"}

    _, objs = render("external-everything")
    assert {o["kind"] for o in objs} == {
        "PersistentVolumeClaim",  # the agent's SQLite run store
        "Deployment",
        "Service",
        "NetworkPolicy",
        "ServiceMonitor",
    }
    dep = one(objs, "Deployment", "ward-agent")
    [c] = dep["spec"]["template"]["spec"]["containers"]
    env_full = {e["name"]: e for e in c["env"]}
    assert env_full["SARA_AGENT_FHIR_URL"]["value"] == "https://fhir/R4/"
    assert env_full["SARA_AGENT_MODEL_URL"]["value"] == "https://llm/v1"
    assert env_full["SARA_AGENT_WRITE_MODE"]["value"] == "deny"
    assert env_full["SARA_AGENT_FHIR_BEARER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "f",
        "key": "t",
    }
    assert env_full["SARA_AGENT_MODEL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "k"
    assert env_full["SARA_AGENT_FHIR_CA_BUNDLE"]["value"] == "/etc/sara/fhir-ca/ca.pem"
    assert env_full["SARA_AGENT_API_KEYS_FILE"]["value"] == "/etc/sara/api-keys/k"
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "keys"
    assert volumes["fhir-ca"]["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.pem"}]
    for value in env.values():  # no secret values inline anywhere
        assert value is None or "token" not in value.lower()


def test_sqlite_store_is_a_pvc_for_one_recreated_replica() -> None:
    spec, objs = render("vllm-managed")
    assert spec.agent.replicas == 1 and spec.agent.store.type is model.StoreType.SQLITE
    pvc = one(objs, "PersistentVolumeClaim", "ward-agent-runs")
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    assert pvc["metadata"]["labels"]["app.kubernetes.io/component"] == "agent"
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objs]
    # storage before the workload that mounts it
    pvc_at = kinds.index(("PersistentVolumeClaim", "ward-agent-runs"))
    assert pvc_at < kinds.index(("Deployment", "ward-agent"))
    dep = one(objs, "Deployment", "ward-agent")
    # an RWO volume cannot be mounted by the old and the new pod of a rolling update
    assert dep["spec"]["strategy"] == {"type": "Recreate"} and dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == 10001  # uid 10001 can write the volume
    [c] = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SARA_AGENT_STORE"] == "sqlite:////var/lib/sara/runs.db"
    assert env["SARA_AGENT_APPROVAL_TTL_SECONDS"] == "900"
    assert env["SARA_AGENT_STORE_RETENTION_DAYS"] == "30"
    assert env["SARA_AGENT_STORE_RETENTION_MAX_TASKS"] == "100000"
    assert {"name": "runs", "mountPath": "/var/lib/sara"} in c["volumeMounts"]
    assert {"name": "runs", "persistentVolumeClaim": {"claimName": "ward-agent-runs"}} in pod[
        "volumes"
    ]
    assert not any(name.startswith("SARA_AGENT_TASK_STORE") for name in env)  # removed settings
    names = model.Names("ward", "ns")
    assert ("PersistentVolumeClaim", "ward-agent-runs") in builders.retained(spec, names)

    spec, objs = render("agent-sqlite-sized")
    pvc = one(objs, "PersistentVolumeClaim", "ward-agent-runs")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["spec"]["storageClassName"] == "fast"
    assert ("PersistentVolumeClaim", "ward-agent-runs") not in builders.retained(spec, names)


def test_postgresql_store_comes_from_a_secret_and_rolls() -> None:
    _, objs = render("agent-postgresql-approve")
    assert not by_kind(objs, "PersistentVolumeClaim")
    dep = one(objs, "Deployment", "ward-agent")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = dep["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["api-keys"]
    [c] = pod["containers"]
    assert all(m["name"] != "runs" for m in c["volumeMounts"])
    env = {e["name"]: e for e in c["env"]}
    assert env["SARA_AGENT_STORE"] == {
        "name": "SARA_AGENT_STORE",
        "valueFrom": {"secretKeyRef": {"name": "runs-db", "key": "url"}},
    }
    assert env["SARA_AGENT_WRITE_MODE"]["value"] == "approve"
    assert env["SARA_AGENT_APPROVAL_TTL_SECONDS"]["value"] == "600"
    assert env["SARA_AGENT_STORE_RETENTION_DAYS"]["value"] == "0"
    assert env["SARA_AGENT_STORE_RETENTION_MAX_TASKS"]["value"] == "5000"


def test_retained_children_follow_their_fields() -> None:
    names = model.Names("ward", "ns")
    spec, _ = render("vllm-managed")
    assert builders.retained(spec, names) == {
        ("PersistentVolumeClaim", "ward-model-cache"),
        ("PersistentVolumeClaim", "ward-agent-runs"),
    }
    gone = model.parse(
        "ward",
        {
            "model": {"uri": "hf://o/m", "cache": {"deleteWithAgent": True}},
            "agent": {"store": {"sqlite": {"retainOnDelete": False}}},
        },
    )
    assert builders.retained(gone, names) == set()


def test_network_policies_admit_only_the_agent_and_seed() -> None:
    _, objs = render("vllm-managed")
    pols = {p["metadata"]["name"]: p["spec"] for p in by_kind(objs, "NetworkPolicy")}
    assert set(pols) == {"ward-model", "ward-fhir", "ward-agent"}
    comp = "app.kubernetes.io/component"
    model_from = pols["ward-model"]["ingress"][0]["from"]
    assert model_from[0]["podSelector"]["matchLabels"][comp] == "agent"
    fhir_from = pols["ward-fhir"]["ingress"][0]["from"]
    assert [p["podSelector"]["matchLabels"][comp] for p in fhir_from] == ["agent", "seed"]
    assert "from" not in pols["ward-agent"]["ingress"][0]
    assert pols["ward-agent"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]
    _, objs = render("external-everything")
    assert [p["metadata"]["name"] for p in by_kind(objs, "NetworkPolicy")] == ["ward-agent"]


def test_pod_defaults_reach_every_pod() -> None:
    _, objs = render("pod-defaults")
    pods = [p for o in objs for p in pod_templates(o)]
    assert len(pods) == 4  # model, fhir, seed, agent
    for pod in pods:
        assert pod["nodeSelector"] == {"zone": "a"}
        assert pod["tolerations"] == [
            {"key": "dedicated", "operator": "Equal", "value": "sara", "effect": "NoExecute"}
        ]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["priorityClassName"] == "clinical"
    sara_images = {
        c["image"] for p in pods for c in p["containers"] + p.get("initContainers", [])
    } - {IMAGES.hapi}
    assert sara_images == {"registry.local/sara:dev"}


def test_security_context_override_is_respected() -> None:
    raw = {
        "model": {"engine": "reference"},
        "podDefaults": {
            "securityContext": {"runAsUser": 0},
            "containerSecurityContext": {"readOnlyRootFilesystem": True},
        },
    }
    spec = model.parse("w", raw)
    objs = builders.children(spec, model.Names("w", "n"), IMAGES, api_key="k")
    dep = one(objs, "Deployment", "w-agent")
    assert dep["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 0}
    assert dep["spec"]["template"]["spec"]["containers"][0]["securityContext"] == {
        "readOnlyRootFilesystem": True
    }


def test_builders_are_pure_and_deterministic() -> None:
    spec = model.parse("w", SPECS["vllm-multi-gpu-pvc"])
    names = model.Names("w", "n")
    first = builders.children(spec, names, IMAGES, api_key="k")
    assert first == builders.children(spec, names, IMAGES, api_key="k")


def test_keep_and_obsolete_key_secret() -> None:
    spec, _ = render("vllm-managed")
    names = model.Names("ward", "ns")
    kept = builders.keep(
        spec, names, builders.children(spec, names, IMAGES, api_key="k", include_seed=False)
    )
    assert ("Job", "ward-seed") in kept and ("Deployment", "ward-agent") in kept
    assert builders.agent.obsolete_key_secret(spec, names) is None
    own = model.parse(
        "ward", {**SPECS["vllm-managed"], "agent": {"apiKeySecretRef": {"name": "x", "key": "k"}}}
    )
    assert builders.agent.obsolete_key_secret(own, names) == "ward-agent-api-keys"
    same = model.parse(
        "ward",
        {
            **SPECS["vllm-managed"],
            "agent": {"apiKeySecretRef": {"name": "ward-agent-api-keys", "key": "k"}},
        },
    )
    assert builders.agent.obsolete_key_secret(same, names) is None
