"""SQLite WAL checkpoints on a thread of their own, off the path of the commits.

SQLite checkpoints in whichever commit pushes the WAL past ``wal_autocheckpoint`` pages
(gateway.store.db): that commit copies the pages into the database file and syncs it. On a
large log under load (every record dirties an index page of its own) this happened about
once a second, and an urgent record, which passes three commits (publish, sequence,
anchor), often waited for one: the green channel's p95 on a 1M-record log was 1.2 s
(README, Performance). Here a thread checkpoints every :data:`INTERVAL_SECONDS` without
waiting for anyone (``PASSIVE``; Python's sqlite3 releases the GIL meanwhile), and once
everything is copied lets the next writer start the WAL over (``RESTART``, giving up
after :data:`RESTART_WAIT_SECONDS` if a reader is still in it). The automatic checkpoint
stays as the backstop, and finds little left to copy.

SQLite's own WAL guarantees are unchanged: a checkpoint killed halfway is redone from the
WAL on the next open. PostgreSQL needs none of this (its checkpointer is a process of the
server).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from gateway.store.db import Database

log = logging.getLogger("claimx.checkpoint")
INTERVAL_SECONDS = 0.25
RESTART_WAIT_SECONDS = 0.02
"""How long a restart may wait for readers to leave the WAL; writers wait as long."""
RESTART_FRAMES = 1000
"""Restart the WAL once it holds this many pages, all copied (a smaller one costs nothing
to keep)."""


def supported(db: Database) -> bool:
    """Whether ``db`` is an SQLite file (an in-memory database has no WAL)."""
    url = db.engine.url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def checkpoint(conn: sqlite3.Connection) -> tuple[int, int]:
    """One pass: copy what the WAL holds, and restart it when all of it is copied; returns
    (pages in the WAL, pages copied) as the copy found them."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if not busy and frames >= RESTART_FRAMES and copied == frames:
        conn.execute("PRAGMA wal_checkpoint(RESTART)")
    return int(frames), int(copied)


class Checkpointer:
    """A thread checkpointing ``db``'s WAL on a connection of its own until stopped."""

    def __init__(self, db: Database, *, interval: float = INTERVAL_SECONDS) -> None:
        self._path = str(db.engine.url.database)
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        """Checkpoint passes done (tests)."""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="claimx-checkpoint",
                                            daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, wait: float = 0.0) -> None:
        """Stop after the pass in progress; ``wait``: seconds to wait for the thread."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(wait)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        failing = False
        try:
            while not self._stop.wait(self._interval):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self._path, timeout=RESTART_WAIT_SECONDS,
                                               check_same_thread=False)
                    checkpoint(conn)
                    self.passes += 1
                    failing = False
                except sqlite3.Error as exc:  # the file gone or locked: the backstop remains
                    if not failing:
                        log.warning("background WAL checkpoint failed (%s); commits "
                                    "checkpoint by themselves meanwhile", exc)
                    failing = True
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()
