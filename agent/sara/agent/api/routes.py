"""HTTP routes of the agent: tasks (JSON, SSE or async), history, events, sign-off, health.

POST /v1/tasks                              run a task (JSON; SSE; Prefer: respond-async)
GET  /v1/tasks                              history: filters, cursor pages, newest first
GET  /v1/tasks/{id}                         status, result, actions
GET  /v1/tasks/{id}/events                  the stored stream, then live; Last-Event-ID
POST /v1/tasks/{id}:cancel                  cancel wherever it runs or waits
POST /v1/tasks/{id}/actions/{action_id}     sign (approve) or decline (deny) a pending write
GET  /v1/me                                 the caller: name and roles (the console's sign-in)

The console's artifact reads are in :mod:`sara.agent.api.artifacts`, its pages in
:mod:`sara.agent.console.pages`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Message, Receive, Scope, Send

from sara.agent import sse
from sara.agent.api.auth import ANONYMOUS, Principal
from sara.agent.api.contract import AUTHENTICATED, SSE_EVENT, WITH_BODY, errors
from sara.agent.api.limits import Gate, RateLimit
from sara.agent.api.live import Frame, Live
from sara.agent.api.service import AUTH_DISABLED_WARNING, AgentService
from sara.agent.loop import TaskSpec
from sara.agent.settings import ParseMode, WriteMode
from sara.agent.store.runs import STATUSES, DecisionError, Task

log = structlog.get_logger("sara.agent.api")
router = APIRouter()
READY_TIMEOUT_SECONDS = 5.0
STREAM_MARGIN_SECONDS = 30.0  # beyond the task deadline, for the last frames to drain
FOLLOW_LIMIT_SECONDS = 3600.0  # one events stream at most; the client reconnects with its id


class TaskOptions(BaseModel):
    """Per-task overrides; they may only make the agent more careful than the server's settings."""

    max_rounds: int | None = Field(None, ge=1, le=64)
    write_mode: WriteMode | None = None
    parse_mode: ParseMode | None = None


class TaskRequest(BaseModel):
    instruction: str = Field(..., min_length=1, max_length=20_000)
    context: str = Field("", max_length=100_000)
    patient: str | None = Field(
        None,
        max_length=128,
        pattern=r"^(Patient/)?[A-Za-z0-9\-.]{1,64}$",
        description="The task's patient (MRN / FHIR id). In write mode approve an order must "
        "be for this patient; without it, the first patient the agent reads.",
    )
    options: TaskOptions = Field(default_factory=TaskOptions)


class TaskAccepted(BaseModel):
    """A task that goes on without this connection (documentation model)."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str


class Decision(BaseModel):
    decision: Literal["approve", "deny"]
    payload_sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$")
    reason: str | None = Field(None, max_length=2000)


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
    error: str | None = Field(None, description="Why a task error failed, in words.")


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


def get_principal(
    request: Request,
    service: Service,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Principal:
    """The caller, or 401 (counted and logged, without what was presented)."""
    if service.no_auth:
        return ANONYMOUS
    authorization = request.headers.get("authorization")
    principal = service.keys.authenticate(authorization)
    if principal is None:
        service.metrics.api_rejected.labels("unauthorized").inc()
        _auth_failed(service, request, "missing" if not authorization else "invalid")
        raise HTTPException(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
    return principal


def _auth_failed(service: AgentService, request: Request, reason: str, key: str = "") -> None:
    """Count and log a refused credential: the reason, the route, the client's address and (for
    a known key without the role) the key's name or id; never the header or the key."""
    service.metrics.auth_failures.labels(reason).inc()
    route = request.scope.get("route")
    log.warning(
        "auth_failed",
        reason=reason,
        key=key or None,
        method=request.method,
        route=getattr(route, "path", None),
        client=request.client.host if request.client else None,
    )


Caller = Annotated[Principal, Depends(get_principal)]


def _need(service: AgentService, principal: Principal, role: str, request: Request) -> None:
    if not principal.can(role):
        service.metrics.api_rejected.labels("forbidden").inc()
        _auth_failed(service, request, "forbidden", principal.name)
        raise HTTPException(403, f"this API key lacks the '{role}' role")


