"""Alembic environment: runs against the connection gateway.store.db hands it, or a URL,
every pending revision and the version stamp in one transaction (``begin_migration``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from gateway.store.db import begin_migration
from gateway.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    """Migrate inside ``connection``'s transaction, which its caller commits."""
    begin_migration(connection)
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True)
    with context.begin_transaction():  # inside the caller's transaction: opens none
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn, conn.begin():
        _run(conn)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
