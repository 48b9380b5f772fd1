"""The agent's durable outbox: signed envelopes wait here between an input and the gateway.

SQLite through the standard library's ``sqlite3`` rather than SQLAlchemy: the outbox is one
file owned by one process, its few statements are fixed, and ``gateway.store`` (the gateway's
tables) is outside what the agent may import. WAL with ``synchronous=FULL`` makes a commit
survive a ``kill -9`` or a power cut, so an input is acknowledged only after :meth:`Outbox.add`
returns.

Two tables: ``sources`` remembers each accepted input by its idempotency key (sending facility,
control id and source hash for HL7; the content hash for files and FHIR bodies) with the
digests it produced, so a re-sent input is answered from what is stored and never signed again
with a new salt; ``items`` holds one envelope per digest and its delivery state, and once
sent the gateway's answer, whose ``promise`` is the exchange's signed acceptance promise.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUEUED, SENT, FAILED = "queued", "sent", "failed"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    key TEXT PRIMARY KEY, channel TEXT NOT NULL, created_at REAL NOT NULL,
    digests TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT, digest TEXT NOT NULL UNIQUE,
    source_key TEXT NOT NULL, kind TEXT NOT NULL, envelope TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    created_at REAL NOT NULL, sent_at REAL, error TEXT, response TEXT);
CREATE INDEX IF NOT EXISTS items_due ON items (state, next_at);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Record:
    """One envelope to publish: its digest (hex), evidence kind and DSSE JSON."""

    digest: str
    kind: str
    envelope: dict[str, Any]


@dataclass(frozen=True)
class Item:
    id: int
    digest: str
    envelope: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Stored:
    """What an input produced, as first stored: ``replayed`` when it was already there."""

    digests: tuple[str, ...]
    kinds: tuple[str, ...]
    replayed: bool


class Outbox:
    """A thread-safe handle on the outbox file (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def lookup(self, key: str) -> Stored | None:
        """What the input with this idempotency key produced, if it was accepted before."""
        with self._lock:
            return self._stored(key)

    def _stored(self, key: str) -> Stored | None:
        row = self._db.execute("SELECT digests FROM sources WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        pairs = json.loads(row[0])
        return Stored(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), True)

    def add(self, key: str, channel: str, records: Sequence[Record]) -> Stored:
        """Store an input's envelopes durably, once: a key seen before returns what it stored
        then (the new records, signed with fresh salts, are discarded)."""
        now = time.time()
        with self._tx() as db:
            before = self._stored(key)
            if before is not None:
                return before
            db.execute("INSERT INTO sources (key, channel, created_at, digests) VALUES (?,?,?,?)",
                       (key, channel, now, json.dumps([[r.digest, r.kind] for r in records])))
            db.executemany(
                "INSERT OR IGNORE INTO items (digest, source_key, kind, envelope, state, next_at,"
                " created_at) VALUES (?,?,?,?,?,?,?)",
                [(r.digest, key, r.kind, json.dumps(r.envelope), QUEUED, now, now)
                 for r in records])
        return Stored(tuple(r.digest for r in records), tuple(r.kind for r in records), False)

    def due(self, limit: int, now: float | None = None) -> list[Item]:
        """Queued items whose retry time has come, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, digest, envelope, attempts FROM items WHERE state = ? AND next_at <= ?"
                " ORDER BY id LIMIT ?", (QUEUED, time.time() if now is None else now, limit))
            return [Item(r[0], r[1], json.loads(r[2]), r[3]) for r in rows.fetchall()]

    def next_due_at(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(next_at) FROM items WHERE state = ?",
                                   (QUEUED,)).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_sent(self, results: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Items the gateway accepted, with its answer (digest, duplicate, key_status...)."""
        now = time.time()
        with self._tx() as db:
            db.executemany("UPDATE items SET state = ?, sent_at = ?, response = ?, error = NULL,"
                           " attempts = attempts + 1 WHERE id = ?",
                           [(SENT, now, json.dumps(r), i) for i, r in results])

    def mark_failed(self, item_id: int, error: dict[str, Any]) -> None:
        """An item the gateway refused for good (a 4xx): kept with the gateway's error."""
        with self._tx() as db:
            db.execute("UPDATE items SET state = ?, error = ?, attempts = attempts + 1"
                       " WHERE id = ?", (FAILED, json.dumps(error), item_id))

    def retry_later(self, ids: Sequence[int], delay: float, error: str) -> None:
        """Items that could not be delivered now (gateway down, 5xx): tried again later."""
        at = time.time() + delay
        with self._tx() as db:
            db.executemany("UPDATE items SET next_at = ?, error = ?, attempts = attempts + 1"
                           " WHERE id = ? AND state = ?", [(at, error, i, QUEUED) for i in ids])

    def states(self, digests: Sequence[str]) -> dict[str, str]:
        with self._lock:
            marks = ",".join("?" * len(digests))
            rows = self._db.execute(f"SELECT digest, state FROM items WHERE digest IN ({marks})",
                                    tuple(digests)).fetchall()
        return {r[0]: r[1] for r in rows}

    def promise(self, digest: str) -> dict[str, Any] | None:
        """The exchange's signed acceptance promise for a sent record (the ``promise`` of the
        gateway's answer, kept with the item): the evidence that it must include the record
        in time (``claimx verify-promise``). None until sent, or from an older gateway."""
        with self._lock:
            row = self._db.execute("SELECT response FROM items WHERE digest = ? AND state = ?",
                                   (digest, SENT)).fetchone()
        answer = json.loads(row[0]) if row and row[0] else {}
        promise = answer.get("promise") if isinstance(answer, dict) else None
        return promise if isinstance(promise, dict) else None

    def status(self) -> dict[str, Any]:
        """Counts by state and the oldest waiting item (what `claimx connect status` shows)."""
        with self._lock:
            counts = dict(self._db.execute(
                "SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())
            oldest = self._db.execute(
                "SELECT digest, kind, created_at, attempts, error FROM items WHERE state = ?"
                " ORDER BY id LIMIT 1", (QUEUED,)).fetchone()
            failed = self._db.execute(
                "SELECT digest, kind, error FROM items WHERE state = ? ORDER BY id DESC LIMIT 5",
                (FAILED,)).fetchall()
        out: dict[str, Any] = {s: counts.get(s, 0) for s in (QUEUED, SENT, FAILED)}
        out["oldest_waiting"] = None if oldest is None else {
            "digest": oldest[0], "kind": oldest[1], "waiting_seconds": round(
                time.time() - oldest[2], 1), "attempts": oldest[3], "last_error": oldest[4]}
        out["recent_failures"] = [{"digest": d, "kind": k, "error": json.loads(e or "null")}
                                  for d, k, e in failed]
        return out

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO "
                       "UPDATE SET value = excluded.value", (name, value))
