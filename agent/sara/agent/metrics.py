"""Prometheus metrics of the agent, in a per-app ``CollectorRegistry`` (no global state).

Every label value comes from a closed set: HTTP methods, allowlisted resource types (else
``other``), status classes, outcomes, final statuses, guard reason codes and the configured
model name. Never an id, URL, date or free text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sara.agent.events import STATUSES

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_DECISION = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_ROUNDS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 64)
STATUS_LABELS: dict[str, str] = {s: s.replace(" ", "_") for s in STATUSES}
METHODS = ("GET", "POST")
DECISIONS = ("approved", "denied", "expired", "cancelled")
#: What became of a write the model asked for (``sara_fhir_writes_total{outcome}``).
WRITE_OUTCOMES = (
    "written", "failed", "acknowledged", "dry_run", "denied", "blocked", "invalid", "pending",
)  # fmt: skip
_WRITE_OUTCOME = {
    "ok": "written",
    "http_error": "failed",
    "transport_error": "failed",
    "acknowledged": "acknowledged",
    "dry_run": "dry_run",
    "dry_run_invalid": "invalid",
    "invalid": "invalid",
    "denied": "denied",
    "blocked": "blocked",
    "pending": "pending",
}
_TASK_SECONDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
CONSOLE_READS = ("ok", "http_error", "transport_error", "blocked", "too_large", "not_json")
#: Why a credential was refused (``sara_api_auth_failures_total{reason}``).
AUTH_FAILURES = ("missing", "invalid", "forbidden")
#: Why the server dropped an SSE stream (``sara_sse_streams_dropped_total{reason}``).
SSE_DROPS = ("slow_client", "time_limit")
MODEL_ERRORS = ("http", "timeout", "connection", "bad_body", "refused", "too_large")
AUDIT_ERRNOS = ("ENOSPC", "EACCES", "EROFS", "EIO", "EDQUOT", "EPERM")


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx``, or ``none`` when no HTTP answer came."""
    if status is None or not 100 <= status <= 599:
        return "none"
    return f"{status // 100}xx"


