"""Alembic environment of the run store: always handed a live connection by
:func:`sara.agent.store.migrate.upgrade` (never reads alembic.ini or a URL itself)."""

from __future__ import annotations

from alembic import context

from sara.agent.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