def _too_many(service: AgentService, reason: str, detail: str, retry_after: int = 1) -> NoReturn:
    """429 with ``Retry-After`` (whole seconds, at least 1)."""
    service.metrics.api_rejected.labels(reason).inc()
    raise HTTPException(429, detail, {"Retry-After": str(max(1, retry_after))})


def _rate(service: AgentService, limit: RateLimit, what: str, key: str) -> None:
    wait = limit.take(key)
    if wait:
        _too_many(
            service,
            f"rate_{what}",
            f"rate limit: at most {limit.per_minute:g} {what} a minute per API key "
            f"(bursts of {limit.burst}); retry after {wait} s",
            wait,
        )


def _enter(service: AgentService, gate: Gate, what: str, key: str) -> None:
    """A slot of ``gate`` for ``key``, or 429."""
    refused = gate.refusal(key)
    if refused == "saturated":
        _too_many(service, "saturated", f"too many {what} running")
    elif refused is not None:
        _too_many(
            service,
            f"key_{what}",
            f"too many {what} open for this API key (at most {gate.per_key} at once)",
        )
    gate.enter(key)


def _sees_all(principal: Principal) -> bool:
    return principal.can("read") or principal.can("approve")


async def visible_task(service: AgentService, task_id: str, principal: Principal) -> Task:
    task = await service.runner.store.get(task_id) if len(task_id) <= 64 else None
    if task is None or not (_sees_all(principal) or task.principal == principal.name):
        raise HTTPException(404, "no such task")
    return task


def _options(service: AgentService, options: TaskOptions) -> dict[str, Any]:
    config = service.loop.config
    if options.write_mode == WriteMode.EXECUTE and config.write_mode != WriteMode.EXECUTE:
        raise HTTPException(403, "this agent does not allow write_mode=execute")
    if options.max_rounds is not None and options.max_rounds > config.max_rounds:
        raise HTTPException(422, f"max_rounds may not exceed {config.max_rounds}")
    return {
        "write_mode": (options.write_mode or config.write_mode).value,
        "parse_mode": (options.parse_mode or config.parse_mode).value,
        "max_rounds": options.max_rounds or config.max_rounds,
        "model": service.settings.model,
        "prompt": config.prompt,
        "protocol": config.protocol,
    }


