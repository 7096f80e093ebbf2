"""The agent service: Deployment, Service, API key Secret (pure).

Configuration is passed as ``SARA_AGENT_<FIELD>`` environment variables, exactly the fields of
the agent's settings class (``tests/contracts/`` pins the names against it).
"""

from __future__ import annotations

from typing import Any

from sara.operator import model
from sara.operator.builders import meta
from sara.operator.model import ClinicalAgentSpec, Engine, FhirMode, Images, Names

COMPONENT = "agent"
PORT = model.AGENT_PORT
RUN_AS_USER = 10001
PREFIX = "SARA_AGENT_"
KEYS_MOUNT = "/etc/sara/api-keys"
CA_MOUNT = "/etc/sara/fhir-ca"
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
        "LOG_LEVEL": agent.log_level,
    }
    out: list[dict[str, Any]] = [{"name": PREFIX + k, "value": v} for k, v in plain.items()]
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


def deployment(spec: ClinicalAgentSpec, names: Names, images: Images) -> dict[str, Any]:
    agent = spec.agent
    secret, key = keys_ref(spec, names)
    mounts: list[dict[str, Any]] = [{"name": "api-keys", "mountPath": KEYS_MOUNT, "readOnly": True}]
    volumes: list[dict[str, Any]] = [
        {"name": "api-keys", "secret": {"secretName": secret, "items": [{"key": key, "path": key}]}}
    ]
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
    out += [deployment(spec, names, images), meta.service(names, names.agent, COMPONENT, PORT)]
    return out
