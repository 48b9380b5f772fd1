"""WAL checkpoints off the commits' path (gateway.store.checkpoint), on real SQLite files."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.services.wiring import build_services
from gateway.store import checkpoint
from gateway.store.checkpoint import Checkpointer
from gateway.store.db import Database

ROUNDS, ROWS, ROW_BYTES = 40, 50, 4000


def _write(path: Path, ck: Checkpointer | None) -> tuple[int, int]:
    """Commit ROUNDS batches from a writer that never checkpoints by itself (so only the
    thread can); returns (bytes written in rows, the WAL file's size at the end)."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
    if ck is not None:
        ck.start()
    try:
        for _ in range(ROUNDS):
            writer.execute("BEGIN")
            writer.executemany("INSERT INTO t VALUES (?)",
                               [(os.urandom(ROW_BYTES),) for _ in range(ROWS)])
            writer.execute("COMMIT")
            time.sleep(0.03)
        if ck is not None:
            ck.stop(wait=5)
        return ROUNDS * ROWS * ROW_BYTES, os.path.getsize(f"{path}-wal")  # before the
    finally:  # last connection's close, which checkpoints and removes the WAL
        if ck is not None:
            ck.stop(wait=5)
        writer.close()


def test_the_thread_copies_the_wal_and_lets_writers_start_it_over(tmp_path: Path) -> None:
    """Without the thread (and no automatic checkpoint) the WAL holds every page written;
    with it, the WAL is reused from its start and stays a fraction of what was written,
    and every row is in the database."""
    alone = tmp_path / "alone.db"
    written, wal_alone = _write(alone, None)
    assert wal_alone >= written  # nothing checkpointed: the control
    db = Database(f"sqlite:///{tmp_path / 'with.db'}", migrate=False)
    ck = Checkpointer(db, interval=0.02)
    written, wal_with = _write(tmp_path / "with.db", ck)
    assert ck.passes > 10 and not ck.alive()
    assert wal_with < written / 3, (wal_with, written)
    with sqlite3.connect(tmp_path / "with.db") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == ROUNDS * ROWS
    db.engine.dispose()


def test_a_file_that_is_no_database_is_logged_once_and_the_thread_lives_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(f"sqlite:///{tmp_path / 'real.db'}", migrate=False)
    ck = Checkpointer(db, interval=0.02)
    garbage = tmp_path / "not-a-database"
    garbage.write_bytes(os.urandom(8192))
    ck._path = str(garbage)  # as if the file were replaced under the gateway
    with caplog.at_level(logging.WARNING, logger="claimx.checkpoint"):
        ck.start()
        time.sleep(0.3)
        assert ck.alive() and ck.passes == 0
        ck.stop(wait=5)
    assert caplog.text.count("background WAL checkpoint failed") == 1
    db.engine.dispose()


def test_a_gateway_on_sqlite_checkpoints_while_its_worker_runs(
        embedded_chain: Chain, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    services = build_services(Settings(home=tmp_path, database_url=url),
                              chain=embedded_chain, deployment=embedded_chain.deploy())
    ck = services.worker.checkpointer
    assert ck is not None and checkpoint.supported(services.db)
    services.worker.start()
    try:
        deadline = time.monotonic() + 10
        while ck.passes == 0:
            assert time.monotonic() < deadline, "no checkpoint pass while the worker ran"
            time.sleep(0.05)
    finally:
        services.worker.stop()
    time.sleep(checkpoint.INTERVAL_SECONDS * 2 + 0.2)
    assert not ck.alive()
    services.db.engine.dispose()


def test_databases_without_a_wal_file_get_no_thread() -> None:
    db = Database("sqlite://", migrate=False)
    assert not checkpoint.supported(db)
    db.engine.dispose()
