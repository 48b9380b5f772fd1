"""Engines, sessions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"

SQLITE_PAGE_SIZE = 8192
"""Rows of about 900 bytes (the records before 0012; a payload row is ~470 now) left a fifth
of each 4 KiB page unused, 8 KiB pages much less (measured at 10k records: 1,403 -> 1,315
bytes per record; 16 KiB pages gained nothing more). Only a new database file takes it;
older files keep theirs."""


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
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, master_key: bytes | None = None) -> None:
    """Bring the schema to ``revision`` (Alembic). Migrations that re-encrypt stored
    secrets (0006) need the master key once the tables hold any."""
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
