"""Inserts of many rows through the DBAPI's own ``executemany``, without the ORM.

SQLAlchemy binds each value through its type's processor, which cost more than SQLite's
whole insert on the publish path (issue 14's profile: a sixth of its CPU). Here one
statement, built once per table and dialect, takes plain tuples: the caller passes
values in their stored form (bytes, ints, text; see gateway.store.tables' ``hex32_to_db``
and ``micros``). psycopg 3 pipelines ``executemany``; SQLite runs it in one prepared
statement.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

Row = tuple[Any, ...]


def bulk_insert(s: Session, table: Table, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in the session's
    transaction."""
    if not rows:
        return
    conn = s.connection()
    conn.exec_driver_sql(_insert_sql(conn.dialect.paramstyle, table.name, tuple(columns)),
                         list(rows))


def insert_with_ids(s: Session, table: Table, columns: Sequence[str],
                    rows: Sequence[Row]) -> list[int]:
    """:func:`bulk_insert` into a table with an integer ``id`` key: the new ids, in order.

    PostgreSQL takes the ids from the column's sequence first (safe with any number of
    writers); SQLite gives the rows consecutive rowids ending at ``last_insert_rowid()``,
    since the insert holds the database's only write lock."""
    if not rows:
        return []
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        ids = list(conn.exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
            "FROM generate_series(1, %s)", (len(rows),)).scalars())
        bulk_insert(s, table, ("id", *columns), [(i, *r) for i, r in zip(ids, rows, strict=True)])
        return ids
    bulk_insert(s, table, columns, rows)
    last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    return list(range(last - len(rows) + 1, last + 1))


@functools.cache
def _insert_sql(paramstyle: str, table: str, columns: tuple[str, ...]) -> str:
    mark = "?" if paramstyle == "qmark" else "%s"
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})")
