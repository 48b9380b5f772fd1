"""The anchor worker: sequences accepted records into the log and anchors tree heads on chain.

One cycle = (0) reconcile the database's anchors with the chain (gateway.services.reconcile);
(1) sequence pending records into leaves and commit; (2) if the log is ahead of the chain,
send ``EvidenceLog.anchor(size, root, consistencyProof)`` and record it. Each step is safe
to kill at any point:

* killed before (1) commits: nothing happened; the records are still pending.
* killed after (1), before the transaction is mined: the next cycle anchors the same size.
* killed after mining, before recording: the next reconcile finds the chain head ahead of
  the database, checks its root against the local log and records it.

Only the holder of the database lease works, and it is fenced (gateway.services.lease): the
lease is re-checked, under its epoch, before every chain write and in every transaction that
records one, so a leader paused past its lease writes nothing once a standby took over.

Routine records wait for ``anchor_interval_seconds`` or ``anchor_batch_max`` records;
urgent (green-channel) records are anchored within one ``urgent_poll_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.chain.models import AnchorResult, TreeHead
from gateway.config import Settings
from gateway.core.errors import ChainError, ClaimxError
from gateway.services.lease import LeaseKeeper, LeaseLost
from gateway.services.logcheck import check_pending, mark_rejected
from gateway.services.publish import KeyDirectory
from gateway.services.reconcile import (
    OnAnchored,
    Reconciler,
    SyncResult,
    confirmed_size,
    on_chain_size,
    record_anchor,
)
from gateway.store.checkpoint import Checkpointer
from gateway.store.db import Database
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Record
from gateway.store.wakeup import Listener

log = logging.getLogger("claimx.anchor")
LEASE_NAME = "anchor-worker"
SYNC_SECONDS = 1.0
"""How often an idle lease holder compares the chain's heads with the database's anchors
(a node restored from an older state is noticed within this, records re-anchored)."""
SEQUENCE_STEP = 500
"""Records waiting that make the loop sequence them before their batch is due for
anchoring: sequencing keeps pace with arrival instead of adding its time to the anchor's."""
BUSY_SYNC_SECONDS = 10.0
"""The same while cycles run (an anchor on a chain that lost heads reverts and resyncs)."""
Plan = Literal["urgent", "anchor", "sequence"]
RIDE_ALONG = 100
"""Routine records an urgent cycle sequences too (a few milliseconds); past this many it
sequences only the urgent ones and leaves the routine batch to its own cycle."""
CHUNK = 500
"""Records per sequencing transaction of a routine cycle while the green channel is in use."""
GREEN_RECENT_SECONDS = 10.0
"""How long after an urgent record routine cycles keep to CHUNK-sized transactions."""
_WAITING = (Record.leaf_index.is_(None), Record.rejected_at.is_(None))
"""Accepted records not yet in the log."""
RESYNC_ERRORS = ("EvidenceLogNotConsistent", "EvidenceLogNotGrowing",
                 "EvidenceLogProofForEmptyLog")
"""Reverts that mean the chain's heads are not what the database says: reconcile at once."""


class AnchorChain(Protocol):
    """What the worker needs from gateway.chain.client's EvidenceLog client."""

    def anchor(self, size: int, root: bytes, proof: list[bytes], *,
               sender: str | None = None) -> AnchorResult: ...
    def latest_head(self) -> TreeHead | None: ...
    def head_count(self) -> int: ...
    def head_at(self, index: int) -> TreeHead: ...
    def anchor_tx_of(self, index: int) -> bytes: ...


@dataclass(frozen=True)
class CycleResult:
    sequenced: int
    anchored_size: int | None
    gas_used: int = 0


Fault = Callable[[str], None]
"""Test hook called at named crash points: ``before_sequence_commit``, ``after_sequence``,
``after_anchor_tx``."""