class AgentMetrics:
    """All of the agent's metrics, registered in ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        resource_types: frozenset[str] = frozenset(),
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._types = resource_types | {"Bundle"}
        r = self.registry
        self.fhir_requests = Counter(
            "sara_fhir_requests",
            "FHIR requests sent by the agent.",
            ["method", "resource_type", "status_class"],
            registry=r,
        )
        self.fhir_latency = Histogram(
            "sara_fhir_request_duration_seconds",
            "Latency of FHIR requests sent by the agent.",
            ["method", "resource_type", "status_class"],
            buckets=_LATENCY,
            registry=r,
        )
        self.fhir_blocked = Counter(
            "sara_fhir_blocked",
            "FHIR calls refused by the URL guard before any request.",
            ["method", "reason"],
            registry=r,
        )
        self.model_rounds = Counter(
            "sara_model_rounds",
            "Model rounds (chat completions) by outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.model_latency = Histogram(
            "sara_model_round_duration_seconds",
            "Latency of model rounds, retries included.",
            ["model", "outcome"],
            buckets=_LATENCY,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "sara_model_prompt_tokens",
            "Prompt tokens reported by the model.",
            ["model"],
            registry=r,
        )
        self.completion_tokens = Counter(
            "sara_model_completion_tokens",
            "Completion tokens reported by the model.",
            ["model"],
            registry=r,
        )
        self.tasks = Counter("sara_tasks", "Tasks by final status.", ["status"], registry=r)
        self.task_duration = Histogram(
            "sara_task_duration_seconds",
            "Time a task ran, by final status (sign-off waits excluded).",
            ["status"],
            buckets=_TASK_SECONDS,
            registry=r,
        )
        self.fhir_writes = Counter(
            "sara_fhir_writes",
            "Writes (POST actions) the model asked for, by what became of them: written, "
            "failed, acknowledged, dry_run, denied, blocked, invalid, pending (held for sign-off).",
            ["resource_type", "outcome"],
            registry=r,
        )
        self.task_rounds = Histogram(
            "sara_task_rounds", "Model rounds per finished task.", buckets=_ROUNDS, registry=r
        )
        self.tasks_in_flight = Gauge("sara_tasks_in_flight", "Tasks running now.", registry=r)
        self.sse_streams = Gauge("sara_sse_streams_open", "Open SSE streams.", registry=r)
        self.approvals_pending = Gauge(
            "sara_approvals_pending",
            "Writes waiting for a clinician's sign-off, in the whole run store.",
            registry=r,
        )
        self.approval_decisions = Counter(
            "sara_approval_decisions",
            "Decisions on pending writes by outcome.",
            ["outcome"],
            registry=r,
        )
        self.approval_wait = Histogram(
            "sara_approval_decision_seconds",
            "Time from a write's approval request to its decision (or expiry).",
            ["outcome"],
            buckets=_DECISION,
            registry=r,
        )
        self.store_errors = Counter(
            "sara_run_store_errors",
            "Run store operations that failed (the task goes on; the log says which).",
            ["operation"],
            registry=r,
        )
        self.console_reads = Counter(
            "sara_console_reads",
            "FHIR reads the clinician console asked for to show a run's artifacts, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.api_rejected = Counter(
            "sara_api_rejected",
            "API requests refused before running a task.",
            ["reason"],
            registry=r,
        )
        self.auth_failures = Counter(
            "sara_api_auth_failures",
            "API requests refused for their credentials: missing, invalid (no such key) or "
            "forbidden (the key lacks the role).",
            ["reason"],
            registry=r,
        )
        self.sse_dropped = Counter(
            "sara_sse_streams_dropped",
            "SSE streams the server closed on a client: slow_client (stopped reading) or "
            "time_limit (the stream outlived its limit).",
            ["reason"],
            registry=r,
        )
        self.model_errors = Counter(
            "sara_model_errors",
            "Model rounds that failed after the bounded retries, by reason (docs/faults.md).",
            ["reason"],
            registry=r,
        )
        self.audit_write_failures = Counter(
            "sara_audit_write_failures",
            "Audit records that could not be written (the FHIR call was refused or its answer "
            "withheld), by errno.",
            ["errno"],
            registry=r,
        )
        self.audit_sink_up = Gauge(
            "sara_audit_sink_up",
            "1 while the audit sink takes records; 0 after a failed write, until one succeeds.",
            registry=r,
        )
        self.audit_sink_up.set(1)

    def resource_label(self, resource_type: str | None) -> str:
        return resource_type if resource_type in self._types else "other"

    def fhir_call(
        self, method: str, resource_type: str | None, status: int | None, seconds: float
    ) -> None:
        labels = (
            method if method in METHODS else "other",
            self.resource_label(resource_type),
            status_class(status),
        )
        self.fhir_requests.labels(*labels).inc()
        self.fhir_latency.labels(*labels).observe(seconds)

    def blocked(self, method: str, reason: str) -> None:
        self.fhir_blocked.labels(method if method in METHODS else "other", reason).inc()

    def model_round(
        self, model: str, outcome: str, seconds: float, prompt_tokens: int, completion_tokens: int
    ) -> None:
        self.model_rounds.labels(model, outcome).inc()
        self.model_latency.labels(model, outcome).observe(seconds)
        if prompt_tokens:
            self.prompt_tokens.labels(model).inc(prompt_tokens)
        if completion_tokens:
            self.completion_tokens.labels(model).inc(completion_tokens)

    def task_finished(self, status: str, rounds: int, seconds: float | None = None) -> None:
        """Count a task by final status (``cancelled`` when its consumer went away)."""
        label = STATUS_LABELS.get(status, "cancelled")
        self.tasks.labels(label).inc()
        self.task_rounds.observe(rounds)
        if seconds is not None:
            self.task_duration.labels(label).observe(max(0.0, seconds))

    def write(self, resource_type: str | None, outcome: str) -> None:
        """Count one write the model asked for by what became of it."""
        label = _WRITE_OUTCOME.get(outcome, "invalid")
        self.fhir_writes.labels(self.resource_label(resource_type), label).inc()

    def decided(self, outcome: str, seconds: float) -> None:
        label = outcome if outcome in DECISIONS else "other"
        self.approval_decisions.labels(label).inc()
        self.approval_wait.labels(label).observe(max(0.0, seconds))

    def console_read(self, outcome: str) -> None:
        self.console_reads.labels(outcome if outcome in CONSOLE_READS else "other").inc()

    def model_error(self, reason: str) -> None:
        self.model_errors.labels(reason if reason in MODEL_ERRORS else "other").inc()

    def audit_failed(self, errno_name: str) -> None:
        self.audit_write_failures.labels(
            errno_name if errno_name in AUDIT_ERRNOS else "other"
        ).inc()
        self.audit_sink_up.set(0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
