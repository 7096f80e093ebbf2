"""``create_app(settings)``: the agent's FastAPI application, built from typed settings.

Everything the app needs — loop, clients, key ring, store, metrics registry, audit sink — is
built here and hung on ``app.state.service``; nothing lives at module level, so tests build as
many apps as they like. ``model_transport`` / ``fhir_transport`` / ``audit`` are for tests and
benchmarks. The clinician console (``sara.agent.console``) comes with every app, at ``/``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from sara.agent import runtime
from sara.agent.api import artifacts, contract, routes
from sara.agent.api.auth import KeyRing, load_keys
from sara.agent.api.headers import SecurityHeaders
from sara.agent.api.limits import BodyLimit, Gate, RateLimit
from sara.agent.api.runner import Runner
from sara.agent.api.service import AUTH_DISABLED_WARNING, AgentService
from sara.agent.audit import AuditSink, StreamAuditSink, open_sink
from sara.agent.console import pages
from sara.agent.errors import AuditError, ConfigError, StoreUnavailable
from sara.agent.fhir_client import quiet_http_logs
from sara.agent.metrics import AgentMetrics
from sara.agent.settings import AgentSettings
from sara.agent.store import migrate
from sara.agent.store.runs import RunStore
from sara.common.docs import offline_docs

log = structlog.get_logger("sara.agent.api")


def create_app(
    settings: AgentSettings,
    *,
    model_transport: httpx.AsyncBaseTransport | None = None,
    fhir_transport: httpx.AsyncBaseTransport | None = None,
    audit: AuditSink | None = None,
) -> FastAPI:
    """The agent API for ``settings``; raises ConfigError for unusable settings."""
    migrate.engine_url(settings.store)  # an unusable store URL is a ConfigError now
    keys = KeyRing(load_keys(settings.api_keys, settings.api_keys_file))
    if not len(keys) and not settings.no_auth:
        raise ConfigError(
            "no API keys: set SARA_AGENT_API_KEYS or --api-keys-file, or pass --no-auth "
            "to run without authentication"
        )
    config = runtime.config_from_settings(settings)
    metrics = AgentMetrics(
        CollectorRegistry(), resource_types=config.read_types | config.write_types
    )
    sink: AuditSink = audit if audit is not None else open_sink(settings.audit_sink)
    metrics.audit_sink_up.set_function(lambda: 0.0 if sink.failure else 1.0)
    loop = runtime.build_loop(
        settings,
        model_transport=model_transport,
        fhir_transport=fhir_transport,
        audit=sink,
        metrics=metrics,
    )
    service = AgentService(
        settings=settings,
        loop=loop,
        metrics=metrics,
        keys=keys,
        gate=Gate(settings.max_concurrent_tasks, settings.max_tasks_per_key),
        streams=Gate(0, settings.max_streams_per_key),
        task_rate=RateLimit(settings.task_rate_per_minute, settings.task_rate_burst),
        decision_rate=RateLimit(settings.decision_rate_per_minute, settings.decision_rate_burst),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        quiet_http_logs()
        store = await RunStore.open(settings.store, event_max_bytes=settings.store_event_max_bytes)
        runner = Runner(
            store,
            loop_for=service.loop_for,
            metrics=metrics,
            audit=sink,
            gate=service.gate,
            lease_seconds=settings.worker_lease_seconds,
            retention_days=settings.store_retention_days,
            retention_max_tasks=settings.store_retention_max_tasks,
            keepalive_seconds=settings.sse_keepalive_seconds,
        )
        await runner.open()
        service._runner = runner
        if settings.no_auth:
            log.warning("auth_disabled", message=AUTH_DISABLED_WARNING)
        log.info(
            "agent_started",
            model=settings.model,
            write_mode=config.write_mode.value,
            parse_mode=config.parse_mode.value,
            prompt=config.prompt,
            protocol=config.protocol,
            max_rounds=config.max_rounds,
            api_keys=len(keys),
            store=migrate.safe_url(settings.store),
        )
        try:
            yield
        finally:
            await runner.close()
            await store.close()
            service._runner = None
            await loop.aclose()
            if isinstance(sink, StreamAuditSink) and audit is None:
                sink.close()

    app = FastAPI(
        title="Sara agent",
        summary="Runs clinical tasks against a FHIR R4 server with a language model.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # offline_docs: no CDN
        redoc_url=None,
    )
    offline_docs(app)
    app.state.service = service
    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract.complete(
                build_document(), config.max_rounds, settings.max_instruction_chars
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(routes.router)
    app.include_router(artifacts.router)
    app.include_router(pages.router)  # the clinician console at /
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(AuditError, _unavailable)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, metrics=metrics)
    if settings.cors_origin_list:  # the console is same-origin: no CORS unless listed
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Last-Event-ID", "Prefer"],
            expose_headers=["Location", "Retry-After", "X-Task-Id", "Preference-Applied"],
            max_age=600,
        )
    app.add_exception_handler(Exception, _internal_error)  # Starlette's outermost 500
    build_stack = app.build_middleware_stack

    def secured_stack() -> ASGIApp:
        """The security headers outside even Starlette's 500 handler: every response has them."""
        return SecurityHeaders(build_stack(), hsts_seconds=settings.hsts_seconds)

    app.build_middleware_stack = secured_stack  # type: ignore[method-assign]
    return app


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug's 500: the documented error body, no traceback or input echoed to the client; the
    log has the exception (Starlette re-raises it to the server after this answer)."""
    log.error("api_internal_error", path=request.url.path, error=type(exc).__name__)
    body = json.dumps({"detail": "internal error", "code": "internal"})
    return Response(body, status_code=500, media_type="application/json")


async def _unavailable(request: Request, exc: Exception) -> Response:
    """503 in words, not a 500 with a traceback: the run store's database is down (or
    restarting), or the audit sink cannot take the record a console read needs."""
    code = "audit_unwritable" if isinstance(exc, AuditError) else "store_unavailable"
    log.warning("api_unavailable", code=code, path=request.url.path, error=str(exc))
    body = json.dumps({"detail": str(exc), "code": code})
    return Response(
        body, status_code=503, media_type="application/json", headers={"Retry-After": "5"}
    )


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, but ASCII-escaped: its own handler echoes the input as UTF-8, so a lone
    surrogate (JSON ``"\\ud800"``) in a request made the validation error itself a 500; and a
    body that is not JSON is echoed as bytes, which need not be UTF-8 (``\\xff``, a 500 too).
    And without ``input``: FastAPI echoes the offending value — for a missing field the whole
    body, instruction, MRN and names —, and error bodies end up in client logs (docs/phi.md)."""
    errors = [
        {k: v for k, v in error.items() if k != "input"}
        for error in jsonable_encoder(exc.errors(), custom_encoder={bytes: _bytes_text})
    ]
    body = json.dumps({"detail": errors}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


def _bytes_text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")
