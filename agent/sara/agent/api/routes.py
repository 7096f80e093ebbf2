"""HTTP routes of the agent: tasks (JSON or SSE), task replay, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from sara.agent import sse
from sara.agent.api.service import AUTH_DISABLED_WARNING, AgentService
from sara.agent.api.store import TaskRecord
from sara.agent.events import Event, Finished, TaskResult
from sara.agent.loop import TaskSpec
from sara.agent.settings import ParseMode, WriteMode

log = structlog.get_logger("sara.agent.api")
router = APIRouter()
READY_TIMEOUT_SECONDS = 5.0
STREAM_MARGIN_SECONDS = 30.0  # beyond the task deadline, for the last frames to drain


class TaskOptions(BaseModel):
    """Per-task overrides; they may only make the agent more careful than the server's settings."""

    max_rounds: int | None = Field(None, ge=1, le=64)
    write_mode: WriteMode | None = None
    parse_mode: ParseMode | None = None


class TaskRequest(BaseModel):
    instruction: str = Field(..., min_length=1, max_length=20_000)
    context: str = Field("", max_length=100_000)
    options: TaskOptions = Field(default_factory=TaskOptions)


class TaskResultBody(BaseModel):
    """A finished task, shaped like MedAgentBench's ``TaskOutput`` (documentation model)."""

    task_id: str
    status: str = Field(
        ...,
        description="completed | agent invalid action | task limit reached | "
        "agent context limit | task error",
    )
    result: str | None = Field(None, description="The text inside FINISH( … ), e.g. '[42]'.")
    history: list[dict[str, str]] = Field(
        ..., description='[{"role": "user"|"agent", "content": str}], the prompt first.'
    )
    rounds: int
    usage: dict[str, int] = Field(..., description="prompt_tokens, completion_tokens")
    elapsed_seconds: float


def get_service(request: Request) -> AgentService:
    service: AgentService = request.app.state.service
    return service


Service = Annotated[AgentService, Depends(get_service)]


#: Declares the bearer scheme in the OpenAPI document (so /docs offers "Authorize"); the key
#: itself is checked below, with our own 401 and constant-time comparison.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An agent API key (SARA_AGENT_API_KEYS or --api-keys-file).",
)


