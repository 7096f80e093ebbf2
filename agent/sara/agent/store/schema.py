"""The run store's tables (SQLAlchemy Core), the one description Alembic revisions follow.

    tasks            one row a task: what was asked, by whom, its status, result, checkpoint
    task_events      every event of a task's stream, numbered per task (the SSE ``id:``)
    pending_actions  every write the model asked for in ``approve`` mode, and its decision
    workers          agent processes and their heartbeats (a silent one's tasks are interrupted)

Times are timezone-aware UTC; JSON values are stored as text the store encodes itself (the
same on SQLite and PostgreSQL, and bounded before they are written).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
    }
)

Time = sa.DateTime(timezone=True)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("finished_at", Time),
    # running | awaiting_approval | finished | interrupted | cancelled
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("patient", sa.String(128)),
    sa.Column("instruction", sa.Text, nullable=False),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),  # JSON: the options it ran with
    sa.Column("outcome", sa.String(32)),  # the loop's final status: completed, task error, ...
    sa.Column("answer", sa.Text),  # the text inside FINISH(...)
    sa.Column("result", sa.Text),  # JSON TaskResult (history bounded)
    sa.Column("error", sa.Text),  # why it failed, in words
    sa.Column("reason", sa.Text),  # why it was interrupted or cancelled
    sa.Column("checkpoint", sa.Text),  # JSON loop state while awaiting approval
    sa.Column("owner", sa.String(64)),  # the worker running it (running tasks only)
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("rounds", sa.Integer, nullable=False, default=0),
    sa.Column("last_seq", sa.Integer, nullable=False, default=0),
    sa.Index(None, "created_at", "id"),
    sa.Index(None, "status", "created_at", "id"),
    sa.Index(None, "principal", "created_at", "id"),
    sa.Index(None, "principal", "status", "created_at", "id"),  # revision 0002
    sa.Index(None, "patient", "created_at", "id"),
    sa.Index(None, "owner"),
)

task_events = sa.Table(
    "task_events",
    metadata,
    sa.Column("task_id", sa.String(32), sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # JSON, at most store_event_max_bytes
    sa.Column("created_at", Time, nullable=False),
)

pending_actions = sa.Table(
    "pending_actions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("task_id", sa.String(32), sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("url", sa.Text, nullable=False),  # relative to the FHIR base
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("patient", sa.String(128)),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # canonical JSON: exactly what is signed
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    # pending | approved | denied | expired | cancelled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("expires_at", Time, nullable=False),
    sa.Column("decided_at", Time),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("reason", sa.Text),
    sa.Column("write_status", sa.Integer),  # the FHIR server's HTTP status for the signed write
    sa.Column("write_outcome", sa.String(32)),  # ok | http_error | transport_error
    sa.Column("written_ref", sa.String(200)),  # e.g. MedicationRequest/123
    sa.Index(None, "task_id"),
    sa.Index(None, "status", "expires_at"),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("heartbeat_at", Time, nullable=False),
)
