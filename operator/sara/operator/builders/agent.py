"""The agent service: Deployment, Service, API key Secret, run store PVC (pure).

Configuration is passed as ``SARA_AGENT_<FIELD>`` environment variables, exactly the fields of
the agent's settings class (``tests/contracts/`` pins the names against it).

The run store is SQLite on a ReadWriteOnce PVC (one replica, ``Recreate`` so the old pod lets go
of the volume before the new one mounts it) or a PostgreSQL URL from a Secret (any replicas,
rolling updates).
"""

from __future__ import annotations

from typing import Any

from sara.operator import model
from sara.operator.builders import meta
from sara.operator.model import ClinicalAgentSpec, Engine, FhirMode, Images, Names, StoreType

COMPONENT = "agent"
PORT = model.AGENT_PORT
RUN_AS_USER = 10001
PREFIX = "SARA_AGENT_"
KEYS_MOUNT = "/etc/sara/api-keys"
CA_MOUNT = "/etc/sara/fhir-ca"
RUNS_MOUNT = "/var/lib/sara"
SQLITE_URL = f"sqlite:///{RUNS_MOUNT}/runs.db"  # four slashes: an absolute path
GENERATED_KEY = "api-keys"


def keys_ref(spec: ClinicalAgentSpec, names: Names) -> tuple[str, str]:
    """(Secret name, key) holding the agent's API keys: given, or the generated Secret."""
    ref = spec.agent.api_key_secret_ref
    return (ref.name, ref.key) if ref is not None else (names.agent_keys, GENERATED_KEY)


def env(spec: ClinicalAgentSpec, names: Names) -> list[dict[str, Any]]:
    """Environment of the agent container; every name is an agent settings field."""
    agent = spec.agent
    _, key = keys_ref(spec, names)
    plain: dict[str, str] = {
        "HOST": "0.0.0.0",
        "PORT": str(PORT),
        "FHIR_URL": model.fhir_base_url(spec, names),
        "MODEL_URL": model.model_base_url(spec, names),
        "MODEL": spec.model.served_name,
        "MAX_ROUNDS": str(agent.max_rounds),
        "PROMPT": agent.prompt,
        "WRITE_MODE": agent.write_mode.value,
        "PARSE_MODE": agent.parse_mode,
        "API_KEYS_FILE": f"{KEYS_MOUNT}/{key}",
        "MAX_CONCURRENT_TASKS": str(agent.max_concurrent_tasks),
        "TASK_TIMEOUT_SECONDS": str(agent.task_timeout_seconds),
        "APPROVAL_TTL_SECONDS": str(agent.approval_ttl_seconds),
        "STORE_RETENTION_DAYS": str(agent.retention.days),
        "STORE_RETENTION_MAX_TASKS": str(agent.retention.max_tasks),
        "LOG_LEVEL": agent.log_level,
    }
    out: list[dict[str, Any]] = [{"name": PREFIX + k, "value": v} for k, v in plain.items()]
    out.append(store_env(spec))
    external = spec.fhir.external if spec.fhir.mode is FhirMode.EXTERNAL else None
    if external is not None and external.ca_bundle is not None:
        out.append({"name": PREFIX + "FHIR_CA_BUNDLE", "value": f"{CA_MOUNT}/ca.pem"})
    if external is not None and external.auth is not None:
        ref = external.auth.secret_ref
        out.append(meta.secret_env(PREFIX + "FHIR_BEARER_TOKEN", ref.name, ref.key))
    model_ext = spec.model.external if spec.model.engine is Engine.EXTERNAL else None
    if model_ext is not None and model_ext.api_key_secret_ref is not None:
        ref = model_ext.api_key_secret_ref
        out.append(meta.secret_env(PREFIX + "MODEL_API_KEY", ref.name, ref.key))
    return out


def sqlite(spec: ClinicalAgentSpec) -> bool:
    """Whether the run store is SQLite on the operator's PVC."""
    return spec.agent.store.type is StoreType.SQLITE


def store_env(spec: ClinicalAgentSpec) -> dict[str, Any]:
    """``SARA_AGENT_STORE``: the file on the PVC, or the PostgreSQL URL by Secret reference."""
    store = spec.agent.store
    if store.type is StoreType.POSTGRESQL:
        assert store.postgresql is not None  # guaranteed by the model validator
        ref = store.postgresql.url_secret_ref
        return meta.secret_env(PREFIX + "STORE", ref.name, ref.key)
    return {"name": PREFIX + "STORE", "value": SQLITE_URL}


