"""Build a ready-to-run :class:`~sara.agent.loop.Loop` from settings or a loop config.

The one place that turns configuration into clients, so the bench runner, the API and
``sara run`` wire the loop identically::

    agent = build_loop(AgentSettings(...))                       # everything from settings/env
    agent = build_loop(LoopConfig(api_base=...), model_url=..., model=...)   # benchmark style
    async with agent: ...                                        # closes both HTTP clients

``model_transport`` / ``fhir_transport`` inject httpx transports (``httpx.MockTransport``, an
ASGI app's transport) for tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from sara.agent import prompts
from sara.agent.audit import AuditSink
from sara.agent.errors import ConfigError
from sara.agent.fhir_client import FhirClient
from sara.agent.loop import Loop, LoopConfig
from sara.agent.metrics import AgentMetrics
from sara.agent.model_client import ModelClient
from sara.agent.settings import AgentSettings


def _types(value: str, default: frozenset[str]) -> frozenset[str]:
    names = frozenset(t.strip() for t in value.split(",") if t.strip())
    return names or default


def config_from_settings(settings: AgentSettings) -> LoopConfig:
    """The loop configuration that ``settings`` (and so ``SARA_AGENT_*``) describe."""
    from sara.agent.urlguard import DEFAULT_READ_TYPES, DEFAULT_WRITE_TYPES

    try:
        return LoopConfig(
            api_base=settings.fhir_url,
            max_rounds=settings.max_rounds,
            prompt=settings.prompt,
            functions=prompts.load_functions(settings.functions_file),
            parse_mode=settings.parse_mode,
            write_mode=settings.write_mode,
            protocol=settings.protocol.value,
            read_types=_types(settings.read_resource_types, DEFAULT_READ_TYPES),
            write_types=_types(settings.write_resource_types, DEFAULT_WRITE_TYPES),
            task_timeout_seconds=settings.task_timeout_seconds or None,
            approval_ttl_seconds=settings.approval_ttl_seconds,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def build_loop(
    source: AgentSettings | LoopConfig,
    *,
    model_url: str | None = None,
    model: str | None = None,
    model_transport: httpx.AsyncBaseTransport | None = None,
    fhir_transport: httpx.AsyncBaseTransport | None = None,
    audit: AuditSink | None = None,
    metrics: AgentMetrics | None = None,
    settings: AgentSettings | None = None,
    context_limit: Callable[[int, str], bool] | None = None,
) -> Loop:
    """A loop with its model and FHIR clients.

    With a ``LoopConfig``, client options (timeouts, retries, size cap, credentials) come from
    ``settings`` (default: ``AgentSettings()`` field defaults, not the environment) and the
    model from ``model_url``/``model``. ``context_limit`` replaces the model client's
    context-limit rule (see ``model_client``).
    """
    if isinstance(source, AgentSettings):
        settings = source
        config = config_from_settings(source)
    else:
        config = source
        if settings is None:
            settings = AgentSettings.model_construct()
    api_key = settings.model_api_key.get_secret_value() if settings.model_api_key else None
    token = settings.fhir_bearer_token.get_secret_value() if settings.fhir_bearer_token else None
    model_client = ModelClient(
        base_url=model_url or settings.model_url,
        model=model or settings.model,
        transport=model_transport,
        api_key=api_key,
        timeout=settings.model_timeout_seconds,
        max_retries=settings.model_max_retries,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        context_limit=context_limit,
    )
    fhir_client = FhirClient(
        transport=fhir_transport,
        timeout=settings.fhir_timeout_seconds,
        max_response_bytes=settings.fhir_max_response_bytes,
        bearer_token=token,
        ca_bundle=settings.fhir_ca_bundle,
    )
    return Loop(config, model=model_client, fhir=fhir_client, audit=audit, metrics=metrics)
