"""Engines, sessions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"

SQLITE_PAGE_SIZE = 4096
"""Every record inserts one key at a random place in the digest index, so once that index
outgrows a batch each record dirties a page of its own, which the commit writes to the WAL
and the checkpoint writes again: 8 KiB pages (chosen for the ~900-byte rows before 0012)
doubled those bytes, and a 1000-record commit into a 1M-record log cost 45-60 ms against
~24 ms with 4 KiB pages. The payload rows of ~470 bytes waste under 1% more with 4 KiB
pages (a vacuumed 1M-record file: 761 -> 768 MB). Only a new database file takes it; older
files keep theirs."""

SQLITE_WAL_AUTOCHECKPOINT_PAGES = 4000
"""Checkpoint once the WAL holds this many pages (16 MiB; SQLite's default is 1000): every
checkpoint syncs the database file, and at 1M records a 1000-record commit alone adds ~1000
pages, so the default checkpointed on every commit. A larger WAL also writes a page that
several commits dirtied once. Measured at 1M records: 47 -> 24 ms per 1000-record commit
(with 4 KiB pages); 20,000 pages gained ~2 ms more for 240 ms stalls."""


SQLITE_CACHE_KIB = 65_536
"""Page cache per connection (64 MiB; SQLite's default is 2 MiB). A million records' random-
keyed indexes (digest, subject) are ~100 MB: with the default cache each insert re-reads
their pages through the OS, and the publish rate fell by a third at 1M (issue 14)."""
SQLITE_MMAP_BYTES = 1 << 30
"""Reads through a memory map of up to 1 GiB, shared by every connection via the OS page
cache (address space, not memory, until pages are touched)."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so a worker process can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # before WAL, or it is ignored
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def begin_migration(conn: Connection) -> None:
    """Make ``conn``'s transaction a real one on SQLite before migrations run in it, so an
    upgrade killed halfway leaves the schema and rows exactly as they were.

    pysqlite's legacy transaction control (Python's default) sends BEGIN only before an
    INSERT, UPDATE or DELETE, so each CREATE, ALTER or DROP ahead of a migration's first
    such statement committed on its own: a process killed during 0012's row rewrite left
    0011 with two new tables, five new columns and its indexes dropped, and the next
    upgrade stopped at "table record_payloads already exists". SQLite's DDL is
    transactional once a transaction is open. IMMEDIATE takes the write lock before
    Alembic reads the revision, so two processes migrating at once run one after the
    other. PostgreSQL needs nothing: its DDL is transactional and ``conn`` already began.
    """
    driver = conn.connection.driver_connection
    if conn.dialect.name == "sqlite" and driver is not None and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine, revision: str = "head", *, master_key: bytes | None = None) -> None:
    """Bring the schema to ``revision`` (Alembic) in one transaction: all or nothing, on
    SQLite too (``begin_migration``). Migrations that re-encrypt stored secrets (0006)
    need the master key once the tables hold any."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["master_key"] = master_key
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str, *, master_key: bytes | None = None) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["master_key"] = master_key
        command.downgrade(cfg, revision)


class Database:
    """An engine plus its session factory."""

    def __init__(self, url: str, *, migrate: bool = True,
                 master_key: bytes | None = None) -> None:
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine, master_key=master_key)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any error."""
        with self.sessions() as s, s.begin():
            yield s