@router.post(
    "/v1/tasks",
    summary="Run a task",
    responses={
        200: {
            "model": TaskResultBody,
            "content": {sse.MEDIA_TYPE: {"schema": SSE_EVENT}},
            "description": "The finished task (JSON), or with `Accept: text/event-stream` an SSE "
            "stream of events (docs/agent.md). The task is bound to this connection: a client "
            "that goes away cancels it (status 499 in the server's log; the client never sees it).",
        },
        202: {
            "model": TaskAccepted,
            "description": "`Prefer: respond-async`: the task runs on without the connection "
            "(body `id`, header `Location`). Or, in JSON mode, the task waits for sign-off "
            "(body: the task, as `GET /v1/tasks/{id}`).",
        },
        **errors(
            *AUTHENTICATED,
            403,
            429,
            *WITH_BODY,
            s403="The key lacks the `run` role, or asks for `write_mode=execute` where the "
            "server does not allow it",
            s422="The request is malformed, the instruction is longer than this server's "
            "`max_instruction_chars`, or `options.max_rounds` exceeds its `max_rounds` (the "
            "schema's maxima)",
            s429="This key's task rate, this key's running tasks or streams, or the server's "
            "running tasks are at their limit; retry after `Retry-After` seconds",
        ),
    },
)
async def create_task(
    body: TaskRequest, request: Request, service: Service, principal: Caller
) -> Response:
    key = principal.name
    _need(service, principal, "run", request)
    _rate(service, service.task_rate, "tasks", key)
    limit = service.settings.max_instruction_chars
    if len(body.instruction) > limit:
        raise HTTPException(
            422,
            f"the instruction is {len(body.instruction)} characters; this server accepts at "
            f"most {limit} (max_instruction_chars)",
        )
    options = _options(service, body.options)
    asynchronous = "respond-async" in request.headers.get("prefer", "").lower()
    streaming = not asynchronous and sse.MEDIA_TYPE in request.headers.get("accept", "")
    if streaming:
        _enter(service, service.streams, "streams", key)
    try:
        _enter(service, service.gate, "tasks", key)
    except HTTPException:
        if streaming:
            service.streams.leave(key)
        raise
    spec = TaskSpec(body.instruction, body.context, caller=key, patient=body.patient)
    try:
        started = await service.runner.start(spec, options, principal=key)
    except BaseException:
        service.gate.leave(key)
        if streaming:
            service.streams.leave(key)
        raise
    task_id, live = started.task_id, started.live
    headers = {"X-Task-Id": task_id, "Location": f"/v1/tasks/{task_id}"}
    if asynchronous:
        return JSONResponse(
            {"id": task_id, "status": "running", "events": f"/v1/tasks/{task_id}/events"},
            status_code=202,
            headers={**headers, "Preference-Applied": "respond-async"},
        )
    if streaming:
        return _BoundedStream(
            _bound_stream(service, task_id),
            _stream_limit(service, options["write_mode"]),
            service=service,
            key=key,
            media_type=sse.MEDIA_TYPE,
            headers={**headers, **sse.HEADERS},
        )
    if not await _until_done(live, request.receive):
        service.runner.cancel_soon(task_id, "client disconnected")
        log.info("task_cancelled", task_id=task_id, reason="client disconnected")
        return Response(status_code=499, headers=headers)
    if live.result is not None:
        return JSONResponse(live.result.to_dict(), headers=headers)
    task = await service.runner.store.get(task_id)  # waiting for sign-off, or stopped
    view = task.to_dict() if task else {"id": task_id}
    return JSONResponse(view, status_code=202, headers=headers)


