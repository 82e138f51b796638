"""Alembic environment. Always handed a connection by sigmachat.db.migrate (sync or via run_sync)."""

from __future__ import annotations

from alembic import context

from sigmachat.db.models import Base

target_metadata = Base.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("Run migrations through `sigmachat db upgrade` (sigmachat.db.migrate).")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE support on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