def runs_pvc(spec: ClinicalAgentSpec, names: Names) -> dict[str, Any] | None:
    """The SQLite run store's PVC, or None for PostgreSQL."""
    if not sqlite(spec):
        return None
    store = spec.agent.store.sqlite
    pvc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta.metadata(names, names.agent_runs, COMPONENT),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": store.size}},
        },
    }
    if store.storage_class_name:
        pvc["spec"]["storageClassName"] = store.storage_class_name
    return pvc


def strategy(spec: ClinicalAgentSpec) -> dict[str, Any]:
    """Recreate for SQLite (one RWO volume, one writer), else a rolling update.

    Explicit both ways, the rolling one with the API server's own defaults: a merge patch must
    turn one into the other on a store switch, and must find nothing to change otherwise.
    """
    if sqlite(spec):
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}


def deployment(spec: ClinicalAgentSpec, names: Names, images: Images) -> dict[str, Any]:
    agent = spec.agent
    secret, key = keys_ref(spec, names)
    mounts: list[dict[str, Any]] = [{"name": "api-keys", "mountPath": KEYS_MOUNT, "readOnly": True}]
    volumes: list[dict[str, Any]] = [
        {"name": "api-keys", "secret": {"secretName": secret, "items": [{"key": key, "path": key}]}}
    ]
    if sqlite(spec):
        # Written as the pod's fsGroup (meta.pod_security): uid 10001 owns the database.
        mounts.append({"name": "runs", "mountPath": RUNS_MOUNT})
        volumes.append({"name": "runs", "persistentVolumeClaim": {"claimName": names.agent_runs}})
    external = spec.fhir.external if spec.fhir.mode is FhirMode.EXTERNAL else None
    if external is not None and external.ca_bundle is not None:
        ca = external.ca_bundle
        mounts.append({"name": "fhir-ca", "mountPath": CA_MOUNT, "readOnly": True})
        volumes.append(
            {
                "name": "fhir-ca",
                "configMap": {"name": ca.name, "items": [{"key": ca.key, "path": "ca.pem"}]},
            }
        )
    container = {
        "name": "agent",
        "image": agent.image or spec.image or images.sara,
        "args": ["agent", "serve", "--host", "0.0.0.0", "--port", str(PORT)],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": env(spec, names),
        "resources": meta.resources(agent.resources),
        "securityContext": meta.container_security(spec),
        "volumeMounts": mounts,
        "readinessProbe": meta.http_probe("/readyz", period=5, failures=3),
        "livenessProbe": meta.http_probe("/healthz", period=10, failures=3),
    }
    pod = meta.pod_spec(spec, containers=[container], volumes=volumes, run_as_user=RUN_AS_USER)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.metadata(names, names.agent, COMPONENT),
        "spec": {
            "replicas": agent.replicas,
            "strategy": strategy(spec),
            "selector": {"matchLabels": meta.selector(names, COMPONENT)},
            "template": {"metadata": {"labels": meta.labels(names, COMPONENT)}, "spec": pod},
        },
    }


def api_key_secret(names: Names, api_key: str) -> dict[str, Any]:
    """The generated API key Secret (the operator creates it once, never rewrites it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta.metadata(names, names.agent_keys, COMPONENT),
        "stringData": {GENERATED_KEY: api_key},
    }


def obsolete_key_secret(spec: ClinicalAgentSpec, names: Names) -> str | None:
    """The generated key Secret's name once the spec points at another Secret, else None."""
    ref = spec.agent.api_key_secret_ref
    return names.agent_keys if ref is not None and ref.name != names.agent_keys else None


def children(
    spec: ClinicalAgentSpec, names: Names, images: Images, api_key: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if spec.agent.api_key_secret_ref is None:
        out.append(api_key_secret(names, api_key))
    pvc = runs_pvc(spec, names)
    if pvc is not None:
        out.append(pvc)
    out += [deployment(spec, names, images), meta.service(names, names.agent, COMPONENT, PORT)]
    return out
