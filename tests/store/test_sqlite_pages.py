"""New SQLite files use the page size that keeps a million records' random index inserts
cheap, and connections a cache, memory map and checkpoint interval sized for a million
records (gateway.store.db)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from gateway.store.db import (
    SQLITE_CACHE_KIB,
    SQLITE_MMAP_BYTES,
    SQLITE_PAGE_SIZE,
    SQLITE_WAL_AUTOCHECKPOINT_PAGES,
    Database,
)


def test_new_file_takes_the_page_size_and_an_old_file_keeps_its_own(tmp_path: Path) -> None:
    Database(f"sqlite:///{tmp_path / 'new.db'}")
    with sqlite3.connect(tmp_path / "new.db") as c:
        assert c.execute("PRAGMA page_size").fetchone()[0] == SQLITE_PAGE_SIZE != 8192
    with sqlite3.connect(tmp_path / "old.db") as c:  # as created by an earlier version
        c.execute("PRAGMA page_size=8192")
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE t (x)")
    Database(f"sqlite:///{tmp_path / 'old.db'}")
    with sqlite3.connect(tmp_path / "old.db") as c:
        assert c.execute("PRAGMA page_size").fetchone()[0] == 8192
        assert "records" in {r[0] for r in c.execute("SELECT name FROM sqlite_master")}


def test_connections_get_the_large_cache_and_memory_map(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA cache_size")).scalar() == -SQLITE_CACHE_KIB
        assert conn.execute(text("PRAGMA mmap_size")).scalar() == SQLITE_MMAP_BYTES
        assert (conn.execute(text("PRAGMA wal_autocheckpoint")).scalar()
                == SQLITE_WAL_AUTOCHECKPOINT_PAGES)
    db.engine.dispose()