class AnchorWorker:
    def __init__(self, db: Database, chain: AnchorChain, settings: Settings, *,
                 sender: str | None = None, cache: NodeCache | None = None,
                 fault: Fault | None = None, on_anchored: OnAnchored | None = None,
                 keys: KeyDirectory | None = None, chain_time: Callable[[], int] | None = None,
                 on_rejected: Callable[[Session, Record], None] | None = None,
                 on_failure: Callable[[ClaimxError], None] | None = None,
                 holder: str | None = None,
                 block_number: Callable[[], int] | None = None,
                 listener: Listener | None = None) -> None:
        self.db, self.chain, self.settings, self.sender = db, chain, settings, sender
        self.on_failure = on_failure
        """Called when a cycle fails (gateway.services.promises extends open promises while
        the chain is unavailable)."""
        self.keys, self.chain_time, self.on_rejected = keys, chain_time, on_rejected
        """With ``keys``, each batch's keys are re-checked at ``chain_time()`` before it is
        appended (gateway.services.logcheck); without, records are appended as accepted."""
        self.cache = cache or NodeCache()
        self.fault = fault or (lambda _point: None)
        self.on_anchored = on_anchored
        """Called in the recording transaction with (old size, new size) once a head is
        confirmed: claim events."""
        self.lease = LeaseKeeper(db, LEASE_NAME,
                                 holder or settings.worker_id or f"{uuid.uuid4()}",
                                 settings.lease_seconds)
        self.holder = self.lease.holder
        self.reconciler = Reconciler(db, chain, self.lease, self.cache,
                                     confirmations=settings.confirmations,
                                     anchor=self._write, on_anchored=on_anchored)
        self.reconciler.block_number = block_number
        self.wake = threading.Event()
        self.listener = listener
        """Sets :attr:`wake` when another process stores an urgent record (PostgreSQL:
        gateway.store.wakeup); runs while the loop does."""
        self.checkpointer: Checkpointer | None = None
        """Checkpoints an SQLite WAL off the commits' path (gateway.store.checkpoint); runs
        while the loop does."""
        self._stop = threading.Event()
        self._last_anchor = time.monotonic()
        """When a routine cycle last anchored (urgent-only anchors do not count)."""
        self._last_sync = 0.0
        self._synced_epoch: int | None = None
        self._last_plan: Plan | None = None
        self._urgent_seen = -GREEN_RECENT_SECONDS
        self._lease_margin = settings.lease_seconds * 2 / 3
        """The loop renews the lease, and re-checks it before a chain write, only once less
        than this is left of it: under SQLite each check waits for the write lock a
        publishing request holds, which made up much of an urgent record's wait."""
        self._cut_short = False
        """The last routine cycle anchored early for an urgent record: its rest is due."""

    # -- one cycle ---------------------------------------------------------------------

    def cycle(self, *, limit: int | None = None, anchor: bool = True,
              urgent_only: bool = False) -> CycleResult:
        """Reconcile, sequence pending records and anchor the log head if the chain is
        behind (unless ``anchor`` is False: sequencing alone, as records arrive, so the
        anchor of a full batch has nothing left to sequence); LeaseLost (and nothing
        written) when another process holds the lease. With ``urgent_only`` only urgent
        records are sequenced (the green channel's lane)."""
        self.lease.guard()
        self.sync()
        return self._sequence_and_anchor(limit or self.settings.anchor_batch_max,
                                         urgent_only=urgent_only, anchor=anchor)

    def _sequence_and_anchor(self, batch: int, *, urgent_only: bool = False,
                             anchor: bool = True) -> CycleResult:
        """Steps (1) and (2) of a cycle, under a lease the caller has just checked."""
        if urgent_only:
            sequenced = self._sequence(batch, *self._screen(batch, urgent_only=True))
        else:
            sequenced = self._sequence_routine(batch, anchoring=anchor)
        if not anchor:
            return CycleResult(sequenced, None)
        with self.db.session() as s:
            logdb = EvidenceLogDB(s, self.cache)
            size = logdb.size()
            anchored = on_chain_size(s)
            if size <= anchored:
                return CycleResult(sequenced, None)
            root = logdb.root(size)
            proof = logdb.consistency_proof(anchored, size) if anchored else []
        if not self.lease.fresh(self._lease_margin):  # a pause may have cost it: ask
            self.lease.guard()
        result = self._write(size, root, proof)
        self.fault("after_anchor_tx")
        with self.db.session() as s:
            fence = self.lease.check(s)  # a lost lease: the new holder records it from chain
            record_anchor(s, result.head, result.tx_hash, result.gas_used, fence=fence,
                          confirmed=self.reconciler.deep(result.head),
                          on_anchored=self.on_anchored)
        if not urgent_only:  # routine records wait for the interval from here
            self._last_anchor = time.monotonic()
        log.info("anchored tree size %d in block %d (%d gas)", size, result.block_number,
                 result.gas_used)
        return CycleResult(sequenced, size, result.gas_used)

    def _screen(self, limit: int, *, urgent_only: bool = False,
                ) -> tuple[list[int] | None, dict[int, str]]:
        """The next ``limit`` pending records (only urgent ones with ``urgent_only``) whose
        keys are valid at chain time, to sequence, and those rejected; without a key
        directory, None (the oldest pending, unchecked) or the urgent ones."""
        if self.keys is None:
            return (self._urgent_ids(limit) if urgent_only else None), {}
        now = self.chain_time() if self.chain_time else int(time.time())
        screened = check_pending(self.db, self.keys, now, limit, urgent_only=urgent_only)
        return screened.valid_ids, screened.rejected

    def _sequence(self, limit: int, ids: list[int] | None, rejected: dict[int, str]) -> int:
        """Mark ``rejected`` and append up to ``limit`` records (``ids``, or the oldest
        pending) in one committed transaction under the lease; how many were appended."""
        with self.db.session() as s:
            self.lease.check(s)
            mark_rejected(s, rejected, self.on_rejected)
            seq = EvidenceLogDB(s, self.cache).sequence(limit, ids)
            self.fault("before_sequence_commit")
        self.fault("after_sequence")
        return seq.new_size - seq.old_size

    def _sequence_routine(self, batch: int, *, anchoring: bool = True) -> int:
        """A routine batch. While the green channel is in use (an urgent record seen in the
        last GREEN_RECENT_SECONDS) it is screened and sequenced CHUNK records at a time, and
        once an urgent record waits in between, that record is sequenced next and the cycle
        anchors early (the rest is due at once), or, sequencing alone, the step ends (the
        loop turns to the urgent record): an urgent record waits for one chunk, not a whole
        batch. Otherwise the batch is one screening and one transaction."""
        self._cut_short = False
        if not self._green_recent():
            return self._sequence(batch, *self._screen(batch))
        sequenced = 0
        while sequenced < batch:
            step = min(CHUNK, batch - sequenced)
            ids, rejected = self._screen(step)
            done = self._sequence(step, ids, rejected)
            sequenced += done
            seen = done if ids is None else len(ids) + len(rejected)
            if seen < step or sequenced >= batch:  # nothing more is pending
                break
            if self._urgent_waiting():
                if anchoring:
                    sequenced += self._sequence(batch, *self._screen(batch,
                                                                     urgent_only=True))
                    self._cut_short = True
                break
        return sequenced

    def _urgent_ids(self, limit: int) -> list[int]:
        with self.db.session() as s:
            return list(s.scalars(select(Record.id).where(*_WAITING, Record.urgent)
                                  .order_by(Record.id).limit(limit)))

    def _urgent_waiting(self) -> bool:
        with self.db.session() as s:
            waiting = s.scalar(select(Record.id).where(*_WAITING, Record.urgent).limit(1))
        if waiting is not None:
            self._urgent_seen = time.monotonic()
        return waiting is not None

    def _green_recent(self) -> bool:
        return time.monotonic() - self._urgent_seen < GREEN_RECENT_SECONDS

    def _write(self, size: int, root: bytes, proof: list[bytes]) -> AnchorResult:
        """The one chain write; a revert that says the chain's heads changed under us makes
        the next pass reconcile at once."""
        try:
            return self.chain.anchor(size, root, proof, sender=self.sender)
        except ChainError as exc:
            if exc.name in RESYNC_ERRORS:
                self._last_sync = 0.0
            raise

    # -- reconciling with the chain ------------------------------------------------------

    def check_chain(self) -> int:
        """Read only (any process, at start): refuse a chain whose heads are not this
        database's log (``log_fork``); returns how many anchors it lost."""
        lost = self.reconciler.check()
        if lost:
            log.warning("the chain does not hold %d of this database's anchors (restored "
                        "from an older state?): the lease holder anchors them again", lost)
        return lost

    def sync(self) -> SyncResult:
        """Reconcile the anchors with the chain (both ways); needs the lease."""
        result = self.reconciler.sync()
        self._last_sync, self._synced_epoch = time.monotonic(), self.lease.epoch
        return result

    def _sync_stale(self, *, busy: bool = False) -> bool:
        """Whether the loop must reconcile before its next write: at once after taking the
        lease or a failed cycle; else every SYNC_SECONDS while idle and BUSY_SYNC_SECONDS
        while cycles run (two chain reads: under load they cost an urgent record as much as
        its own anchor). A head the chain lost in between makes the next anchor revert (its
        consistency proof starts from the lost head), which reconciles at once."""
        if self._synced_epoch != self.lease.epoch or self._last_sync == 0.0:
            return True
        every = BUSY_SYNC_SECONDS if busy else SYNC_SECONDS
        return time.monotonic() - self._last_sync >= every

    def recover(self) -> None:
        """Take the lease and reconcile: a head a crash left unrecorded is recorded, heads
        the chain lost are anchored again."""
        self.lease.guard()
        self.sync()

    def anchored_size(self) -> int:
        """The size of the largest confirmed head (what records count as anchored in)."""
        with self.db.session() as s:
            return confirmed_size(s)

    # -- scheduling --------------------------------------------------------------------

    def due(self) -> bool:
        """Whether an anchoring cycle should run now (urgent, full batch, or routine
        interval)."""
        return self.plan() in ("urgent", "anchor")

    def plan(self) -> Plan | None:
        """What the loop should do now, or None. ``anchor``: sequence what waits and anchor
        (urgent records with few others waiting, a full batch in the log or the queue, the
        routine interval passed); ``urgent``: sequence only the urgent records and anchor,
        when more than RIDE_ALONG routine ones wait (an urgent record does not wait behind a
        routine batch's screening and sequencing; while urgent records keep coming, a due
        routine cycle takes every other turn); ``sequence``: SEQUENCE_STEP or more records
        wait, append them now so the anchor finds them sequenced."""
        with self.db.session() as s:
            pending = s.scalar(select(func.count()).select_from(Record)
                               .where(*_WAITING)) or 0
            urgent = s.scalar(select(func.count()).select_from(Record)
                              .where(*_WAITING, Record.urgent)) or 0
            unanchored = EvidenceLogDB(s, self.cache).size() - on_chain_size(s)
        if urgent:
            self._urgent_seen = time.monotonic()
        waited = time.monotonic() - self._last_anchor >= self.settings.anchor_interval_seconds
        routine = (pending > urgent or unanchored > 0) and (
            pending + unanchored >= self.settings.anchor_batch_max or waited
            or self._cut_short)
        if urgent and pending - urgent > RIDE_ALONG and not (
                routine and self._last_plan == "urgent"):
            return "urgent"
        if urgent or routine:
            return "anchor"
        return "sequence" if pending >= SEQUENCE_STEP else None

    def run(self) -> None:
        """Loop until :meth:`stop`; only the holder of the database lease works. Recovery
        (reconciling with the chain) runs under the lease, first thing after taking it."""
        if self.listener is not None:
            self.listener.start()
        if self.checkpointer is not None:
            self.checkpointer.start()
        while not self._stop.is_set():
            try:
                if (self.lease.fresh(self._lease_margin) or self.hold_lease()) \
                        and self._turn():
                    continue  # sequenced as records arrive: look again before sleeping
            except LeaseLost as exc:
                log.warning("%s", exc.msg)
            except ClaimxError as exc:
                self._last_sync = 0.0  # the next turn reconciles before writing
                log.error("anchor cycle failed: %s (%s); retrying", exc.msg, exc.code)
                if self.on_failure is not None:
                    self.on_failure(exc)
                resync = isinstance(exc, ChainError) and exc.name in RESYNC_ERRORS
                self._stop.wait(self.settings.urgent_poll_seconds if resync
                                else self.settings.anchor_interval_seconds)
            except SQLAlchemyError as exc:  # e.g. a lost lease race or a database restart
                self._last_sync = 0.0
                log.error("anchor cycle hit a database error: %s; retrying", type(exc).__name__)
                self._stop.wait(self.settings.urgent_poll_seconds)
            self.wake.wait(self.settings.urgent_poll_seconds)
            self.wake.clear()
        try:
            self.lease.release()  # a clean stop: a standby may take over at once
        except SQLAlchemyError:
            pass  # the database is gone: the lease lapses by itself

    def _turn(self) -> bool:
        """One pass of the loop under a lease just renewed: what :meth:`plan` says, else a
        periodic reconcile with the chain; True when records were sequenced without an
        anchor (more may be waiting: the loop looks again before sleeping)."""
        plan = self.plan()
        if plan is None:
            if self._sync_stale():
                self.sync()
            return False
        if self._sync_stale(busy=True):
            self.sync()
        self._last_plan = plan
        done = self._sequence_and_anchor(self.settings.anchor_batch_max,
                                         urgent_only=plan == "urgent",
                                         anchor=plan != "sequence")
        return plan == "sequence" and done.sequenced > 0

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="claimx-anchor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self.listener is not None:
            self.listener.stop()
        if self.checkpointer is not None:
            self.checkpointer.stop()

    def hold_lease(self, ttl: float | None = None) -> bool:
        """Take or renew the single-worker lease; False while another live worker holds it
        (a restart with this worker's holder id takes it over at once)."""
        return self.lease.hold(ttl)
