"""The HTTP edge: an OpenAI-compatible API in front of an :class:`~sara.modelserver.engines.Engine`.

``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions`` (streamed as
Server-Sent Events ending ``data: [DONE]``, or whole), ``GET /health``. Errors use OpenAI's
``{"error": {...}}`` body; a malformed request is a 400, never a 422 or a 500.
Logs carry ids, labels and timings only — never prompts or replies (they hold PHI).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from sara.common.docs import offline_docs
from sara.modelserver import engines, errors, openai
from sara.modelserver.settings import ModelServerSettings

log = structlog.get_logger("sara.modelserver")


def create_app(settings: ModelServerSettings, engine: engines.Engine | None = None) -> FastAPI:
    """The server for ``settings``; pass ``engine`` to inject one (tests, a loaded GGUF model)."""
    served: engines.Engine = engine if engine is not None else engines.build(settings)
    name = settings.served_name
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "model server ready",
            served_name=name,
            engine=served.kind,
            latency_seconds=settings.latency,
            note=served.description,
        )
        yield

    app = FastAPI(
        title="Sara model server",
        description=served.description,
        lifespan=lifespan,
        docs_url=None,  # offline_docs: no CDN
        redoc_url=None,
    )
    offline_docs(app)

    @app.exception_handler(errors.ModelServerError)
    async def _refused(_: Request, exc: errors.ModelServerError) -> JSONResponse:
        body = openai.error(str(exc), kind=exc.kind, code=exc.status, param=exc.param)
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            body = openai.error("request body is not valid JSON", kind="BadRequestError", code=400)
            return JSONResponse(body, status_code=400)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}"
        body = openai.error(message, kind="BadRequestError", code=400, param=where or None)
        return JSONResponse(body, status_code=400)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "engine": served.kind}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = openai.model_card(name, description=served.description, created=started)
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        _check_model(model_id, name)
        return openai.model_card(name, description=served.description, created=started)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: openai.ChatRequest) -> dict[str, Any] | StreamingResponse:
        _check_model(request.model, name)
        began = time.perf_counter()
        if settings.latency > 0:
            await asyncio.sleep(settings.latency)
        reply = await served.complete(request)
        texts = [(reply.text, reply.finish_reason)] * request.n
        log.info(
            "chat completion",
            engine=served.kind,
            task_type=reply.task,
            action=reply.verb,
            stream=request.stream,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens * request.n,
            elapsed_ms=round((time.perf_counter() - began) * 1000, 1),
        )
        completion_id, created = openai.new_id(), int(time.time())
        generated = reply.completion_tokens * request.n
        if not request.stream:
            return openai.completion(
                completion_id=completion_id,
                model=name,
                created=created,
                texts=texts,
                prompt=reply.prompt_tokens,
                generated=generated,
            )
        include_usage = request.stream_options is not None and request.stream_options.include_usage
        events = openai.chunks(
            completion_id=completion_id,
            model=name,
            created=created,
            texts=texts,
            prompt=reply.prompt_tokens,
            generated=generated,
            include_usage=include_usage,
        )
        return StreamingResponse(
            _sse(events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _sse(events: Iterator[dict[str, Any]]) -> Iterator[str]:
    for event in events:
        yield openai.sse(event)
    yield openai.sse("[DONE]")


def _check_model(requested: str, served: str) -> None:
    if requested != served:
        raise errors.UnknownModel(
            f"The model `{requested}` does not exist; this server serves `{served}`."
        )