async def _until_done(live: Live, receive: Receive) -> bool:
    """Wait for the segment to end; False when the client went away first."""
    ended = asyncio.ensure_future(live.ended.wait())
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({ended, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (ended, gone):
            if not fut.done():
                fut.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fut
    return live.ended.is_set()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _bound_stream(service: AgentService, task_id: str) -> AsyncIterator[bytes]:
    """The stream of a task bound to its connection: leaving early cancels the task."""
    complete = False
    service.metrics.sse_streams.inc()
    try:
        async for frame in service.runner.follow(task_id):
            yield _frame(frame)
        complete = True
    finally:
        service.metrics.sse_streams.dec()
        if not complete:
            service.runner.cancel_soon(task_id, "client disconnected")
            log.info("task_cancelled", task_id=task_id, reason="client disconnected")


def _frame(frame: Frame | None) -> bytes:
    return sse.comment() if frame is None else sse.raw(frame.kind, frame.text, frame.seq)


class EventStream(StreamingResponse):
    """An SSE response (its media type, for the OpenAPI document)."""

    media_type = sse.MEDIA_TYPE


class _SlowClient(Exception):
    """One ``send`` of a stream waited longer than the send timeout for the socket to drain."""


class _BoundedStream(EventStream):
    """An SSE response that gives up after ``limit`` seconds, or when one write waits longer
    than ``sse_send_timeout_seconds``; it holds one of its key's stream slots until it ends.

    A client that stops reading leaves the stream waiting in ``send`` for the socket to drain
    (uvicorn's flow control: what waits is one frame and the transport's bounded buffer, never
    a growing queue). Past either limit the response is abandoned (the connection closes) and
    the event generator closed, which — for a task bound to its connection — cancels the task
    and frees its slot.
    """

    def __init__(
        self,
        content: AsyncIterator[bytes],
        limit: float | None,
        *,
        service: AgentService,
        key: str,
        **kw: Any,
    ) -> None:
        super().__init__(content, **kw)
        self.limit = limit
        self.service = service
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        send_timeout = self.service.settings.sse_send_timeout_seconds

        async def bounded_send(message: Message) -> None:
            try:
                async with asyncio.timeout(send_timeout):
                    await send(message)
            except TimeoutError:
                raise _SlowClient from None

        try:
            async with asyncio.timeout(self.limit):
                await super().__call__(scope, receive, bounded_send)
        except (TimeoutError, _SlowClient) as exc:
            reason = "slow_client" if isinstance(exc, _SlowClient) else "time_limit"
            self.service.metrics.sse_dropped.labels(reason).inc()
            log.warning("sse_stream_abandoned", reason=reason, limit_seconds=self.limit)
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            if self.background is not None:
                await self.background()
        finally:
            self.service.streams.leave(self.key)


def _stream_limit(service: AgentService, write_mode: str) -> float | None:
    """How long a task's SSE response may last: its deadline plus one FHIR call and a margin
    (plus the sign-off time in approve mode)."""
    settings = service.settings
    if not settings.task_timeout_seconds:
        return None
    limit = settings.task_timeout_seconds + settings.fhir_timeout_seconds + STREAM_MARGIN_SECONDS
    if write_mode == WriteMode.APPROVE.value:
        limit += settings.approval_ttl_seconds * service.loop.config.max_rounds
    return limit


@router.get(
    "/v1/tasks",
    summary="Run history: newest first, filtered, in cursor pages",
    responses=errors(
        *AUTHENTICATED,
        403,
        422,
        s403="Only tasks of its own for a key without the `read` role",
        s422="A malformed filter or cursor",
    ),
)
async def list_tasks(
    service: Service,
    principal: Caller,
    status: Annotated[
        str | None, Query(description=f"One of {', '.join(STATUSES)}", max_length=24)
    ] = None,
    patient: Annotated[str | None, Query(max_length=128)] = None,
    principal_name: Annotated[str | None, Query(alias="principal", max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, with offset")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    if status is not None and status not in STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
    if since is not None and since.tzinfo is None:
        raise HTTPException(422, "since needs a UTC offset, e.g. 2026-12-06T10:00:00Z")
    if not _sees_all(principal):
        if principal_name not in (None, principal.name):
            raise HTTPException(403, "this API key may only list its own tasks (role 'read')")
        principal_name = principal.name
    try:
        tasks, next_cursor = await service.runner.store.list_tasks(
            status=status,
            patient=patient.removeprefix("Patient/") if patient else None,
            principal=principal_name,
            since=since,
            cursor=cursor,
            limit=limit,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return JSONResponse({"items": [t.summary() for t in tasks], "next_cursor": next_cursor})


@router.get(
    "/v1/tasks/{task_id}",
    summary="A task: status, settings, actions, result",
    responses=errors(*AUTHENTICATED, 404, 422),
)
async def get_task(task_id: str, service: Service, principal: Caller) -> JSONResponse:
    task = await visible_task(service, task_id, principal)
    return JSONResponse(task.to_dict())


@router.get(
    "/v1/tasks/{task_id}/events",
    summary="A task's events as SSE: the stored stream, then live until it ends",
    response_class=EventStream,
    responses={
        200: {
            "content": {sse.MEDIA_TYPE: {"schema": SSE_EVENT}},
            "description": "The task's events as `text/event-stream` (docs/agent.md)",
        },
        **errors(
            *AUTHENTICATED,
            404,
            422,
            429,
            s422="A malformed `after` or `Last-Event-ID`",
            s429="This key has as many streams open as it may; retry after `Retry-After` seconds",
        ),
    },
)
async def task_events(
    task_id: str,
    request: Request,
    service: Service,
    principal: Caller,
    after: Annotated[int | None, Query(ge=0, description="Resume after this event id")] = None,
) -> StreamingResponse:
    await visible_task(service, task_id, principal)
    start = after if after is not None else _last_event_id(request)
    _enter(service, service.streams, "streams", principal.name)

    async def frames() -> AsyncIterator[bytes]:
        service.metrics.sse_streams.inc()
        try:
            async for frame in service.runner.follow(task_id, start):
                yield _frame(frame)
        finally:
            service.metrics.sse_streams.dec()

    return _BoundedStream(
        frames(),
        FOLLOW_LIMIT_SECONDS,
        service=service,
        key=principal.name,
        media_type=sse.MEDIA_TYPE,
        headers=dict(sse.HEADERS),
    )


def _last_event_id(request: Request) -> int:
    value = request.headers.get("last-event-id", "").strip()
    if not value:
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise HTTPException(422, "Last-Event-ID must be an event id from this stream")
    return int(value)


@router.post(
    "/v1/tasks/{task_id}:cancel",
    summary="Cancel a task (running or waiting)",
    responses={
        202: {"description": "Cancelling: the task is still winding down"},
        **errors(
            *AUTHENTICATED,
            403,
            404,
            409,
            422,
            s403="Only its starter or a key with the `approve` role may cancel",
            s409="The task has already ended",
        ),
    },
)
async def cancel_task(task_id: str, service: Service, principal: Caller) -> JSONResponse:
    task = await visible_task(service, task_id, principal)
    if task.principal != principal.name and not principal.can("approve"):
        raise HTTPException(403, "only its starter or a key with the 'approve' role may cancel")
    status = await service.runner.cancel(task_id, f"cancelled by {principal.name}")
    if status is None:
        raise HTTPException(409, f"the task has already ended ({task.status})")
    return JSONResponse(
        {"id": task_id, "status": status}, status_code=202 if status == "running" else 200
    )


@router.post(
    "/v1/tasks/{task_id}/actions/{action_id}",
    summary="Sign (approve) or decline (deny) a pending write",
    responses=errors(
        *AUTHENTICATED,
        403,
        404,
        409,
        429,
        *WITH_BODY,
        s403="The key lacks the `approve` role",
        s404="No such task, or no such action on it",
        s409="Already decided, expired, or the hash is not the payload shown",
        s429="This key's decision rate is at its limit; retry after `Retry-After` seconds",
    ),
)
async def decide(
    task_id: str,
    action_id: str,
    body: Decision,
    request: Request,
    service: Service,
    principal: Caller,
) -> JSONResponse:
    _need(service, principal, "approve", request)
    _rate(service, service.decision_rate, "decisions", principal.name)
    await visible_task(service, task_id, principal)
    try:
        action = await service.runner.decide(
            task_id,
            action_id,
            decision="approved" if body.decision == "approve" else "denied",
            payload_sha256=body.payload_sha256,
            principal=principal.name,
            reason=body.reason,
            wait_seconds=service.settings.fhir_timeout_seconds + 5,
        )
    except DecisionError as exc:
        raise HTTPException(404 if exc.code == "not_found" else 409, exc.message) from None
    return JSONResponse(action.to_dict())


@router.get(
    "/v1/me",
    summary="The caller: the API key's name and roles, the agent's write mode",
    responses=errors(*AUTHENTICATED),
)
async def me(service: Service, principal: Caller) -> dict[str, Any]:
    return {
        "name": principal.name,
        "roles": sorted(principal.roles),
        "auth": "disabled" if service.no_auth else "enabled",
        "write_mode": service.loop.config.write_mode.value,
    }


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The model server and the FHIR server are reachable; the audit sink writes",
    responses={503: {"description": "Not ready: the same body, `ready` false"}},
)
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
    # no record, no FHIR access: an audit sink that cannot write (disk full, unwritable file)
    # makes the replica unready, with the reason; the probe retries it, so it recovers
    audit_failure = loop.audit.probe() if loop.audit is not None else None
    body: dict[str, Any] = {
        "ready": model_ok and fhir_ok and audit_failure is None,
        "model": model_ok,
        "fhir": fhir_ok,
        "audit": audit_failure is None,
        "auth": "disabled" if service.no_auth else "enabled",
        "warnings": [AUTH_DISABLED_WARNING] if service.no_auth else [],
    }
    if audit_failure is not None:
        body["audit_error"] = audit_failure
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: Service) -> Response:
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
