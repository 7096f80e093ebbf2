"""The agent Deployment's environment names exactly the agent's settings fields.

This is the one test that may import both sides (docs/CONTRACTS.md, "Agent settings").
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from sara.agent.settings import AgentSettings, ParseMode, WriteMode
from sara.operator import builders, model

SPECS: list[dict[str, Any]] = [
    {"model": {"uri": "hf://o/m"}},
    {
        "model": {
            "engine": "external",
            "external": {"baseUrl": "https://m/v1", "apiKeySecretRef": {"name": "a", "key": "b"}},
        },
        "fhir": {
            "mode": "external",
            "external": {
                "baseUrl": "https://f",
                "auth": {"secretRef": {"name": "c", "key": "d"}},
                "caBundle": {"name": "e"},
            },
        },
        "agent": {"apiKeySecretRef": {"name": "g", "key": "h"}, "writeMode": "dry-run"},
    },
    {
        "model": {"engine": "reference"},
        "agent": {
            "replicas": 3,
            "writeMode": "approve",
            "approvalTtlSeconds": 120,
            "store": {
                "type": "postgresql",
                "postgresql": {"urlSecretRef": {"name": "runs", "key": "url"}},
            },
            "retention": {"days": 7, "maxTasks": 0},
        },
    },
]
IDS = ["managed", "external", "approve-postgresql"]
#: What a secretKeyRef stands for when the test builds settings (a value the field accepts).
FROM_SECRET = {"SARA_AGENT_STORE": "postgresql://sara:pw@db:5432/sara"}


def agent_env(raw: dict[str, Any]) -> list[dict[str, Any]]:
    spec = model.parse("w", raw)
    objs = builders.children(spec, model.Names("w", "ns"), model.Images(), api_key="k")
    [dep] = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "w-agent"]
    env: list[dict[str, Any]] = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


FIELDS = {f"SARA_AGENT_{name.upper()}" for name in AgentSettings.model_fields}


@pytest.mark.parametrize("raw", SPECS, ids=IDS)
def test_every_rendered_variable_is_an_agent_setting(raw: dict[str, Any]) -> None:
    names = [e["name"] for e in agent_env(raw)]
    assert len(names) == len(set(names))
    assert set(names) <= FIELDS, sorted(set(names) - FIELDS)


@pytest.mark.parametrize("raw", SPECS, ids=IDS)
def test_the_agent_parses_the_rendered_values(
    raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = agent_env(raw)
    values = {e["name"]: e.get("value", FROM_SECRET.get(e["name"], "secret")) for e in env}
    for name in [n for n in os.environ if n.startswith("SARA_AGENT_")]:
        monkeypatch.delenv(name)  # only what the operator renders
    for name, value in values.items():  # through the environment, as in the pod
        monkeypatch.setenv(name, value)
    settings = AgentSettings()
    assert settings.host == "0.0.0.0" and settings.port == 8000
    assert settings.fhir_url.endswith("/")
    assert settings.model_url.endswith("/v1")
    assert settings.api_keys_file is not None
    assert settings.task_timeout_seconds == 600
    assert settings.store.startswith(("sqlite:///", "postgresql://"))
    agent = model.parse("w", raw).agent
    assert settings.write_mode.value == agent.write_mode.value
    assert settings.approval_ttl_seconds == agent.approval_ttl_seconds
    assert settings.store_retention_days == agent.retention.days
    assert settings.store_retention_max_tasks == agent.retention.max_tasks


def test_the_sqlite_store_is_an_absolute_path_on_the_mounted_volume() -> None:
    env = {e["name"]: e for e in agent_env(SPECS[0])}
    url = env["SARA_AGENT_STORE"]["value"]
    assert url == f"sqlite:///{builders.agent.RUNS_MOUNT}/runs.db"
    assert url.removeprefix("sqlite:///").startswith("/")  # four slashes: absolute
    [secret_ref] = [
        e["valueFrom"]["secretKeyRef"]
        for e in agent_env(SPECS[2])
        if e["name"] == "SARA_AGENT_STORE"
    ]
    assert secret_ref == {"name": "runs", "key": "url"}


def test_mode_enums_match_the_agent() -> None:
    assert {m.value for m in model.WriteMode} == {m.value for m in WriteMode}
    field = model.AgentSpec.model_fields["parse_mode"]
    assert set(field.annotation.__args__) == {m.value for m in ParseMode}  # type: ignore[union-attr]


def test_fields_the_operator_must_render_are_still_settings() -> None:
    needed = {
        "SARA_AGENT_FHIR_URL",
        "SARA_AGENT_FHIR_BEARER_TOKEN",
        "SARA_AGENT_FHIR_CA_BUNDLE",
        "SARA_AGENT_MODEL_URL",
        "SARA_AGENT_MODEL",
        "SARA_AGENT_MODEL_API_KEY",
        "SARA_AGENT_MAX_ROUNDS",
        "SARA_AGENT_PROMPT",
        "SARA_AGENT_WRITE_MODE",
        "SARA_AGENT_API_KEYS_FILE",
        "SARA_AGENT_MAX_CONCURRENT_TASKS",
        "SARA_AGENT_TASK_TIMEOUT_SECONDS",
        "SARA_AGENT_STORE",
        "SARA_AGENT_APPROVAL_TTL_SECONDS",
        "SARA_AGENT_STORE_RETENTION_DAYS",
        "SARA_AGENT_STORE_RETENTION_MAX_TASKS",
    }
    assert needed <= FIELDS
    rendered = {e["name"] for raw in SPECS for e in agent_env(raw)}
    assert needed <= rendered
