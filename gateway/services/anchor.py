"""The anchor worker: sequences accepted records into the log and anchors tree heads on chain.

One cycle = (1) sequence pending records into leaves and commit; (2) if the log is ahead of
the chain, send ``EvidenceLog.anchor(size, root, consistencyProof)`` and record it. Each
step is safe to kill at any point:

* killed before (1) commits: nothing happened; the records are still pending.
* killed after (1), before the transaction is mined: the next cycle anchors the same size.
* killed after mining, before recording: :meth:`AnchorWorker.recover` finds the chain head
  ahead of the database, checks its root against the local log and records it.

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
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.chain.models import AnchorResult, TreeHead
from gateway.config import Settings
from gateway.core.errors import ChainError, ClaimxError
from gateway.core.types import as_utc
from gateway.services.logcheck import check_pending, mark_rejected
from gateway.services.publish import KeyDirectory
from gateway.store.db import Database
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Anchor, Lease, Record

log = logging.getLogger("claimx.anchor")
LEASE_NAME = "anchor-worker"


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
                 fault: Fault | None = None,
                 on_anchored: Callable[[Session, int, int], None] | None = None,
                 keys: KeyDirectory | None = None, chain_time: Callable[[], int] | None = None,
                 on_rejected: Callable[[Session, Record], None] | None = None,
                 on_failure: Callable[[ClaimxError], None] | None = None) -> None:
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
        """Called in the recording transaction with (old size, new size): claim events."""
        self.holder = f"{uuid.uuid4()}"
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._last_anchor = time.monotonic()

    # -- one cycle ---------------------------------------------------------------------

    def cycle(self, *, limit: int | None = None) -> CycleResult:
        """Sequence pending records and anchor the log head if the chain is behind."""
        self.recover()
        batch = limit or self.settings.anchor_batch_max
        screened = None
        if self.keys is not None:
            now = self.chain_time() if self.chain_time else int(time.time())
            screened = check_pending(self.db, self.keys, now, batch)
        with self.db.session() as s:
            if screened is not None:
                mark_rejected(s, screened.rejected, self.on_rejected)
            seq = EvidenceLogDB(s, self.cache).sequence(
                batch, None if screened is None else screened.valid_ids)
            self.fault("before_sequence_commit")
        self.fault("after_sequence")
        with self.db.session() as s:
            logdb = EvidenceLogDB(s, self.cache)
            size = logdb.size()
            anchored = _anchored_size(s)
            if size <= anchored:
                return CycleResult(seq.new_size - seq.old_size, None)
            root = logdb.root(size)
            proof = logdb.consistency_proof(anchored, size) if anchored else []
        result = self.chain.anchor(size, root, proof, sender=self.sender)
        self.fault("after_anchor_tx")
        with self.db.session() as s:
            self._record(s, result.head, result.tx_hash, result.gas_used)
        self._last_anchor = time.monotonic()
        log.info("anchored tree size %d in block %d (%d gas)", size, result.block_number,
                 result.gas_used)
        return CycleResult(seq.new_size - seq.old_size, size, result.gas_used)

    def _record(self, s: Session, head: TreeHead, tx_hash: bytes, gas_used: int) -> None:
        if s.get(Anchor, head.size) is not None:
            return
        old = _anchored_size(s)
        s.add(Anchor(size=head.size, root=head.root, head_index=head.index, tx_hash=tx_hash,
                     block_number=head.block_number, block_time=head.timestamp,
                     gas_used=gas_used))
        if self.on_anchored is not None:
            self.on_anchored(s, old, head.size)

    def reconcile(self, *, chain_tip: int | None = None) -> int:
        """Make the database's anchors a prefix of the chain's heads; returns how many went.

        With ``chain_tip`` (a local node that a ``kill -9`` can set back by up to a second of
        blocks), anchors mined after that block are forgotten: their leaves stay, and the
        next cycle anchors them again on top of the chain's last head. Any other mismatch
        means the database and the chain do not belong together, and is refused.
        """
        count = self.chain.head_count()
        dropped = 0
        with self.db.session() as s:
            for a in s.scalars(select(Anchor).order_by(Anchor.size.desc())).all():
                if a.head_index < count:
                    head = self.chain.head_at(a.head_index)
                    if (head.size, head.root) != (a.size, a.root):
                        raise ChainError(
                            f"the database's anchor of size {a.size} is not head {a.head_index} "
                            "on this chain: the database and the chain do not belong together; "
                            "point --database-url and --deployment at a matching pair (or "
                            "remove the local state folder to start afresh)", code="log_fork")
                    break
                if chain_tip is None or a.block_number <= chain_tip:
                    raise ChainError(
                        f"the database's anchor of size {a.size} (block {a.block_number}) is "
                        f"not on this chain, which holds {count} heads: the database and the "
                        "chain do not belong together; point --database-url and --deployment "
                        "at a matching pair", code="log_fork")
                s.delete(a)
                dropped += 1
        if dropped:
            log.warning("the chain lost %d anchor(s) in blocks after %s (killed before its "
                        "state was saved); their records will be anchored again", dropped,
                        chain_tip)
        return dropped

    def recover(self) -> None:
        """Record a chain head that a crash left unrecorded, after checking it matches."""
        head = self.chain.latest_head()
        if head is None:
            return
        with self.db.session() as s:
            if _anchored_size(s) >= head.size:
                return
            logdb = EvidenceLogDB(s, self.cache)
            if logdb.size() < head.size or logdb.root(head.size) != head.root:
                raise ChainError(
                    f"chain head (size {head.size}) does not match this database's log; "
                    "refusing to anchor: check that CLAIMX_DATABASE_URL and the deployment "
                    "belong together", code="log_fork")
            self._record(s, head, self.chain.anchor_tx_of(head.index), 0)
            log.warning("recovered unrecorded anchor of size %d", head.size)

    # -- scheduling --------------------------------------------------------------------

    def due(self) -> bool:
        """Whether a cycle should run now (urgent, full batch, or routine interval)."""
        with self.db.session() as s:
            waiting = (Record.leaf_index.is_(None), Record.rejected_at.is_(None))
            pending = s.scalar(select(func.count()).select_from(Record)
                               .where(*waiting)) or 0
            urgent = s.scalar(select(func.count()).select_from(Record)
                              .where(*waiting, Record.urgent)) or 0
            unanchored = EvidenceLogDB(s, self.cache).size() > _anchored_size(s)
        if urgent or pending >= self.settings.anchor_batch_max:
            return True
        waited = time.monotonic() - self._last_anchor >= self.settings.anchor_interval_seconds
        return waited and (pending > 0 or unanchored)

    def run(self) -> None:
        """Loop until :meth:`stop`; only the holder of the database lease works."""
        while not self._stop.is_set():
            try:
                if self.hold_lease() and self.due():
                    self.cycle()
            except ClaimxError as exc:
                log.error("anchor cycle failed: %s (%s); retrying", exc.msg, exc.code)
                if self.on_failure is not None:
                    self.on_failure(exc)
                self._stop.wait(self.settings.anchor_interval_seconds)
            except SQLAlchemyError as exc:  # e.g. a lost lease race or a database restart
                log.error("anchor cycle hit a database error: %s; retrying", type(exc).__name__)
                self._stop.wait(self.settings.urgent_poll_seconds)
            self.wake.wait(self.settings.urgent_poll_seconds)
            self.wake.clear()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="claimx-anchor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    def hold_lease(self, ttl: float | None = None) -> bool:
        """Take or renew the single-worker lease; False while another live worker holds it."""
        ttl = self.settings.lease_seconds if ttl is None else ttl
        now = datetime.now(UTC)
        with self.db.session() as s:
            lease = s.scalar(select(Lease).where(Lease.name == LEASE_NAME).with_for_update())
            if lease is None:
                s.add(Lease(name=LEASE_NAME, holder=self.holder,
                            expires_at=now + timedelta(seconds=ttl)))
                return True
            expires = as_utc(lease.expires_at)
            if lease.holder != self.holder and expires > now:
                return False
            lease.holder, lease.expires_at = self.holder, now + timedelta(seconds=ttl)
            return True


def _anchored_size(s: Session) -> int:
    return s.scalar(select(func.max(Anchor.size))) or 0



