"""The agent Deployment's environment names exactly the agent's settings fields.

This is the one test that may import both sides (docs/CONTRACTS.md, "Agent settings").
"""

from __future__ import annotations

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
]


def agent_env(raw: dict[str, Any]) -> list[dict[str, Any]]:
    spec = model.parse("w", raw)
    objs = builders.children(spec, model.Names("w", "ns"), model.Images(), api_key="k")
    [dep] = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "w-agent"]
    env: list[dict[str, Any]] = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


FIELDS = {f"SARA_AGENT_{name.upper()}" for name in AgentSettings.model_fields}


@pytest.mark.parametrize("raw", SPECS, ids=["managed", "external"])
def test_every_rendered_variable_is_an_agent_setting(raw: dict[str, Any]) -> None:
    names = [e["name"] for e in agent_env(raw)]
    assert len(names) == len(set(names))
    assert set(names) <= FIELDS, sorted(set(names) - FIELDS)


@pytest.mark.parametrize("raw", SPECS, ids=["managed", "external"])
def test_the_agent_parses_the_rendered_values(
    raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = agent_env(raw)
    values = {e["name"]: e.get("value", "secret-from-ref") for e in env}
    settings = AgentSettings(
        **{name.removeprefix("SARA_AGENT_").lower(): v for name, v in values.items()}
    )
    assert settings.host == "0.0.0.0" and settings.port == 8000
    assert settings.fhir_url.endswith("/")
    assert settings.model_url.endswith("/v1")
    assert settings.api_keys_file is not None
    assert settings.task_timeout_seconds == 600


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
    }
    assert needed <= FIELDS
    rendered = {e["name"] for raw in SPECS for e in agent_env(raw)}
    assert needed <= rendered
