"""The agent service's part of the spec: write mode, run store, retention (pure).

The rule that ties replicas to the store is a model validator: its failure becomes
``Accepted=False`` like every other cross-field rule.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from sara.operator.model.base import Quantity, Resources, SecretKeyRef, SpecBase


class WriteMode(StrEnum):
    """What the agent does with a model's POST action (mirrors the agent's settings)."""

    ACKNOWLEDGE = "acknowledge"
    EXECUTE = "execute"
    DRY_RUN = "dry-run"
    DENY = "deny"
    APPROVE = "approve"


class StoreType(StrEnum):
    """Where the agent keeps its runs (tasks, events, pending actions, sign-offs)."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class SqliteStore(SpecBase):
    """A SQLite run store on a ReadWriteOnce PVC: one agent replica."""

    size: Quantity = Field("1Gi", description="Size of the run store PVC.")
    storage_class_name: str | None = Field(None, description="StorageClass (cluster default).")
    retain_on_delete: bool = Field(
        True,
        description=(
            "Keep the run store PVC (task history, sign-offs) when the ClinicalAgent is deleted."
        ),
    )


class PostgresqlStore(SpecBase):
    """A PostgreSQL run store the operator does not run: any number of agent replicas."""

    url_secret_ref: SecretKeyRef = Field(
        description="Secret key holding postgresql://user:pass@host:port/db (env SARA_AGENT_STORE)."
    )


class Store(SpecBase):
    """The agent's durable run store: tasks, their events, pending actions and sign-offs."""

    type: StoreType = Field(
        StoreType.SQLITE,
        description="sqlite (a PVC, one replica) | postgresql (a database from a Secret).",
    )
    sqlite: SqliteStore = Field(default_factory=SqliteStore, description="Type sqlite.")
    postgresql: PostgresqlStore | None = Field(None, description="Type postgresql.")

    @model_validator(mode="after")
    def _type_needs(self) -> Store:
        if self.type is StoreType.POSTGRESQL and self.postgresql is None:
            raise ValueError(
                "agent.store.type postgresql needs agent.store.postgresql.urlSecretRef"
            )
        return self


class Retention(SpecBase):
    """How long finished tasks stay in the run store."""

    days: int = Field(
        30, ge=0, le=36500, description="Finished tasks older than this are pruned; 0 = never."
    )
    max_tasks: int = Field(
        100000,
        ge=0,
        le=100_000_000,
        description="At most this many finished tasks are kept (oldest pruned first); 0 = no cap.",
    )


class AgentSpec(SpecBase):
    """The agent service (`sara agent serve`)."""

    image: str | None = Field(None, description="Image override (default: the Sara image).")
    replicas: int = Field(
        1,
        ge=0,
        le=64,
        description="Agent replicas; more than 1 needs store.type postgresql (one SQLite writer).",
    )
    max_rounds: int = Field(8, ge=1, le=64, description="Model rounds per task.")
    prompt: Literal["medagentbench", "sara"] = Field("medagentbench", description="Prompt profile.")
    write_mode: WriteMode = Field(
        WriteMode.EXECUTE,
        description=(
            "POST actions: acknowledge | execute | dry-run | deny | approve (held as pending "
            "actions until a clinician signs them; see approvalTtlSeconds)."
        ),
    )
    parse_mode: Literal["strict", "lenient"] = Field(
        "strict", description="How strictly the model's text is read as one action."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        None,
        description=(
            "Secret key holding the API keys: one per line (every role), or YAML "
            "[{name, roles: [run, approve, read], key | key_sha256}]; generated if absent "
            "(one key, every role)."
        ),
    )
    max_concurrent_tasks: int = Field(
        64, ge=1, le=4096, description="Tasks one replica runs at once."
    )
    task_timeout_seconds: int = Field(
        600,
        ge=0,
        le=86400,
        description="Longest time a task may take (a FHIR call in flight is never cut); 0 = none.",
    )
    approval_ttl_seconds: int = Field(
        900,
        ge=1,
        le=86400,
        description="A pending action not signed within this time expires (declined).",
    )
    store: Store = Field(default_factory=Store, description="The run store.")
    retention: Retention = Field(
        default_factory=Retention, description="Pruning of finished tasks in the run store."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Agent log level."
    )
    resources: Resources | None = Field(None, description="CPU/memory of the agent container.")

    @model_validator(mode="after")
    def _store_allows_replicas(self) -> AgentSpec:
        if self.replicas > 1 and self.store.type is StoreType.SQLITE:
            # The run store PVC is ReadWriteOnce and SQLite has one writer: a second replica
            # would hang in ContainerCreating (Multi-Attach) or corrupt the database.
            raise ValueError(
                "agent.replicas > 1 needs agent.store.type: postgresql — a SQLite run store "
                "is one file on a ReadWriteOnce volume"
            )
        return self
