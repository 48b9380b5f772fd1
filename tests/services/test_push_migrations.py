"""The push migrations (0003 to 0005): models and migrations agree, and they revert and
apply again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gateway.store.db import Database, downgrade, upgrade
from gateway.store.tables import Base, PushCursor


def test_migrations_0003_to_0005_apply_and_revert(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diffs == []  # models and migrations agree
        push_tables = {"webhook_endpoints", "webhook_deliveries", "push_cursor"}
        with database.session() as s:
            assert s.get(PushCursor, 1) is not None
        downgrade(database.engine, "0004")
        columns = {c["name"] for c in inspect(database.engine).get_columns("claims")}
        assert "outcome" not in columns and "closed_at" not in columns
        downgrade(database.engine, "0003")
        columns = {c["name"] for c in inspect(database.engine).get_columns("evidence_requests")}
        assert "overdue_at" not in columns and "due_at" in columns
        downgrade(database.engine, "0002")
        assert not push_tables & set(inspect(database.engine).get_table_names())
        upgrade(database.engine)
        assert push_tables <= set(inspect(database.engine).get_table_names())
        columns = {c["name"] for c in inspect(database.engine).get_columns("evidence_requests")}
        assert "overdue_at" in columns
        assert {"outcome", "closed_at"} <= {c["name"] for c in
                                            inspect(database.engine).get_columns("claims")}
    finally:
        database.engine.dispose()
