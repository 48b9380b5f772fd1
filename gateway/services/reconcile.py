"""Keeping the database's anchors and the chain's heads together, both ways, on any node.

A database belongs to a chain when (checked in gateway.services.wiring) the chain id matches
and the deployment's contracts exist there, and (here, :func:`check_belongs`) the chain's
latest head is a head of the database's own log: same size, same root. The chain enforces
that each head is consistent with the one before, so then every head it holds is one of
ours. From there :meth:`Reconciler.sync`, run by the lease holder only:

* records a head the chain holds beyond the database's anchors (a worker killed between
  mining and recording);
* takes the anchors the chain lost (a node restored from an older ``--state``, a reorg) out
  of what counts: their records are ``logged`` again and no receipt cites them; then anchors
  them again at the same sizes, in order, from the leaves and roots in the database. The chain
  then holds heads of the same index, size and root as before, so receipts already issued
  verify again; only the transaction changes, and it is refreshed from the chain;
* confirms anchors once they are ``CLAIMX_CONFIRMATIONS`` blocks deep (1: once mined).

An anchor row is on chain while ``head_index >= 0``; a lost one waits with ``-size`` there
(unique, never a real index) until it is anchored again. ``confirmed`` rows are the only ones
that count as anchored (gateway.services.records).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.chain.models import AnchorResult, TreeHead
from gateway.core.errors import ChainError
from gateway.services.lease import LeaseKeeper
from gateway.store.db import Database
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Anchor

log = logging.getLogger("claimx.anchor")

OnAnchored = Callable[[Session, int, int], None]
"""Called in the recording transaction with (old, new) confirmed size: claim events."""


class HeadReader(Protocol):
    """What reconciling reads from gateway.chain.contracts.EvidenceLogClient."""

    def head_count(self) -> int: ...
    def head_at(self, index: int) -> TreeHead: ...
    def anchor_tx_of(self, index: int) -> bytes: ...


@dataclass
class SyncResult:
    recorded: int = 0
    reanchored: int = 0
    confirmed: int = 0
    dropped: int = 0
    lost: list[int] = field(default_factory=list)
    """Sizes of the anchors the chain did not hold at this sync."""


def confirmed_size(s: Session) -> int:
    """The size of the largest head that counts as anchored (0 before the first)."""
    return s.scalar(select(func.max(Anchor.size)).where(Anchor.confirmed)) or 0


def on_chain_size(s: Session) -> int:
    """The size of the largest anchor the chain holds, confirmed or not: the base of the
    next consistency proof."""
    return s.scalar(select(func.max(Anchor.size)).where(Anchor.head_index >= 0)) or 0


def check_belongs(logdb: EvidenceLogDB, latest: TreeHead | None) -> None:
    """Refuse, in one line that says what to do, a chain whose heads are not our log's."""
    if latest is None:
        return
    size = logdb.size()
    if latest.size > size:
        raise ChainError(
            f"the chain's head #{latest.index} has {latest.size} leaves but this database's log "
            f"only {size}: the database is older than the chain (restored from a backup?) or "
            "belongs to another one; restore the database that anchored it, or point "
            "--database-url and --deployment at a matching pair", code="log_fork")
    if logdb.root(latest.size) != latest.root:
        raise ChainError(
            f"the chain's head #{latest.index} (size {latest.size}) is not a head of this "
            "database's log: the database and the chain do not belong together; point "
            "--database-url and --deployment at a matching pair (or use a fresh database for "
            "this chain)", code="log_fork")


def record_anchor(s: Session, head: TreeHead, tx_hash: bytes, gas_used: int, *,
                  fence: int | None, confirmed: bool, on_anchored: OnAnchored | None) -> None:
    """Insert the anchor row for ``head`` (once: a second call for its size does nothing)."""
    if s.get(Anchor, head.size) is not None:
        return
    old = confirmed_size(s)
    s.add(Anchor(size=head.size, root=head.root, head_index=head.index, tx_hash=tx_hash,
                 block_number=head.block_number, block_time=head.timestamp,
                 gas_used=gas_used, fence=fence, confirmed=confirmed))
    if confirmed:
        _announce(s, old, head.size, on_anchored)


def _announce(s: Session, old: int, new: int, on_anchored: OnAnchored | None) -> None:
    if on_anchored is not None and new > old:
        s.flush()
        on_anchored(s, old, new)


