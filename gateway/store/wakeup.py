"""Waking the anchor worker of another process: PostgreSQL's LISTEN/NOTIFY.

With several gateway processes (``claimx serve --workers N``, or several machines) an urgent
record is often stored by a process whose worker stands by; the lease holder would find it
only at its next poll (``CLAIMX_URGENT_POLL_SECONDS``). So each process that stores an urgent
record (or a large batch) sends a notification on :data:`CHANNEL`, and each worker process
listens on a connection of its own: the leader wakes within a round trip. The poll stays as
the fallback: a lost notification (the listener reconnecting after a database restart) costs
at most one poll.

SQLite has no such thing and needs none: its gateway is one process (several writers to one
file take turns; ``claimx serve`` warns). Notifications carry no payload: nothing about a
record leaves the database this way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import text

from gateway.store.db import Database

log = logging.getLogger("claimx.wakeup")
CHANNEL = "claimx_anchor"
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
"""Waits before reconnecting a lost listening connection (the last one repeats)."""


def supported(db: Database) -> bool:
    """Whether ``db`` can carry notifications (PostgreSQL through psycopg 3)."""
    url = db.engine.url
    return url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg"


def notify(db: Database) -> None:
    """Wake the listening workers (after the caller committed: a notification sent inside a
    transaction is delivered at its commit, so a separate one keeps it simple). A failure is
    logged, never raised: the records are stored, and the leader's poll finds them."""
    try:
        with db.engine.begin() as conn:
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    except Exception as exc:  # noqa: BLE001 - a wake-up must never fail a stored publish
        log.warning("could not notify the anchor worker (%s); it finds the records at its "
                    "next poll", type(exc).__name__)


class Listener:
    """A thread that calls ``on_wake`` for every notification on :data:`CHANNEL`, on a
    connection of its own (outside the pool, which it would hold forever), reconnecting
    after the database restarts."""

    def __init__(self, db: Database, on_wake: Callable[[], None], *,
                 timeout: float = 1.0) -> None:
        self._conninfo = db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)  # libpq's own URL form
        self._on_wake, self._timeout = on_wake, timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        """Set while LISTEN is in force (tests and /readyz-style checks)."""
        self.backend_pid: int | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="claimx-wakeup",
                                            daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        """Whether the listening thread runs (it ends only when stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, wait: float = 0.0) -> None:
        """Stop listening (within the notification timeout); ``wait``: seconds to wait for
        the thread to end."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(wait)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0
            except psycopg.Error as exc:
                self.connected.clear()
                wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                if failures == 0:
                    log.warning("lost the database connection that wakes the anchor worker "
                                "(%s); reconnecting (the worker polls meanwhile)",
                                type(exc).__name__)
                failures += 1
                self._stop.wait(wait)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            self.connected.set()
            self._on_wake()  # anything stored while not listening is looked for now
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=self._timeout):
                    self._on_wake()
