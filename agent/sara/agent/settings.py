"""Typed settings of the agent service, read once at start-up and passed in.

Every field is also an environment variable ``SARA_AGENT_<FIELD>`` (upper case). The operator
renders exactly these names into the agent Deployment; a contract test pins the two together,
so renaming a field here is a breaking change for deployed clusters.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sara.common.clock import BENCH_NOW_ISO

#: ``console_now`` value that makes the console's templates state the real current time.
LIVE_CLOCK = "live"
_NOT_IN_HOST = set("/?#@ \\\t")


class WriteMode(StrEnum):
    """What the agent does with a model's POST action."""

    ACKNOWLEDGE = "acknowledge"  # benchmark-faithful: not sent, the model is told it succeeded
    EXECUTE = "execute"  # sent to the FHIR server; the created id is returned to the model
    DRY_RUN = "dry-run"  # validated, not stored, answered as such
    DENY = "deny"  # refused; the model is told writes are not allowed
    APPROVE = "approve"  # held as a pending action until a clinician signs or declines it


class ParseMode(StrEnum):
    """How strictly the model's text is read as one action."""

    STRICT = "strict"  # benchmark-faithful: anything but one action ends the task
    LENIENT = "lenient"  # salvage one action from verbose text; one retry after a format error


class Protocol(StrEnum):
    """How FHIR answers are put to the model."""

    MEDAGENTBENCH = "medagentbench"  # benchmark-faithful: raw "&_format=json", harness wording
    SARA = "sara"  # "_format=json" as a proper parameter; error diagnostics passed on
    COMPACT = "compact"  # as medagentbench, FHIR answers compacted (a third of the tokens)
    SARA_LEADERBOARD = "sara-leaderboard"  # as medagentbench, verbose answers salvaged


class AgentSettings(BaseSettings):
    """Configuration of ``sara agent serve`` (and the defaults of ``sara run``)."""

    model_config = SettingsConfigDict(env_prefix="SARA_AGENT_", extra="ignore")

    # Where the agent listens.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    # The FHIR R4 server the agent may contact (and nothing else).
    fhir_url: str = "http://127.0.0.1:8080/fhir/"
    fhir_bearer_token: SecretStr | None = None
    fhir_ca_bundle: Path | None = None
    fhir_timeout_seconds: float = Field(30.0, gt=0)
    fhir_max_response_bytes: int = Field(8 * 1024 * 1024, gt=0)

    # The OpenAI-compatible model server.
    model_url: str = "http://127.0.0.1:8001/v1"
    model: str = "sara-reference-policy"
    model_api_key: SecretStr | None = None
    model_timeout_seconds: float = Field(120.0, gt=0)
    model_max_retries: int = Field(3, ge=0, le=10)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(2048, gt=0)

    # The loop.
    max_rounds: int = Field(8, ge=1, le=64)
    prompt: str = "medagentbench"  # prompt profile name: medagentbench | sara
    functions_file: Path | None = None  # JSON function list shown to the model; None = built-in
    parse_mode: ParseMode = ParseMode.STRICT
    write_mode: WriteMode = WriteMode.EXECUTE
    protocol: Protocol = Protocol.SARA
    read_resource_types: str = ""  # comma-separated GET allowlist; "" = built-in list
    write_resource_types: str = ""  # comma-separated POST allowlist; "" = built-in list
    task_timeout_seconds: float = Field(600.0, ge=0)  # a task's whole time; 0 = no limit

    # API protection.
    api_keys: str = ""  # comma-separated bearer keys
    api_keys_file: Path | None = None  # one key per line, or YAML [{name, roles, key}] (a Secret)
    no_auth: bool = False
    max_concurrent_tasks: int = Field(64, ge=1)
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    sse_keepalive_seconds: float = Field(15.0, gt=0)  # ": keep-alive" comment when idle
    # Per-key limits (per replica; docs/security.md, "Limits"); 0 = no limit.
    task_rate_per_minute: float = Field(60.0, ge=0)  # POST /v1/tasks per key, on average
    task_rate_burst: int = Field(20, ge=1)  # ... and at once
    decision_rate_per_minute: float = Field(120.0, ge=0)  # sign-off decisions per key
    decision_rate_burst: int = Field(30, ge=1)
    max_tasks_per_key: int = Field(16, ge=0)  # running at once for one key
    max_streams_per_key: int = Field(8, ge=0)  # open SSE streams for one key
    # An idle keep-alive connection is kept this long. Longer than the idle timeout of the
    # ingress or load balancer in front (60 s is common): a server that closes first races the
    # proxy's next request on that connection (intermittent 502s). uvicorn's own default is 5 s.
    keep_alive_seconds: float = Field(75.0, gt=0)
    sse_send_timeout_seconds: float = Field(30.0, gt=0)  # a stream whose client stops reading
    max_instruction_chars: int = Field(8192, ge=1, le=20_000)  # a task's instruction
    # Browser hardening: origins (besides the console's own) allowed to call the API from a
    # browser, comma-separated "https://host[:port]" ("*" refused); HSTS max-age when the agent
    # is only reached over TLS (0 = no Strict-Transport-Security header).
    cors_origins: str = ""
    hsts_seconds: int = Field(0, ge=0)

    # The run store (tasks, their events, pending actions) and sign-off.
    store: str = "sqlite:///var/runs.db"  # sqlite:///path | postgresql://user:pass@host:port/db
    approval_ttl_seconds: float = Field(900.0, gt=0)  # a pending write expires (denied) after
    store_retention_days: float = Field(30.0, ge=0)  # finished tasks older are pruned; 0 = never
    store_retention_max_tasks: int = Field(100_000, ge=0)  # and beyond this many; 0 = no cap
    store_event_max_bytes: int = Field(256 * 1024, ge=4096)  # one stored event's JSON at most
    worker_lease_seconds: float = Field(
        30.0, ge=1
    )  # a silent replica's tasks are interrupted after

    # Observability.
    log_level: str = "INFO"
    audit_sink: str = "stdout"  # "stdout" or a file path (JSON lines)

    # The clinician console (served at /): the "now" its workflow templates state in a task's
    # context ("It's … now."). The default is the benchmark's clock, which the synthetic EHR and
    # the benchmark's EHR are charted around; "live" = the real clock (a hospital's own FHIR).
    console_now: str = BENCH_NOW_ISO

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins(cls, value: str) -> str:
        origins = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        for origin in origins:
            if origin == "*" or "*" in origin:
                raise ValueError("'*' is not allowed: list the exact origins")
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or _NOT_IN_HOST & set(rest):
                raise ValueError(f"{origin!r} is not an origin like https://portal.example.org")
        return ",".join(origins)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o for o in self.cors_origins.split(",") if o]

    @field_validator("console_now")
    @classmethod
    def _console_now(cls, value: str) -> str:
        value = value.strip()
        if value == LIVE_CLOCK:
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be '{LIVE_CLOCK}' or an ISO 8601 time with offset") from None
        if parsed.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2023-11-13T10:15:00+00:00")
        return value
