"""The agent's durable run store: tasks, their event streams, pending writes, decisions.

One async interface (:class:`~sara.agent.store.runs.RunStore`), two backends behind
SQLAlchemy Core: SQLite (the embedded default, a file under ``var/``) and PostgreSQL (clusters,
several replicas). The schema changes only through Alembic revisions (``migrations/``), applied
at start-up or by ``sara agent migrate``.
"""
