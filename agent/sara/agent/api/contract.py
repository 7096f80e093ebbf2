"""The API's documented answers: the error body every 4xx/5xx shares, and the statuses of routes.

Every refusal is FastAPI's shape, ``{"detail": …}``: a sentence for the API's own refusals, the
list of validation errors for a malformed request (422), plus a ``code`` (and the FHIR
``status``) on the console's artifact reads. :func:`errors` declares the statuses a route may
answer, each with this body, so the OpenAPI document lists every status the server sends
(schemathesis checks it: tests/fuzz).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: What each error status means on any route; a route may word its own.
MEANINGS: dict[int, str] = {
    400: "The request body is not JSON (not even UTF-8)",
    401: "Missing or invalid API key",
    403: "The API key lacks the role this needs",
    404: "No such task (or not visible to this key)",
    408: "The request body took too long to arrive",
    409: "The request conflicts with the task's state",
    413: "Request body too large",
    422: "The request is malformed, or asks for more than this server allows",
    429: "A limit was reached (a rate, or too many running at once, in all or for this key); "
    "retry after `Retry-After` seconds",
    502: "The FHIR server could not be reached or did not answer with JSON",
    503: "Not ready",
}


class ErrorBody(BaseModel):
    """A refusal: ``detail`` in words, or (422) FastAPI's list of validation errors."""

    model_config = ConfigDict(extra="allow")

    detail: str | list[dict[str, Any]] = Field(
        ..., description="Why, in words; for a malformed request, the validation errors."
    )
    code: str | None = Field(None, description="Artifact reads: a reason the console words.")


def errors(*statuses: int, **worded: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for ``statuses`` with :class:`ErrorBody`; ``worded`` (``s404=…``)
    replaces a status's meaning for this route."""
    return {
        status: {
            "description": worded.get(f"s{status}", MEANINGS[status]),
            # a reference, not ``model``: FastAPI would file a model under the route's media
            # type, and an SSE route's refusals are still JSON (see :func:`complete`)
            "content": {"application/json": {"schema": {"$ref": _REF}}},
        }
        for status in statuses
    }


#: One event of a ``text/event-stream`` answer, as a client parses it (schemathesis checks each).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {"type": "string", "description": "The task's event sequence number"},
        "event": {"type": "string", "description": "The event type (docs/agent.md)"},
        "data": {"type": "string", "description": "The event, a JSON object with its `type`"},
        "retry": {"type": "integer"},
    },
}

#: Every route that needs an API key may answer these.
AUTHENTICATED = (401,)
#: Routes that take a request body may also answer these (``BodyLimit``, validation).
WITH_BODY = (400, 408, 413, 422)
_REF = "#/components/schemas/ErrorBody"


def complete(
    document: dict[str, Any], max_rounds: int, max_instruction_chars: int | None = None
) -> dict[str, Any]:
    """Finish FastAPI's OpenAPI document: add :class:`ErrorBody`, and write in this server's
    own limits (the models carry the widest any server allows): ``options.max_rounds`` may not
    exceed this server's ``max_rounds``, ``instruction`` its ``max_instruction_chars``."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    field = schemas.get("TaskOptions", {}).get("properties", {}).get("max_rounds")
    if field is not None:
        for variant in field.get("anyOf", [field]):
            if variant.get("type") == "integer":
                variant["maximum"] = max_rounds
        field["description"] = f"At most this server's max_rounds ({max_rounds})."
    instruction = schemas.get("TaskRequest", {}).get("properties", {}).get("instruction")
    if instruction is not None and max_instruction_chars is not None:
        instruction["maxLength"] = min(instruction.get("maxLength", 1 << 31), max_instruction_chars)
    _link_tasks(document.get("paths", {}))
    for path, item in document.get("paths", {}).items():
        if not path.startswith("/v1/tasks"):
            continue
        for operation in item.values():  # every task route reads or writes the run store
            operation["responses"].setdefault("503", _UNAVAILABLE)
    return document


#: A task route while the run store's database (or, for decisions and console reads, the audit
#: sink) is unavailable: ``{"detail", "code": "store_unavailable" | "audit_unwritable"}``.
_UNAVAILABLE = {
    "description": "The run store, or the audit sink a decision or console read needs, is "
    "unavailable: nothing was done; retry after `Retry-After` seconds",
    "content": {"application/json": {"schema": {"$ref": _REF}}},
}


#: Where a created task's id is, per status of ``POST /v1/tasks``; what may follow with it.
_CREATED = {"200": "$response.body#/task_id", "202": "$response.body#/id"}
_FOLLOWERS = {
    "GetTask": ("get", "/v1/tasks/{task_id}"),
    "CancelTask": ("post", "/v1/tasks/{task_id}:cancel"),
    "TaskPatient": ("get", "/v1/tasks/{task_id}/patient"),
}


def _link_tasks(paths: dict[str, Any]) -> None:
    """OpenAPI links from a created task to what takes its id (clients and schemathesis's
    stateful phase follow them), and from a task to a decision on its first action. Not to its
    event stream: a stream of a task waiting for sign-off stays open until a decision."""
    create = paths.get("/v1/tasks", {}).get("post")
    if create is None:
        return
    for status, pointer in _CREATED.items():
        response = create["responses"].get(status)
        if response is None:
            continue
        response["links"] = {
            name: {
                "operationId": paths[path][method]["operationId"],
                "parameters": {"task_id": pointer},
            }
            for name, (method, path) in _FOLLOWERS.items()
            if method in paths.get(path, {})
        }
    decide = paths.get("/v1/tasks/{task_id}/actions/{action_id}", {}).get("post")
    if decide is None:
        return
    first_action = {
        "operationId": decide["operationId"],
        "parameters": {
            "task_id": "$response.body#/id",
            "action_id": "$response.body#/actions/0/id",
        },
        "requestBody": {
            "decision": "approve",
            "payload_sha256": "$response.body#/actions/0/payload_sha256",
        },
    }
    # a task waiting for sign-off (GET, or the 202 of a JSON-mode POST) names its pending write
    task = paths.get("/v1/tasks/{task_id}", {}).get("get")
    if task is not None:
        task["responses"]["200"]["links"] = {"DecideFirstAction": first_action}
    waiting = create["responses"].get("202")
    if waiting is not None:
        waiting.setdefault("links", {})["DecideFirstAction"] = first_action
