"""Errors of the embedded FHIR server and the loader.

    SaraError (sara.common.errors)
    ├── UserError                  a command-line mistake (bad flag, missing file): exit status 2
    │   └── LoadFileError          a file given to ``--load`` / ``sara fhir load`` cannot be read
    └── FhirError                  answered to a FHIR client as an OperationOutcome with ``status``
        ├── BadRequest             400: malformed JSON, unknown search parameter, bad date, ...
        ├── NotFound               404: unknown resource id (HAPI-2001) or resource type (HAPI-0302)
        ├── Gone                   410: unknown or expired ``_getpages`` search id
        ├── NotAcceptable          406: a ``_format`` other than JSON
        ├── RequestTimeout         408: the request body took too long to arrive
        ├── PayloadTooLarge        413: request body over ``max_body_bytes``
        ├── Unprocessable          422: a structurally valid request the server cannot apply
        └── SearchTimeout          503: a search ran past ``query_timeout_seconds``

Every :class:`FhirError` carries the HTTP ``status``, the OperationOutcome issue ``code`` and the
``diagnostics`` text (HAPI-style, e.g. ``HAPI-2001: Resource Patient/X is not known``).
"""

from __future__ import annotations

from typing import ClassVar

from sara.common.errors import SaraError, UserError


class LoadFileError(UserError):
    """A file to load is missing, of an unknown kind, or not valid NDJSON / Bundle JSON."""


class FhirError(SaraError):
    """An error answered to the client as an OperationOutcome."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "processing"

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics


class BadRequest(FhirError):
    status = 400


class NotFound(FhirError):
    status = 404


class NotAcceptable(FhirError):
    status = 406


class RequestTimeout(FhirError):
    status = 408
    code = "timeout"


class Gone(FhirError):
    status = 410


class PayloadTooLarge(FhirError):
    status = 413
    code = "too-costly"


class Unprocessable(FhirError):
    status = 422


class SearchTimeout(FhirError):
    status = 503
    code = "timeout"
