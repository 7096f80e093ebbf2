"""History filtered by principal and status: one index for both.

SQLite keeps no per-value statistics, so for ``principal = ? AND status = ?`` it walked the
principal index and checked each row's status: 127 ms at 100k tasks when one principal owned
half of them (docs/benchmarks/run_store.md); with this index, 0.2 ms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_principal_status_created_at_id",
        "tasks",
        ["principal", "status", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_principal_status_created_at_id", "tasks")
