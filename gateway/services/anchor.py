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
from typing import Protocol

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
from gateway.store.db import Database
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Record

log = logging.getLogger("claimx.anchor")
LEASE_NAME = "anchor-worker"
SYNC_SECONDS = 1.0
"""How often an idle lease holder compares the chain's heads with the database's anchors
(a node restored from an older state is noticed within this, records re-anchored)."""
SEQUENCE_STEP = 500
"""Records waiting that make the loop sequence them before their batch is due for
anchoring: sequencing keeps pace with arrival instead of adding its time to the anchor's."""
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
                 block_number: Callable[[], int] | None = None) -> None:
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
        self._stop = threading.Event()
        self._last_anchor = time.monotonic()
        self._last_sync = 0.0

    # -- one cycle ---------------------------------------------------------------------

    def cycle(self, *, limit: int | None = None, anchor: bool = True) -> CycleResult:
        """Reconcile, sequence pending records and anchor the log head if the chain is
        behind (unless ``anchor`` is False: sequencing alone, as records arrive, so the
        anchor of a full batch has nothing left to sequence); LeaseLost (and nothing
        written) when another process holds the lease."""
        self.lease.guard()
        self.sync()
        batch = limit or self.settings.anchor_batch_max
        screened = None
        if self.keys is not None:
            now = self.chain_time() if self.chain_time else int(time.time())
            screened = check_pending(self.db, self.keys, now, batch)
        with self.db.session() as s:
            self.lease.check(s)
            if screened is not None:
                mark_rejected(s, screened.rejected, self.on_rejected)
            seq = EvidenceLogDB(s, self.cache).sequence(
                batch, None if screened is None else screened.valid_ids)
            self.fault("before_sequence_commit")
        self.fault("after_sequence")
        if not anchor:
            return CycleResult(seq.new_size - seq.old_size, None)
        with self.db.session() as s:
            logdb = EvidenceLogDB(s, self.cache)
            size = logdb.size()
            anchored = on_chain_size(s)
            if size <= anchored:
                return CycleResult(seq.new_size - seq.old_size, None)
            root = logdb.root(size)
            proof = logdb.consistency_proof(anchored, size) if anchored else []
        self.lease.guard()  # re-checked right before the write: a pause may have cost it
        result = self._write(size, root, proof)
        self.fault("after_anchor_tx")
        with self.db.session() as s:
            fence = self.lease.check(s)  # a lost lease: the new holder records it from chain
            record_anchor(s, result.head, result.tx_hash, result.gas_used, fence=fence,
                          confirmed=self.reconciler.deep(result.head),
                          on_anchored=self.on_anchored)
        self._last_anchor = time.monotonic()
        log.info("anchored tree size %d in block %d (%d gas)", size, result.block_number,
                 result.gas_used)
        return CycleResult(seq.new_size - seq.old_size, size, result.gas_used)

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
        self._last_sync = time.monotonic()
        return result

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
        return self.plan() == "anchor"

    def plan(self) -> str | None:
        """What the loop should do now: ``"anchor"`` (urgent records wait, a full batch
        waits in the log or in the queue, or the routine interval has passed),
        ``"sequence"`` (SEQUENCE_STEP or more records wait: append them now, so the anchor
        finds them sequenced) or None."""
        with self.db.session() as s:
            waiting = (Record.leaf_index.is_(None), Record.rejected_at.is_(None))
            pending = s.scalar(select(func.count()).select_from(Record)
                               .where(*waiting)) or 0
            urgent = s.scalar(select(func.count()).select_from(Record)
                              .where(*waiting, Record.urgent)) or 0
            unanchored = EvidenceLogDB(s, self.cache).size() - on_chain_size(s)
        if urgent or pending + unanchored >= self.settings.anchor_batch_max:
            return "anchor"
        waited = time.monotonic() - self._last_anchor >= self.settings.anchor_interval_seconds
        if waited and (pending > 0 or unanchored > 0):
            return "anchor"
        return "sequence" if pending >= SEQUENCE_STEP else None

    def run(self) -> None:
        """Loop until :meth:`stop`; only the holder of the database lease works. Recovery
        (reconciling with the chain) runs under the lease, first thing after taking it."""
        while not self._stop.is_set():
            try:
                if self.hold_lease():
                    plan = self.plan()
                    if plan is not None:
                        done = self.cycle(anchor=plan == "anchor")
                        if plan == "sequence" and done.sequenced:
                            continue  # more may be waiting: look again before sleeping
                    elif time.monotonic() - self._last_sync >= SYNC_SECONDS:
                        self.lease.guard()
                        self.sync()
            except LeaseLost as exc:
                log.warning("%s", exc.msg)
            except ClaimxError as exc:
                log.error("anchor cycle failed: %s (%s); retrying", exc.msg, exc.code)
                if self.on_failure is not None:
                    self.on_failure(exc)
                resync = isinstance(exc, ChainError) and exc.name in RESYNC_ERRORS
                self._stop.wait(self.settings.urgent_poll_seconds if resync
                                else self.settings.anchor_interval_seconds)
            except SQLAlchemyError as exc:  # e.g. a lost lease race or a database restart
                log.error("anchor cycle hit a database error: %s; retrying", type(exc).__name__)
                self._stop.wait(self.settings.urgent_poll_seconds)
            self.wake.wait(self.settings.urgent_poll_seconds)
            self.wake.clear()
        try:
            self.lease.release()  # a clean stop: a standby may take over at once
        except SQLAlchemyError:
            pass  # the database is gone: the lease lapses by itself

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="claimx-anchor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    def hold_lease(self, ttl: float | None = None) -> bool:
        """Take or renew the single-worker lease; False while another live worker holds it
        (a restart with this worker's holder id takes it over at once)."""
        return self.lease.hold(ttl)