def get_caller(
    request: Request,
    service: Service,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> str:
    """The caller's identity (``key:…``), or 401."""
    if service.no_auth:
        return "anonymous"
    ident = service.keys.identify(request.headers.get("authorization"))
    if ident is None:
        service.metrics.api_rejected.labels("unauthorized").inc()
        raise HTTPException(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
    return ident


Caller = Annotated[str, Depends(get_caller)]


def _remember(service: AgentService, record: TaskRecord, event: Event) -> dict[str, Any]:
    data = event.to_dict()
    service.store.add(record, event.kind, data)
    return data


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _stream(
    service: AgentService,
    events: AsyncIterator[Event],
    record: TaskRecord,
    release: Callable[[], None],
) -> AsyncIterator[bytes]:
    service.metrics.sse_streams.inc()
    seq = 0
    keepalive = service.settings.sse_keepalive_seconds
    pending: asyncio.Future[Event] | None = None
    try:
        while True:
            # The next event is awaited in its own future so that an idle stream (a long model
            # call) can send keep-alive comments without cancelling the loop.
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield sse.comment()
                continue
            ready, pending = pending, None
            try:
                event = ready.result()
            except StopAsyncIteration:
                break
            seq += 1
            yield sse.frame(event.kind, _remember(service, record, event), seq)
    finally:
        # No await in here: under a cancelled scope it would raise again and skip the cleanup.
        # The cancelled future carries the cancellation into the loop on its own.
        if pending is not None and not pending.done():
            pending.cancel()
        if record.state == "running":
            record.state = "cancelled"
            log.info("task_cancelled", task_id=record.task_id, reason="client disconnected")
        service.metrics.sse_streams.dec()
        release()


class _BoundedStream(StreamingResponse):
    """An SSE response that gives up after ``limit`` seconds.

    The loop's own deadline cannot help a client that stops reading: the stream then waits in
    ``send`` for the socket to drain, holding a concurrency slot. Past ``limit`` the response is
    abandoned (the connection closes) and the event generator closed, which cancels the task and
    releases its slot.
    """

    def __init__(self, content: AsyncIterator[bytes], limit: float | None, **kw: Any) -> None:
        super().__init__(content, **kw)
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.timeout(self.limit):
                await super().__call__(scope, receive, send)
        except TimeoutError:
            log.warning("sse_stream_abandoned", limit_seconds=self.limit)
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            if self.background is not None:
                await self.background()


async def _collect(
    service: AgentService, events: AsyncIterator[Event], record: TaskRecord, receive: Receive
) -> TaskResult | None:
    async def consume() -> TaskResult | None:
        result = None
        async for event in events:
            _remember(service, record, event)
            if isinstance(event, Finished):
                result = event.result
        return result

    work = asyncio.ensure_future(consume())
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (work, gone):
            if not fut.done():
                fut.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fut
    if work.cancelled():
        record.state = "cancelled"
        log.info("task_cancelled", task_id=record.task_id, reason="client disconnected")
        return None
    return work.result()


@router.post(
    "/v1/tasks",
    summary="Run a task",
    responses={
        200: {
            "model": TaskResultBody,
            "description": "The finished task (JSON), or with `Accept: text/event-stream` an SSE "
            "stream of events: round_started, model_output, fhir_request, fhir_response, "
            "error, finished (docs/agent.md).",
        },
        403: {"description": "An option asks for more than the server allows"},
        401: {"description": "Missing or invalid API key"},
        413: {"description": "Request body too large"},
        429: {"description": "Too many tasks running; retry after `Retry-After` seconds"},
    },
)
async def create_task(
    body: TaskRequest, request: Request, service: Service, caller: Caller
) -> Response:
    options = body.options
    if (
        options.write_mode == WriteMode.EXECUTE
        and service.loop.config.write_mode != WriteMode.EXECUTE
    ):
        raise HTTPException(403, "this agent does not allow write_mode=execute")
    if options.max_rounds is not None and options.max_rounds > service.loop.config.max_rounds:
        raise HTTPException(422, f"max_rounds may not exceed {service.loop.config.max_rounds}")
    loop = service.loop_for(
        max_rounds=options.max_rounds, write_mode=options.write_mode, parse_mode=options.parse_mode
    )
    if not service.gate.try_enter():
        service.metrics.api_rejected.labels("saturated").inc()
        raise HTTPException(429, "too many tasks running", {"Retry-After": "1"})
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            service.gate.leave()

    task_id = uuid.uuid4().hex
    record = service.store.start(task_id, caller)
    log.info("task_started", task_id=task_id, caller=caller)
    events = loop.run(TaskSpec(body.instruction, body.context, task_id=task_id, caller=caller))
    headers = {"X-Task-Id": task_id, "Location": f"/v1/tasks/{task_id}"}
    if sse.MEDIA_TYPE in request.headers.get("accept", ""):
        return _BoundedStream(
            _stream(service, events, record, release),
            _stream_limit(service),
            media_type=sse.MEDIA_TYPE,
            headers={**headers, **sse.HEADERS},
            background=BackgroundTask(release),
        )
    try:
        result = await _collect(service, events, record, request.receive)
    finally:
        release()
    if result is None:
        return Response(status_code=499, headers=headers)
    return JSONResponse(result.to_dict(), headers=headers)


def _stream_limit(service: AgentService) -> float | None:
    """How long an SSE response may last: the task deadline plus one FHIR call and a margin."""
    settings = service.settings
    if not settings.task_timeout_seconds:
        return None
    return settings.task_timeout_seconds + settings.fhir_timeout_seconds + STREAM_MARGIN_SECONDS


def _own(service: AgentService, task_id: str, caller: str) -> TaskRecord:
    record = service.store.get(task_id)
    if record is None or (record.caller != caller and not service.no_auth):
        raise HTTPException(404, "no such task (finished tasks are kept for a bounded time)")
    return record


@router.get("/v1/tasks/{task_id}", summary="A task's state and, when finished, its result")
async def get_task(task_id: str, service: Service, caller: Caller) -> JSONResponse:
    record = _own(service, task_id, caller)
    if record.result is None:
        return JSONResponse({"task_id": task_id, "state": record.state}, status_code=202)
    return JSONResponse({"state": record.state, **record.result})


@router.get("/v1/tasks/{task_id}/events", summary="Replay a task's events as SSE")
async def replay_task(task_id: str, service: Service, caller: Caller) -> StreamingResponse:
    record = _own(service, task_id, caller)

    async def frames() -> AsyncIterator[bytes]:
        for seq, (kind, data) in enumerate(list(record.events), start=1):
            yield sse.frame(kind, data, seq)

    return StreamingResponse(frames(), media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The model server and the FHIR server are reachable")
async def readyz(service: Service) -> JSONResponse:
    loop = service.loop

    async def bounded(check: Any) -> bool:
        try:
            return bool(await asyncio.wait_for(check, READY_TIMEOUT_SECONDS))
        except TimeoutError:
            return False

    model_ok, fhir_ok = await asyncio.gather(
        bounded(loop.model.reachable()), bounded(loop.fhir.reachable(loop.config.api_base))
    )
    body: dict[str, Any] = {
        "ready": model_ok and fhir_ok,
        "model": model_ok,
        "fhir": fhir_ok,
        "auth": "disabled" if service.no_auth else "enabled",
        "warnings": [AUTH_DISABLED_WARNING] if service.no_auth else [],
    }
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: Service) -> Response:
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
