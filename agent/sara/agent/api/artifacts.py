"""What the console shows beside a run's timeline: FHIR answers, read again as of now.

GET /v1/tasks/{id}/events/{seq}/response   the answer to a GET the task sent (event ``seq``)
GET /v1/tasks/{id}/events/{seq}/trend      that Observation search's patient and code, newest
                                           30 results whatever their date (the trend chart)
GET /v1/tasks/{id}/patient                 the task's patient (``Patient/{id}``)

Task events carry no FHIR bodies (docs/agent.md, "Events"), so the console asks the agent to
issue a recorded GET once more — through the loop's own URL guard and FHIR client: only a GET
the task actually sent, only below the configured FHIR base, the answer capped at
``fhir_max_response_bytes``. What comes back is the chart *now* (``read_at``), not necessarily
what the agent saw; the console labels it so. The caller must be allowed to see the task (the
same rule as ``GET /v1/tasks/{id}``).

Each read is an audit record whose caller is the console's user, marked ``"via": "console"``,
and is counted in ``sara_fhir_requests_total`` and ``sara_console_reads_total{outcome}``. The
answer is ``{"read_at", "url", "resource"}`` — ``resource`` the FHIR JSON as the server sent it;
a failure is a JSON ``detail`` with a ``code`` the console words for clinicians
(``fhir_unreachable``, ``fhir_error``, ``too_large``, ``not_json``, ``not_readable``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import orjson
from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from sara.agent import audit
from sara.agent.api.auth import Principal
from sara.agent.api.contract import AUTHENTICATED, errors
from sara.agent.api.routes import Caller, Service, visible_task
from sara.agent.api.service import AgentService
from sara.agent.audit import AuditRecord
from sara.agent.errors import FhirError

router = APIRouter()
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR R4 ``id``
TREND_COUNT = 30
_FAILED = errors(
    *AUTHENTICATED,
    404,
    409,
    422,
    502,
    s404="No such task (or not visible to this key), event or patient",
    s409="That event is not a GET request the task sent",
)


def _refuse(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status)


async def _sent_get(service: AgentService, task_id: str, seq: int) -> dict[str, Any] | None:
    """The stored ``fhir_request`` event ``seq`` when it is a GET the task sent, else None."""
    found = await service.runner.store.events(task_id, after=seq - 1, limit=1)
    if not found or found[0].seq != seq:
        raise HTTPException(404, "no such event")
    data: dict[str, Any] = orjson.loads(found[0].data)
    readable = (
        found[0].kind == "fhir_request"
        and data.get("method") == "GET"
        and data.get("sent") is True
        and not data.get("truncated")  # the run store cut it: not the request that was sent
        and isinstance(data.get("url"), str)
    )
    return data if readable else None


NOT_READABLE = "only a GET request the task sent can be read again"


@router.get(
    "/v1/tasks/{task_id}/events/{seq}/response",
    summary="The FHIR answer to a GET the task sent, read again now (the console's artifacts)",
    responses=_FAILED,
)
async def event_response(
    task_id: str,
    seq: Annotated[int, PathParam(ge=1, le=10**9)],
    service: Service,
    principal: Caller,
) -> JSONResponse:
    await visible_task(service, task_id, principal)
    data = await _sent_get(service, task_id, seq)
    if data is None:
        return _refuse(409, "not_readable", NOT_READABLE)
    return await read(service, principal, task_id, data["url"], int(data.get("round") or 0))


@router.get(
    "/v1/tasks/{task_id}/events/{seq}/trend",
    summary="The newest results of the patient and code an Observation search of the task named",
    responses=_FAILED,
)
async def event_trend(
    task_id: str,
    seq: Annotated[int, PathParam(ge=1, le=10**9)],
    service: Service,
    principal: Caller,
) -> JSONResponse:
    await visible_task(service, task_id, principal)
    data = await _sent_get(service, task_id, seq)
    if data is None:
        return _refuse(409, "not_readable", NOT_READABLE)
    parts = urlsplit(data["url"])
    query = dict(parse_qsl(parts.query))
    patient = query.get("patient") or query.get("subject")
    code = query.get("code")
    if parts.path.rstrip("/") != "Observation" or not patient or not code:
        return _refuse(409, "not_readable", "only an Observation search by patient and code")
    trend = f"Observation?{urlencode({'patient': patient, 'code': code})}"
    trend += f"&_sort=-date&_count={TREND_COUNT}"
    return await read(service, principal, task_id, trend, int(data.get("round") or 0))


@router.get(
    "/v1/tasks/{task_id}/patient",
    summary="The task's patient as the FHIR server has it now (the console's patient card)",
    responses=_FAILED,
)
async def task_patient(task_id: str, service: Service, principal: Caller) -> JSONResponse:
    task = await visible_task(service, task_id, principal)
    patient = (task.patient or "").removeprefix("Patient/")
    if not FHIR_ID.match(patient):
        raise HTTPException(404, "this task names no patient (yet)")
    answer = await read(service, principal, task_id, f"Patient/{patient}", 0)
    if answer.status_code != 502 or orjson.loads(answer.body).get("status") not in (404, 410):
        return answer
    # Not a FHIR id: the clinician may have typed the MRN, which is an identifier.
    return await read(service, principal, task_id, f"Patient?identifier={quote(patient)}", 0)


async def read(
    service: AgentService, principal: Principal, task_id: str, relative: str, rnd: int
) -> JSONResponse:
    """GET ``relative`` (below the FHIR base) for the console; audited and counted."""
    loop, metrics = service.loop, service.metrics
    decision = loop.guard.check("GET", loop.guard.base.url + relative)
    if not decision.allowed or decision.url is None:
        metrics.console_read("blocked")
        return _refuse(
            409, "not_readable", f"this request cannot be read again ({decision.reason})"
        )
    read_at = datetime.now(UTC).isoformat(timespec="milliseconds")

    def record(outcome: str, status: int | None, seconds: float) -> None:
        sink = loop.audit
        if sink is not None:
            sink.write(
                AuditRecord(
                    ts=read_at,
                    task_id=task_id,
                    round=rnd,
                    caller=principal.name,
                    method="GET",
                    resource_type=metrics.resource_label(decision.resource_type),
                    patient=audit.patient_reference(decision.url),
                    status=status,
                    duration_ms=round(seconds * 1000, 3),
                    outcome=outcome,
                    via="console",
                )
            )
            sink.flush()

    try:
        reply = await loop.fhir.get(decision.url)
    except FhirError:
        record("transport_error", None, 0.0)
        metrics.console_read("transport_error")
        return _refuse(502, "fhir_unreachable", "the FHIR server could not be reached")
    metrics.fhir_call("GET", decision.resource_type, reply.status, reply.elapsed)
    ok = 200 <= reply.status < 300
    record("ok" if ok else "http_error", reply.status, reply.elapsed)
    if not ok:
        metrics.console_read("http_error")
        body = {"detail": f"the FHIR server answered {reply.status}", "code": "fhir_error"}
        return JSONResponse({**body, "status": reply.status}, status_code=502)
    if reply.truncated:
        metrics.console_read("too_large")
        return _refuse(502, "too_large", "the FHIR answer is larger than the agent reads")
    try:
        resource = orjson.loads(reply.text)
    except orjson.JSONDecodeError:
        metrics.console_read("not_json")
        return _refuse(502, "not_json", "the FHIR server did not answer with JSON")
    metrics.console_read("ok")
    return JSONResponse({"read_at": read_at, "url": relative, "resource": resource})
