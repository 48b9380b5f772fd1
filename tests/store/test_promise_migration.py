"""Migrations 0009 (acceptance promises) and 0011 (promise batches): they revert and apply
again, models agreeing."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway.store.db import Database, downgrade, upgrade
from gateway.store.tables import Base

TABLES = {"promises", "promise_extensions"}
BATCHES = {"promise_batches", "promise_leaves", "promise_marks"}


def test_migration_0009_reverts_and_applies_again(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert TABLES | BATCHES <= set(inspect(database.engine).get_table_names())
        downgrade(database.engine, "0010")
        names = set(inspect(database.engine).get_table_names())
        assert TABLES <= names and not BATCHES & names
        downgrade(database.engine, "0008")
        assert not (TABLES | BATCHES) & set(inspect(database.engine).get_table_names())
        upgrade(database.engine)
        with database.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        database.engine.dispose()
