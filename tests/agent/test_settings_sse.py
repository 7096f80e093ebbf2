"""Settings from the environment, the SSE encoding, the built-in prompt data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sara.agent import prompts, runtime, sse
from sara.agent.errors import ConfigError
from sara.agent.events import FhirResponse, Finished, RoundStarted, TaskResult
from sara.agent.settings import AgentSettings, ParseMode, Protocol, WriteMode


def test_env_names_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = AgentSettings()
    assert (s.write_mode, s.parse_mode, s.protocol, s.max_rounds) == (
        WriteMode.EXECUTE,
        ParseMode.STRICT,
        Protocol.SARA,
        8,
    )
    assert (s.temperature, s.max_tokens) == (0.0, 2048)
    for name, value in {
        "SARA_AGENT_FHIR_URL": "http://h:9/base",
        "SARA_AGENT_WRITE_MODE": "dry-run",
        "SARA_AGENT_PARSE_MODE": "lenient",
        "SARA_AGENT_PROTOCOL": "medagentbench",
        "SARA_AGENT_MAX_ROUNDS": "5",
        "SARA_AGENT_PROMPT": "sara",
        "SARA_AGENT_READ_RESOURCE_TYPES": "Patient, Observation",
        "SARA_AGENT_API_KEYS": "a,b",
        "SARA_AGENT_AUDIT_SINK": "/tmp/audit.jsonl",
    }.items():
        monkeypatch.setenv(name, value)
    s = AgentSettings()
    config = runtime.config_from_settings(s)
    assert config.api_base == "http://h:9/base/"
    assert (
        config.write_mode,
        config.parse_mode,
        config.protocol,
        config.max_rounds,
        config.prompt,
    ) == (WriteMode.DRY_RUN, ParseMode.LENIENT, "medagentbench", 5, "sara")
    assert config.read_types == frozenset({"Patient", "Observation"})
    assert s.api_keys == "a,b" and s.audit_sink == "/tmp/audit.jsonl"


def test_bad_configuration_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        runtime.config_from_settings(AgentSettings(prompt="nope"))
    with pytest.raises(ConfigError):
        runtime.config_from_settings(AgentSettings(fhir_url="ftp://x/"))
    bad = tmp_path / "f.json"
    bad.write_text("{")
    with pytest.raises(ConfigError):
        prompts.load_functions(bad)
    with pytest.raises(ConfigError):
        prompts.load_functions(tmp_path / "missing.json")


def test_builtin_functions_cover_the_endpoints() -> None:
    names = [f["name"] for f in prompts.default_functions()]
    assert names == [
        "GET {api_base}Patient",
        "GET {api_base}Observation",
        "GET {api_base}Condition",
        "GET {api_base}MedicationRequest",
        "GET {api_base}Procedure",
        "POST {api_base}Observation",
        "POST {api_base}MedicationRequest",
        "POST {api_base}ServiceRequest",
    ]
    for f in prompts.default_functions():
        assert set(f) == {"name", "description", "parameters"}
        assert f["parameters"]["type"] == "object" and "properties" in f["parameters"]


def test_profiles_are_data_files() -> None:
    for name in prompts.PROFILES:
        text = prompts.template(name)
        assert "Note that you should use {api_base} as the api_base." in text
        assert text.endswith("Context: {context}\nQuestion: {question}")


def test_sse_frames_round_trip() -> None:
    events = [
        RoundStarted(round=1),
        FhirResponse(
            round=1,
            method="GET",
            resource_type="Observation",
            status=200,
            outcome="ok",
            entry_count=2,
            size=10,
        ),
        Finished(
            TaskResult(
                status="completed",
                result='["a\\nb"]',
                history=[{"role": "user", "content": "x\n\ny"}],
                rounds=1,
            )
        ),
    ]
    stream = b"".join(sse.encode(e, i) for i, e in enumerate(events, 1)) + sse.comment()
    text = stream.decode()
    assert text.startswith(
        'id: 1\nevent: round_started\ndata: {"type":"round_started","round":1}\n\n'
    )
    decoded = list(sse.decode(text))
    assert decoded == [(e.kind, json.loads(json.dumps(e.to_dict()))) for e in events]
    for block in text.strip().split("\n\n")[:-1]:
        assert len(block.split("\n")) == 3  # id, event, one data line: payload newlines are escaped


def test_every_loop_protocol_is_a_setting_the_agent_serves() -> None:
    from sara.agent.actions import PROTOCOLS

    assert {p.value for p in Protocol} == set(PROTOCOLS)
    config = runtime.config_from_settings(AgentSettings(protocol="compact", prompt="compact"))
    assert (config.protocol, config.prompt) == ("compact", "compact")
