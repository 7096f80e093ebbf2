"""Errors of the agent component.

    SaraError                      (sara.common.errors)
    ├── UserError                  a mistake by whoever ran a command: one line, exit status 2
    └── AgentError                 anything the agent itself raises
        ├── ConfigError            the loop cannot be built (unknown profile, bad function list)
        ├── ModelError             the model server failed: one ``error`` event, ``task error``
        │   └── ContextLimitError  the conversation no longer fits: ``agent context limit``
        ├── StoreUnavailable       the run store cannot be reached (PostgreSQL down, restarting):
        │                          the API answers 503 with Retry-After
        ├── FhirError              a FHIR call failed before an HTTP answer (timeout, refused,
        │                          too large): turned into a message the model can recover from
        └── AuditError             the audit sink cannot take a record (disk full, unwritable):
                                   the FHIR call is refused or its answer withheld, ``task error``

Blocked URLs are not exceptions: the URL guard returns a decision, and the loop tells the model.
"""

from __future__ import annotations

from sara.common.errors import SaraError, UserError

__all__ = [
    "AgentError",
    "AuditError",
    "ConfigError",
    "ContextLimitError",
    "FhirError",
    "ModelError",
    "StoreUnavailable",
    "UserError",
]


class AgentError(SaraError):
    """Base of the agent's own errors."""


class ConfigError(AgentError, UserError):
    """The loop's configuration is unusable; the message says what to change."""


class ModelError(AgentError):
    """The model server did not give a usable answer (after the bounded retries).

    ``reason`` is a closed set, for the ``sara_model_errors_total`` metric: ``http`` (5xx, 429),
    ``timeout``, ``connection`` (refused, reset, truncated), ``bad_body``, ``refused`` (4xx),
    ``too_large``, ``context_limit``.
    """

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class ContextLimitError(ModelError):
    """The model server says the conversation exceeds its context window."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="context_limit")


class FhirError(AgentError):
    """A FHIR request did not produce an HTTP answer (network error, timeout)."""


class AuditError(AgentError):
    """An audit record could not be written; ``errno_name`` (``ENOSPC``, ``EACCES``, …) says why."""

    def __init__(self, message: str, *, errno_name: str = "other") -> None:
        super().__init__(message)
        self.errno_name = errno_name


class StoreUnavailable(AgentError):
    """The run store's database cannot be reached now (connection refused, lost, restarting)."""
