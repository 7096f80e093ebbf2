"""Run store: tasks, their events, pending actions, workers.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.Column("finished_at", Time),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("patient", sa.String(128)),
        sa.Column("instruction", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("answer", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("checkpoint", sa.Text),
        sa.Column("owner", sa.String(64)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("rounds", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
    )
    op.create_index("ix_tasks_created_at_id", "tasks", ["created_at", "id"])
    op.create_index("ix_tasks_status_created_at_id", "tasks", ["status", "created_at", "id"])
    op.create_index("ix_tasks_principal_created_at_id", "tasks", ["principal", "created_at", "id"])
    op.create_index("ix_tasks_patient_created_at_id", "tasks", ["patient", "created_at", "id"])
    op.create_index("ix_tasks_owner", "tasks", ["owner"])
    op.create_table(
        "task_events",
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_task_events_task_id"),
        sa.PrimaryKeyConstraint("task_id", "seq", name="pk_task_events"),
    )
    op.create_table(
        "pending_actions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("task_id", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("patient", sa.String(128)),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("expires_at", Time, nullable=False),
        sa.Column("decided_at", Time),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("reason", sa.Text),
        sa.Column("write_status", sa.Integer),
        sa.Column("write_outcome", sa.String(32)),
        sa.Column("written_ref", sa.String(200)),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_pending_actions_task_id"),
        sa.PrimaryKeyConstraint("id", name="pk_pending_actions"),
    )
    op.create_index("ix_pending_actions_task_id", "pending_actions", ["task_id"])
    op.create_index(
        "ix_pending_actions_status_expires_at", "pending_actions", ["status", "expires_at"]
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("heartbeat_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("ix_pending_actions_status_expires_at", "pending_actions")
    op.drop_index("ix_pending_actions_task_id", "pending_actions")
    op.drop_table("pending_actions")
    op.drop_table("task_events")
    for name in ("owner", "patient_created_at_id", "principal_created_at_id"):
        op.drop_index(f"ix_tasks_{name}", "tasks")
    op.drop_index("ix_tasks_status_created_at_id", "tasks")
    op.drop_index("ix_tasks_created_at_id", "tasks")
    op.drop_table("tasks")
