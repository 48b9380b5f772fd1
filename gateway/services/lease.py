"""The anchor worker's lease: one leader at a time, fenced by an epoch.

The ``leases`` row names its holder, when it expires and an ``epoch`` (the fencing token)
raised every time a process takes it, never by a renewal. Every change is a compare-and-set
``UPDATE ... WHERE holder = seen AND epoch = seen``, so two processes cannot both win, on
PostgreSQL or SQLite, and a worker that lost the lease (paused past its expiry, a standby
took over) finds out at its next write: :meth:`LeaseKeeper.guard` before each chain write,
:meth:`LeaseKeeper.check` inside each transaction that records what the chain did.

A restarted worker proves it held the old lease by its holder id (``CLAIMX_WORKER_ID``, or
the id :func:`claim_worker_id` keeps in CLAIMX_HOME/worker.id): it takes the lease over at
once, with a new epoch, while any other process waits for the expiry. The file is locked
(flock) for the life of the process, so two live processes never share an id: a second one
in the same home gets a fresh id and stands by. (Hand-written: this is a dozen lines on top
of the table; a lock service would be a new dependency for the same guarantee.)
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.errors import ClaimxError, ConflictError
from gateway.core.types import as_utc
from gateway.store.db import Database
from gateway.store.tables import Lease

log = logging.getLogger("claimx.lease")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_held_files: list[IO[str]] = []
"""Open, locked worker-id files: kept for the life of the process (the lock is the proof)."""


class LeaseLost(ConflictError):
    """This process does not hold the lease (any more): it must not write."""

    code = "lease_lost"


class LeaseKeeper:
    """Takes, renews and checks one named lease for one holder id."""

    def __init__(self, db: Database, name: str, holder: str, ttl: float, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db, self.name, self.holder, self.ttl, self.clock = db, name, holder, ttl, clock
        self.epoch: int | None = None
        """The epoch this process holds the lease under; None while it does not."""
        self._fresh = True  # not yet held by this process: a restart may take over at once
        self._checked = time.monotonic()
        self._until = 0.0  # monotonic time the lease runs to, as last confirmed

    def hold(self, ttl: float | None = None) -> bool:
        """Take or renew the lease; False while another live holder has it. A database error
        propagates and leaves what this process holds as it was (a restart of the database
        does not cost the leader its lease)."""
        ttl = self.ttl if ttl is None else ttl
        now = self.clock()
        expires = now + timedelta(seconds=ttl)
        try:
            with self.db.session() as s:
                row = s.get(Lease, self.name)
                if row is None:
                    s.add(Lease(name=self.name, holder=self.holder, expires_at=expires,
                                epoch=1))
                    s.flush()
                    return self._won(1, ttl)
                mine = row.holder == self.holder and row.epoch == self.epoch
                restarted = row.holder == self.holder and self._fresh
                if not (mine or restarted or as_utc(row.expires_at) <= now):
                    return self._lost(row.holder)
                epoch = row.epoch if mine else row.epoch + 1
                done = s.execute(update(Lease).where(
                    Lease.name == self.name, Lease.holder == row.holder,
                    Lease.epoch == row.epoch).values(holder=self.holder, epoch=epoch,
                                                     expires_at=expires))
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    return self._lost(None)
                return self._won(epoch, ttl)
        except IntegrityError:  # another process created the row first: it won
            return self._lost(None)

    def guard(self) -> int:
        """Before a chain write: the lease is still ours (renewed now), else LeaseLost.

        A worker paused (SIGSTOP, a VM freeze) longer than its lease finds out here, by the
        wall-clock gap since its last check, and by the row: a standby may own it now."""
        gap = time.monotonic() - self._checked
        if gap > self.ttl:
            log.warning("this worker was paused %.1f s, longer than its %.0f s lease; "
                        "re-checking it before any write", gap, self.ttl)
        if not self.hold():
            raise LeaseLost(f"the {self.name} lease is held by another process: this one "
                            "stands by and writes nothing")
        assert self.epoch is not None
        return self.epoch

    def check(self, s: Session) -> int:
        """Inside a transaction that records a chain write: the lease is still ours under
        the same epoch (and renewed), else LeaseLost and the transaction rolls back."""
        if self.epoch is None:
            raise LeaseLost(f"this process does not hold the {self.name} lease")
        done = s.execute(update(Lease).where(
            Lease.name == self.name, Lease.holder == self.holder, Lease.epoch == self.epoch)
            .values(expires_at=self.clock() + timedelta(seconds=self.ttl)))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.epoch = None
            raise LeaseLost(f"the {self.name} lease passed to another process: this "
                            "worker's result is not recorded (the new holder reads it from "
                            "the chain)")
        self._checked = time.monotonic()
        self._until = self._checked + self.ttl
        return self.epoch

    def fresh(self, left: float) -> bool:
        """Held with more than ``left`` seconds to go since the database last confirmed it
        (by this process's clock), so still held without asking: a lease passes only once
        it expires, or to a restart of this holder id, which the id file's lock keeps from
        any live process. A pause longer than that finds it stale and asks."""
        return self.epoch is not None and self._until - time.monotonic() > left

    def release(self) -> None:
        """Let the lease lapse now (a clean stop): a standby may take it at once."""
        if self.epoch is None:
            return
        with self.db.session() as s:
            s.execute(update(Lease).where(
                Lease.name == self.name, Lease.holder == self.holder,
                Lease.epoch == self.epoch).values(expires_at=self.clock()))
        self.epoch = None

    def _won(self, epoch: int, ttl: float) -> bool:
        if epoch != self.epoch:
            log.info("took the %s lease as %s (epoch %d)", self.name, self.holder, epoch)
        self.epoch, self._fresh, self._checked = epoch, False, time.monotonic()
        self._until = self._checked + ttl
        return True

    def _lost(self, other: str | None) -> bool:
        if self.epoch is not None:
            log.warning("lost the %s lease to %s; standing by", self.name, other or "another "
                        "process")
        self.epoch = None
        return False


def claim_worker_id(home: Path, configured: str | None = None) -> str:
    """This process's holder id: ``configured`` (CLAIMX_WORKER_ID), else the one kept in
    ``home/worker.id`` (made at first start). The id's lock file is held until the process
    exits, so a restart can prove it held the old lease and no other live process can."""
    home.mkdir(parents=True, exist_ok=True)
    if configured is not None:
        if not _ID.match(configured):
            raise ClaimxError(f"CLAIMX_WORKER_ID {configured!r} must be 1-128 letters, digits "
                              "or . _ : -", code="bad_worker_id")
        if not _lock(home / f"worker-{configured}.lock"):
            raise ClaimxError(f"another process on this machine runs as worker id "
                              f"{configured}: give each worker its own CLAIMX_WORKER_ID",
                              code="worker_id_in_use")
        return configured
    path = home / "worker.id"
    handle = _lock(path)
    if handle is None:
        fresh = f"worker-{uuid.uuid4()}"
        log.info("another process here uses %s; this one runs as %s and stands by until "
                 "the lease is free", path, fresh)
        return fresh
    handle.seek(0)
    held = handle.read().strip()
    if _ID.match(held):
        return held
    held = f"worker-{uuid.uuid4()}"
    handle.seek(0)
    handle.truncate()
    handle.write(held + "\n")
    handle.flush()
    os.fsync(handle.fileno())
    return held


def _lock(path: Path) -> IO[str] | None:
    handle = path.open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    _held_files.append(handle)
    return handle