class Reconciler:
    """Brings the anchors table and the chain's heads together (see the module doc)."""

    def __init__(self, db: Database, chain: HeadReader, lease: LeaseKeeper, cache: NodeCache,
                 *, confirmations: int, anchor: Callable[[int, bytes, list[bytes]],
                                                         AnchorResult],
                 on_anchored: OnAnchored | None) -> None:
        self.db, self.chain, self.lease, self.cache = db, chain, lease, cache
        self.confirmations, self.anchor, self.on_anchored = confirmations, anchor, on_anchored
        self.block_number: Callable[[], int] | None = None
        """The chain's tip (needed only when confirmations > 1)."""

    def check(self) -> int:
        """Read only, for start-up: refuse a chain that is not ours; returns how many of our
        anchors it does not hold (the lease holder anchors them again)."""
        count = self.chain.head_count()
        latest = self.chain.head_at(count - 1) if count else None
        with self.db.session() as s:
            check_belongs(EvidenceLogDB(s, self.cache), latest)
            return s.scalar(select(func.count()).select_from(Anchor).where(
                (Anchor.head_index >= count) | (Anchor.head_index < 0))) or 0

    def sync(self) -> SyncResult:
        """One pass, by the lease holder: cheap (two chain reads) when all agree."""
        count = self.chain.head_count()
        latest = self.chain.head_at(count - 1) if count else None
        with self.db.session() as s:
            top = s.scalar(select(Anchor).order_by(Anchor.size.desc()).limit(1))
            pending = s.scalar(select(func.count()).select_from(Anchor)
                               .where(Anchor.confirmed.is_(False))) or 0
            if top is None and latest is None:
                return SyncResult()
            if (not pending and top is not None and latest is not None
                    and (top.head_index, top.size, top.root) ==
                    (latest.index, latest.size, latest.root)):
                return SyncResult()
            check_belongs(EvidenceLogDB(s, self.cache), latest)
        result = SyncResult()
        shallow = self._mark_lost(count, latest, result)
        if latest is not None:
            self._record_latest(latest, result)
        self._anchor_lost_again(latest, result)
        self._confirm(shallow, result)
        return result

    # -- the steps ------------------------------------------------------------------------

    def _mark_lost(self, count: int, latest: TreeHead | None,
                   result: SyncResult) -> list[TreeHead]:
        """Walk our anchors from the top: the ones the chain does not hold stop counting
        (dropped when the chain is already past their size); returns the heads of those it
        holds but not yet confirmed. Stops at the first confirmed anchor the chain holds:
        the chain's heads below it are append-only."""
        shallow: list[TreeHead] = []
        with self.db.session() as s:
            fence = self.lease.check(s)
            for a in s.scalars(select(Anchor).order_by(Anchor.size.desc())).all():
                head = None
                if 0 <= a.head_index < count:
                    head = latest if latest is not None and a.head_index == latest.index \
                        else self.chain.head_at(a.head_index)
                if head is not None and (head.size, head.root) == (a.size, a.root):
                    if a.confirmed:
                        break
                    shallow.append(head)
                    continue
                result.lost.append(a.size)
                if latest is not None and a.size <= latest.size:
                    s.delete(a)  # a larger head on chain holds its leaves
                    result.dropped += 1
                else:
                    a.head_index, a.confirmed, a.fence = -a.size, False, fence
        if result.lost:
            log.warning("the chain does not hold %d of this database's anchors (sizes %s): "
                        "their records count as logged until they are anchored again",
                        len(result.lost), _sizes(result.lost))
        return shallow

    def _record_latest(self, latest: TreeHead, result: SyncResult) -> None:
        """A head on chain beyond our anchors (killed after mining): record it."""
        with self.db.session() as s:
            if latest.size <= on_chain_size(s) or s.get(Anchor, latest.size) is not None:
                return
        tx = self.chain.anchor_tx_of(latest.index)
        with self.db.session() as s:
            fence = self.lease.check(s)
            record_anchor(s, latest, tx, 0, fence=fence, confirmed=self.deep(latest),
                          on_anchored=self.on_anchored)
        result.recorded += 1
        log.warning("recorded the chain's head of size %d that this database had not "
                    "(a worker stopped between mining and recording)", latest.size)

    def _anchor_lost_again(self, latest: TreeHead | None, result: SyncResult) -> None:
        """The lost anchors, oldest first, at the same sizes and roots, from our log."""
        base = 0 if latest is None else latest.size
        with self.db.session() as s:
            sizes = list(s.scalars(select(Anchor.size).where(Anchor.head_index < 0)
                                   .order_by(Anchor.size)))
        for size in sizes:
            with self.db.session() as s:
                logdb = EvidenceLogDB(s, self.cache)
                root = logdb.root(size)
                proof = logdb.consistency_proof(base, size) if base else []
            self.lease.guard()
            mined = self.anchor(size, root, proof)
            with self.db.session() as s:
                fence = self.lease.check(s)
                row = s.get(Anchor, size)
                if row is None:
                    continue
                old = confirmed_size(s)
                h = mined.head
                row.head_index, row.tx_hash, row.block_number = h.index, mined.tx_hash, \
                    h.block_number
                row.block_time, row.gas_used, row.fence = h.timestamp, mined.gas_used, fence
                row.confirmed = self.deep(h)
                if row.confirmed:
                    _announce(s, old, size, self.on_anchored)
            base = size
            result.reanchored += 1
        if sizes:
            log.warning("anchored %d lost head(s) again (sizes %s)", len(sizes), _sizes(sizes))

    def _confirm(self, shallow: list[TreeHead], result: SyncResult) -> None:
        for head in sorted(shallow, key=lambda h: h.size):
            if not self.deep(head):
                continue
            tx = self.chain.anchor_tx_of(head.index)  # the chain's, not what we recorded
            with self.db.session() as s:
                self.lease.check(s)
                row = s.get(Anchor, head.size)
                if row is None or row.confirmed:
                    continue
                old = confirmed_size(s)
                row.tx_hash, row.block_number, row.block_time = tx, head.block_number, \
                    head.timestamp
                row.confirmed = True
                _announce(s, old, head.size, self.on_anchored)
            result.confirmed += 1

    def deep(self, head: TreeHead) -> bool:
        """Whether ``head``'s block has ``confirmations`` confirmations (its own included)."""
        if self.confirmations <= 1:
            return True
        if self.block_number is None:
            raise RuntimeError("confirmations > 1 need the chain's block number")
        return self.block_number() - head.block_number + 1 >= self.confirmations


def _sizes(sizes: list[int]) -> str:
    shown = ", ".join(str(n) for n in sorted(sizes)[:5])
    return shown + (", …" if len(sizes) > 5 else "")
