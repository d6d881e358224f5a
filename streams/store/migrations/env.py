"""Alembic's environment for the store: always given a connection by `streams.store.db.migrate`
(no alembic.ini, no URL here). Batch mode so that later migrations can alter SQLite tables."""

from __future__ import annotations

from alembic import context

from streams.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
