"""The FHIR server's OpenAPI 3.1 document (pure), served at ``{base}/api-docs`` as HAPI does.

It describes what this server answers, for client generators and for schema-driven fuzzing
(``tests/fuzz/test_fhir_openapi.py``): the CapabilityStatement, and for every resource type
with search parameters (:data:`sara.fhir.params.REGISTRY`) its search (each parameter typed
by its FHIR kind), read, versioned read, create and update, plus the base's transaction/batch
POST and ``_getpages`` GET. Every other R4 type answers the same interactions with the same
shapes; they are left out so that the document stays small.

Every answer is ``application/fhir+json``; every refusal an OperationOutcome with the status
its :mod:`sara.fhir.errors` class names. Resource bodies are described by their envelope only
(an object with a ``resourceType``): the FHIR specification, not this document, defines them.
"""

from __future__ import annotations

from typing import Any

from sara.fhir import params

MEDIA = "application/fhir+json"
#: Search result parameters every search takes (``_count`` is clamped, never refused).
_CONTROL: dict[str, dict[str, Any]] = {
    "_count": {"type": "integer"},
    "_sort": {"type": "string"},
    "_summary": {"type": "string", "enum": ["count", "true", "false", "data", "text"]},
    "_total": {"type": "string", "enum": ["none", "estimate", "accurate"]},
    "_format": {"type": "string"},
    "_pretty": {"type": "string", "enum": ["true", "false"]},
    "_id": {"type": "string"},
}
_KIND: dict[str, dict[str, Any]] = {
    "token": {"type": "string", "description": "token: [system|]code"},
    "string": {"type": "string"},
    "date": {"type": "string", "description": "date: [prefix]YYYY[-MM[-DD[Thh:mm:ss[zz]]]]"},
    "reference": {"type": "string", "description": "reference: [Type/]id"},
    "number": {"type": "string"},
    "quantity": {"type": "string"},
    "uri": {"type": "string"},
}
_REASONS = {
    400: "Invalid request (OperationOutcome)",
    404: "Unknown resource (OperationOutcome)",
    406: "Unsupported _format (OperationOutcome)",
    408: "The request body took too long to arrive (OperationOutcome)",
    410: "Gone: a deleted resource or an expired page (OperationOutcome)",
    413: "Request body over the limit (OperationOutcome)",
    422: "The resource is not valid FHIR R4 (OperationOutcome)",
    503: "The search ran past the query timeout (OperationOutcome)",
}
_SCHEMAS: dict[str, Any] = {
    "Resource": {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
    },
    "Bundle": {
        "type": "object",
        "required": ["resourceType", "type"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"type": "string"},
            "total": {"type": "integer", "minimum": 0},
            "link": {"type": "array", "items": {"type": "object"}},
            "entry": {"type": "array", "items": {"type": "object"}},
        },
    },
    "OperationOutcome": {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["severity", "code"],
                    "properties": {
                        "severity": {"type": "string"},
                        "code": {"type": "string"},
                        "diagnostics": {"type": "string"},
                    },
                },
            },
        },
    },
    "CapabilityStatement": {
        "type": "object",
        "required": ["resourceType", "fhirVersion"],
        "properties": {
            "resourceType": {"const": "CapabilityStatement"},
            "fhirVersion": {"const": "4.0.1"},
        },
    },
}


def document(base_path: str = "/fhir") -> dict[str, Any]:
    """The OpenAPI document for a server whose FHIR base is ``base_path``."""
    base = base_path.rstrip("/")
    paths: dict[str, Any] = {
        f"{base}/metadata": {
            "get": _op("capabilities", "The server's CapabilityStatement", "CapabilityStatement")
        },
        f"{base}": {
            "get": _op(
                "getpages",
                "A further page of an earlier search (the Bundle's `next` link)",
                "Bundle",
                parameters=[
                    _query("_getpages", {"type": "string"}, required=True),
                    _query("_getpagesoffset", {"type": "integer", "minimum": 0}),
                    _query("_count", {"type": "integer"}),
                    _query("_pretty", _CONTROL["_pretty"]),
                ],
                errors=(400, 410),
            ),
            "post": _op(
                "transaction",
                "A transaction or batch Bundle",
                "Bundle",
                body="Bundle",
                errors=(400, 404, 408, 413, 422),
            ),
        },
    }
    for rtype in params.REGISTRY:
        search = [_query(n, s) for n, s in _CONTROL.items()] + [
            _query(p.name, _KIND.get(p.kind.value, {"type": "string"}))
            for p in sorted(params.params_for(rtype).values(), key=lambda p: p.name)
        ]
        rid = _path("id")
        paths[f"{base}/{rtype}"] = {
            "get": _op(
                f"search{rtype}",
                f"Search {rtype}",
                "Bundle",
                parameters=search,
                errors=(400, 406, 503),
            ),
            "post": _op(
                f"create{rtype}",
                f"Create a {rtype}",
                "Resource",
                body="Resource",
                status=201,
                errors=(400, 408, 413, 422),
            ),
        }
        paths[f"{base}/{rtype}/{{id}}"] = {
            "get": _op(
                f"read{rtype}",
                f"Read a {rtype}",
                "Resource",
                parameters=[rid, _query("_pretty", _CONTROL["_pretty"])],
                errors=(400, 404, 406, 410),
            ),
            "put": _op(
                f"update{rtype}",
                f"Create or update the {rtype} with this id",
                "Resource",
                parameters=[rid],
                body="Resource",
                status=(200, 201),
                errors=(400, 408, 413, 422),
            ),
        }
        paths[f"{base}/{rtype}/{{id}}/_history/{{vid}}"] = {
            "get": _op(
                f"vread{rtype}",
                f"Read one version of a {rtype}",
                "Resource",
                parameters=[rid, _path("vid")],
                errors=(400, 404, 406, 410),
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sara embedded FHIR server",
            "version": "4.0.1",
            "description": "FHIR R4 over HTTP, answering as HAPI FHIR does (docs/fhir-server.md).",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }


def _op(
    op_id: str,
    summary: str,
    schema: str,
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    status: int | tuple[int, ...] = 200,
    errors: tuple[int, ...] = (400,),
) -> dict[str, Any]:
    ok = status if isinstance(status, tuple) else (status,)
    responses: dict[str, Any] = {str(s): _content("Success", schema) for s in ok}
    for code in errors:
        responses[str(code)] = _content(_REASONS[code], "OperationOutcome")
    operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                MEDIA: {"schema": _ref(body)},
                "application/json": {"schema": _ref(body)},
            },
        }
    return operation


def _content(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {MEDIA: {"schema": _ref(schema)}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _path(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
    }
