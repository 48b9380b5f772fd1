"""The exchange's acceptance promises: issued at publish, extended while the chain is down,
ended by inclusion in an anchored head or by a signed rejection (models and rules in
:mod:`gateway.core.promise`).

Issuing: the records of one publish call share one signature (a promise batch,
``claimx.promise/2``), signed before the storing transaction and stored in it as one
``promise_batches`` row and a narrow ``promise_leaves`` row per record; each record's
promise is rebuilt from them (and the records table) when asked for. A duplicate gets the
promise already given. The anchor worker calls :meth:`PromiseDesk.extend_due` when a cycle
fails because the chain is unavailable, and the logging-time key check calls
:meth:`PromiseDesk.reject` for each record it rejects: extensions and rejections are one
signature each. Promises of version 1 (a ``promises`` row each, issued before batches) are
still served, extended and rejected. Every document is signed with the exchange operator's
registered key, the one its ledger entries use.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
import time
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from sqlalchemy import Table, func, insert, or_, select, update
from sqlalchemy.orm import Session

from gateway.core.errors import ChainUnavailableError, ClaimxError, NotFoundError
from gateway.core.keys import SigningKey
from gateway.core.promise import (
    Extension,
    Leaf,
    Promise,
    PromiseBatch,
    PromiseBundle,
    Rejection,
    Signer,
    decide,
    sign,
)
from gateway.core.receipt import ChainRef, Inclusion
from gateway.core.types import hex32, parse_hex32
from gateway.services.publish import Accepted, Checked
from gateway.services.receipts import inclusion
from gateway.store.db import Database
from gateway.store.events import emit
from gateway.store.log import NodeCache
from gateway.store.tables import (
    Anchor,
    PromiseBatchRow,
    PromiseExtensionRow,
    PromiseLeafRow,
    PromiseMarkRow,
    PromiseRow,
    Record,
)

log = logging.getLogger("claimx.promises")
CHAIN_UNAVAILABLE = "chain_unavailable"


class ChainClock:
    """The chain's time, for promises: their times are compared with block times.

    Calling it reads the latest block time (the anchor worker does before its key check, so
    a rejection states that very time as ``checked_at`` without a chain call inside the
    rejecting transaction). :meth:`now` estimates it without a chain call: the last reading
    plus the time since, and never earlier than the wall clock. On a production chain block
    times track the wall clock and the two agree; a development EVM that mines a block a
    second ahead per transaction would otherwise make every promise look late."""

    def __init__(self, read: Callable[[], int], *, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.read, self.wall, self.monotonic = read, wall, monotonic
        self._mine = threading.local()
        self._seen: tuple[int, float] | None = None

    def __call__(self) -> int:
        t = self.read()
        self._mine.last, self._seen = t, (t, self.monotonic())
        return t

    @property
    def last(self) -> int | None:
        """This thread's last reading (the worker's own, not a publish thread's)."""
        return getattr(self._mine, "last", None)

    def now(self) -> int:
        est = self.wall()
        if self._seen is not None:
            est = max(est, self._seen[0] + self.monotonic() - self._seen[1])
        return int(est)


EXTENSION, REJECTION = "extension", "rejection"
BATCH_CACHE = 16
"""Batches kept rebuilt in memory (a 10,000-record batch is ~1.5 MB): a monitor asking for
each promise of a batch in turn rebuilds its tree once."""


@dataclass(frozen=True)
class Stored:
    """A stored batch rebuilt: its promises, and each position's record id."""

    row_id: int
    batch: PromiseBatch
    record_ids: list[int]


@dataclass(frozen=True)
class Current:
    """A record's latest promise/2: its batch (rebuilt) and position."""

    record_id: int
    stored: Stored
    position: int

    @property
    def promise(self) -> Promise:
        return self.stored.batch.promise(self.position)

    @property
    def issuer(self) -> bytes:
        return self.stored.batch.leaves[self.position].issuer


@dataclass(frozen=True)
class Terms:
    """Maximum merge delays, seconds: routine records and the green channel (urgent)."""

    merge_delay: int
    urgent_merge_delay: int


class PromiseDesk:
    def __init__(self, key: SigningKey, member_id: bytes, chain: ChainRef, terms: Terms, *,
                 clock: Callable[[], float] = time.time,
                 chain_time: ChainClock | None = None) -> None:
        self.key, self.member_id, self.chain, self.terms = key, member_id, chain, terms
        self.clock, self.chain_time = clock, chain_time
        self._signer = Signer(member_id=hex32(member_id), key_id=hex32(key.key_id))
        self._cache: OrderedDict[int, Stored] = OrderedDict()
        self._lock = threading.Lock()

    # -- issuing -------------------------------------------------------------------------

    def now(self) -> int:
        """Acceptance time for the promises signed now."""
        return int(self.clock())

    def batch_for(self, checked: Sequence[Checked], now: int) -> PromiseBatch:
        """The signed promises of the envelopes of one publish call accepted at ``now``:
        one signature for all (a leaf per envelope, duplicates included: they keep the
        promise already given, their leaf is left unused)."""
        leaves = []
        for c in checked:
            urgent = c.packet.is_urgent
            leaves.append(Leaf(c.digest, parse_hex32(c.packet.issuer), c.key_id, urgent,
                               self.terms.urgent_merge_delay if urgent
                               else self.terms.merge_delay))
        return PromiseBatch.sign(self.key, self._signer, self.chain, now, leaves)

    def issue(self, s: Session, batch: PromiseBatch,
              results: Sequence[Accepted]) -> list[Accepted]:
        """``results`` with their promises, in the storing transaction: result ``i`` gets
        leaf ``i`` of ``batch`` (from :meth:`batch_for`), a rejected record published again
        included; a duplicate gets the promise already given instead. One query for the
        records' ids (and earlier leaves), one batch row, one multi-row leaf insert."""
        found: dict[bytes, tuple[int, int | None, int | None]] = {
            digest: (rid, bid, pos) for rid, digest, bid, pos in s.execute(
            select(Record.id, Record.digest, PromiseLeafRow.batch_id, PromiseLeafRow.position)
            .outerjoin(PromiseLeafRow, PromiseLeafRow.record_id == Record.id)
            .where(Record.digest.in_({a.digest for a in results})))}
        given = self._given(s, [a.digest for a in results if a.duplicate], found)
        fresh: list[tuple[int, int, bool]] = []  # (position, record id, moved)
        out: list[Accepted] = []
        for i, a in enumerate(results):
            promise = given.get(a.digest)
            if promise is None:
                promise = given[a.digest] = batch.promise(i)
                fresh.append((i, found[a.digest][0], found[a.digest][1] is not None))
            out.append(replace(a, promise=promise))
        if fresh:
            self._store(s, batch, [found[a.digest][0] for a in results], fresh)
        return out

    def _given(self, s: Session, dups: Sequence[bytes],
               found: dict[bytes, tuple[int, int | None, int | None]]) -> dict[bytes, Promise]:
        """The promise already given for each duplicate that has one (of either version)."""
        given: dict[bytes, Promise] = {}
        for d in dups:
            _, bid, pos = found[d]
            if bid is not None and pos is not None:
                given[d] = self._stored(s, bid).batch.promise(pos)
        older = [d for d in dups if d not in given]
        if older:
            given.update(self._latest_v1(s, older))
        return given

    def _store(self, s: Session, batch: PromiseBatch, record_ids: list[int],
               fresh: list[tuple[int, int, bool]]) -> None:
        keys: dict[tuple[bytes, bytes], int] = {}
        numbers = [keys.setdefault((leaf.issuer, leaf.key_id), len(keys))
                   for leaf in batch.leaves]
        deadlines = [batch.accepted_at + batch.leaves[i].merge_delay for i, _, _ in fresh]
        row = PromiseBatchRow(
            accepted_at=batch.accepted_at, size=len(batch.leaves), root=batch.root,
            signer=self.member_id, signer_key_id=self.key.key_id, signature=batch.signature,
            merge_delay=self.terms.merge_delay, urgent_merge_delay=self.terms.urgent_merge_delay,
            first_deadline=min(deadlines), last_deadline=max(deadlines),
            keys=b"".join(i + k for i, k in keys), leaves=_pack(record_ids, numbers))
        s.add(row)
        s.flush()
        batch_id = row.id  # once: each ORM attribute read costs a lot more than a local's
        rows = [{"record_id": rid, "batch_id": batch_id, "position": i}
                for i, rid, moved in fresh if not moved]
        if rows:
            s.execute(insert(cast(Table, PromiseLeafRow.__table__)), rows)
        for i, rid, moved in fresh:
            if moved:  # rejected, published again: its new promise is in this batch
                s.execute(update(PromiseLeafRow).where(PromiseLeafRow.record_id == rid)
                          .values(batch_id=batch_id, position=i))

    def _stored(self, s: Session, batch_id: int) -> Stored:
        """Batch ``batch_id`` rebuilt (from the cache when it was rebuilt lately: batches
        never change)."""
        with self._lock:
            hit = self._cache.get(batch_id)
            if hit is not None:
                self._cache.move_to_end(batch_id)
                return hit
        row = s.get(PromiseBatchRow, batch_id)
        if row is None:
            raise NotFoundError(f"promise batch {batch_id} is missing", code="promise_not_found")
        record_ids, numbers = _unpack(row.leaves, row.size)
        records = {rid: (digest, urgent) for rid, digest, urgent in s.execute(
            select(Record.id, Record.digest, Record.urgent).where(Record.id.in_(set(record_ids))))}
        keys = [(row.keys[i:i + 32], row.keys[i + 32:i + 64]) for i in range(0, len(row.keys), 64)]
        leaves = []
        for rid, k in zip(record_ids, numbers, strict=True):
            digest, urgent = records[rid]
            leaves.append(Leaf(digest, *keys[k], bool(urgent),
                               row.urgent_merge_delay if urgent else row.merge_delay))
        signer = Signer(member_id=hex32(row.signer), key_id=hex32(row.signer_key_id))
        stored = Stored(row.id, PromiseBatch(self.chain, signer, row.accepted_at, leaves,
                                             row.signature), record_ids)
        with self._lock:
            self._cache[batch_id] = stored
            while len(self._cache) > BATCH_CACHE:
                self._cache.popitem(last=False)
        return stored

    def _current(self, s: Session, record_id: int) -> Current | None:
        """The record's latest promise/2, if it has one."""
        leaf = s.get(PromiseLeafRow, record_id)
        if leaf is None:
            return None
        return Current(record_id, self._stored(s, leaf.batch_id), leaf.position)

    def _promise(self, row: PromiseRow) -> Promise:
        """The signed document a stored version 1 row stands for (its deployment is this
        one's)."""
        return Promise(chain=self.chain,
                       signer=Signer(member_id=hex32(row.signer), key_id=hex32(row.signer_key_id)),
                       signature=base64.b64encode(row.signature).decode(),
                       digest=row.digest.hex(), issuer=hex32(row.issuer), key_id=hex32(row.key_id),
                       urgent=row.urgent, accepted_at=row.accepted_at,
                       merge_delay=row.merge_delay)

    def _latest_v1(self, s: Session, digests: Sequence[bytes]) -> dict[bytes, Promise]:
        """The latest version 1 promise of each digest that has one."""
        latest: dict[bytes, PromiseRow] = {}
        for row in s.scalars(select(PromiseRow).where(PromiseRow.digest.in_(set(digests)))):
            if row.digest not in latest or row.id > latest[row.digest].id:
                latest[row.digest] = row
        return {d: self._promise(row) for d, row in latest.items()}

    # -- ending in a rejection -----------------------------------------------------------

    def reject(self, s: Session, rec: Record) -> None:
        """Sign the rejection that ends the open promise of ``rec`` (rejected at logging)."""
        current = self._current(s, rec.id)
        if current is not None:
            if s.scalar(select(PromiseMarkRow.id).where(
                    PromiseMarkRow.record_id == rec.id,
                    PromiseMarkRow.batch_id == current.stored.row_id,
                    PromiseMarkRow.kind == REJECTION).limit(1)) is None:
                s.add(PromiseMarkRow(record_id=rec.id, batch_id=current.stored.row_id,
                                     kind=REJECTION, document=self._rejection(
                                         current.promise, rec).model_dump_json()))
            return
        row = _latest_row(s, rec.digest)
        if row is not None and row.rejection is None:
            row.rejection = self._rejection(self._promise(row), rec).model_dump_json()

    def _rejection(self, promise: Promise, rec: Record) -> Rejection:
        now = int(self.clock())
        checked_at = self.chain_time.last if self.chain_time and self.chain_time.last else now
        return sign(Rejection, self.key, self.member_id, chain=self.chain,
                    promise=promise.promise_id, digest=promise.digest, rejected_at=now,
                    checked_at=checked_at, code=rec.reject_code or "rejected")

    # -- extending while the chain is down -----------------------------------------------

    def extend_due(self, db: Database, reason: str, *, margin: float) -> int:
        """Extend every open promise whose deadline falls within ``margin`` seconds (and has
        not passed: a missed deadline cannot be mended) to ``margin`` plus its own merge
        delay from now; each extension is signed and told to the publisher as a
        ``promise.extended`` event. Returns how many were extended."""
        now = int(self.clock())
        with db.session() as s:
            # what counts as anchored: confirmed heads only (a head the chain lost, waiting
            # to be anchored again, or one not yet deep enough may still leave its records
            # late; extending a promise already kept changes no verdict)
            anchored = s.scalar(select(func.max(Anchor.size)).where(Anchor.confirmed)) or 0
            count = self._extend_v1(s, now, anchored, reason, margin)
            due = self._due(s, now, now + int(margin))
            if due:
                open_ = set(s.scalars(select(Record.id).where(
                    Record.id.in_(due), Record.rejected_at.is_(None),
                    or_(Record.leaf_index.is_(None), Record.leaf_index >= anchored))))
                for rid, current in sorted(due.items()):
                    if rid in open_:
                        self._extend(s, current, now, reason, margin)
                        count += 1
        if count:
            log.warning("extended %d open promise(s): %s", count, reason)
        return count

    def _due(self, s: Session, start: int, end: int) -> dict[int, Current]:
        """The latest promises/2 whose deadline in force falls in ``[start, end]`` and that
        no rejection ended, by record id (whether their records are open is the caller's).
        Those never extended are found from the batches' deadline bounds (a row per publish
        call), the extended ones from their extensions' deadlines."""
        marks: dict[tuple[int, int], list[PromiseMarkRow]] = {}
        window = s.scalars(select(PromiseBatchRow.id).where(
            PromiseBatchRow.last_deadline >= start, PromiseBatchRow.first_deadline <= end)).all()
        extended = s.scalars(select(PromiseMarkRow).where(
            PromiseMarkRow.kind == EXTENSION, PromiseMarkRow.deadline >= start,
            PromiseMarkRow.deadline <= end)).all()
        for m in s.scalars(select(PromiseMarkRow).where(or_(
                PromiseMarkRow.batch_id.in_(window),
                PromiseMarkRow.record_id.in_({m.record_id for m in extended})))):
            marks.setdefault((m.record_id, m.batch_id), []).append(m)
        due: set[tuple[int, int]] = set()  # (record id, batch id)
        for bid in window:
            stored = self._stored(s, bid)
            accepted = stored.batch.accepted_at
            for rid, leaf in zip(stored.record_ids, stored.batch.leaves, strict=True):
                if start <= accepted + leaf.merge_delay <= end and (rid, bid) not in marks:
                    due.add((rid, bid))
        for (rid, bid), ms in marks.items():
            if any(m.kind == REJECTION for m in ms):
                continue
            if start <= max((m.deadline or 0) for m in ms) <= end:
                due.add((rid, bid))
        if not due:
            return {}
        latest = {leaf.record_id: leaf for leaf in s.scalars(select(PromiseLeafRow).where(
            PromiseLeafRow.record_id.in_({rid for rid, _ in due})))}
        out: dict[int, Current] = {}
        for (rid, bid) in due:
            row = latest.get(rid)
            if row is not None and row.batch_id == bid:  # not since published again
                out[rid] = Current(rid, self._stored(s, bid), row.position)
        return out

    def _extend(self, s: Session, current: Current, now: int, reason: str,
                margin: float) -> None:
        promise = current.promise
        ext, deadline = self._extension(promise, now, reason, margin)
        s.add(PromiseMarkRow(record_id=current.record_id, batch_id=current.stored.row_id,
                             kind=EXTENSION, deadline=deadline, document=ext.model_dump_json()))
        _tell(s, current.issuer, promise, ext)

    def _extension(self, promise: Promise, now: int, reason: str,
                   margin: float) -> tuple[Extension, int]:
        deadline = now + promise.merge_delay + int(margin)
        return sign(Extension, self.key, self.member_id, chain=self.chain,
                    promise=promise.promise_id, digest=promise.digest, extended_at=now,
                    deadline=deadline, reason=reason), deadline

    def _extend_v1(self, s: Session, now: int, anchored: int, reason: str,
                   margin: float) -> int:
        """:meth:`extend_due` for the promises of version 1 (a row each, deadline indexed)."""
        rows = s.scalars(
            select(PromiseRow).join(Record, Record.digest == PromiseRow.digest)
            .where(PromiseRow.rejection.is_(None), PromiseRow.deadline >= now,
                   PromiseRow.deadline <= now + margin, Record.rejected_at.is_(None),
                   or_(Record.leaf_index.is_(None), Record.leaf_index >= anchored))
            .order_by(PromiseRow.id)).all()
        count = 0
        for row in rows:
            if _latest_row(s, row.digest) is not row or s.scalar(
                    select(PromiseLeafRow.record_id).join(Record, Record.id ==
                                                          PromiseLeafRow.record_id)
                    .where(Record.digest == row.digest)) is not None:
                continue  # a later promise (of either version) is the one in force
            promise = self._promise(row)
            ext, deadline = self._extension(promise, now, reason, margin)
            s.add(PromiseExtensionRow(promise_row=row.id, extended_at=now, deadline=deadline,
                                      reason=reason, document=ext.model_dump_json()))
            row.deadline = deadline
            _tell(s, row.issuer, promise, ext)
            count += 1
        return count

    def on_cycle_failed(self, db: Database, exc: ClaimxError, *, margin: float) -> None:
        """The anchor worker's hook: an unavailable chain extends the promises about to
        fall due; other failures (the exchange's own) extend nothing."""
        if not isinstance(exc, ChainUnavailableError):
            return
        try:
            self.extend_due(db, CHAIN_UNAVAILABLE, margin=margin)
        except Exception:  # the worker's loop must go on; the next failure tries again
            log.exception("could not extend open promises")

    def bundle(self, s: Session, digest: bytes, cache: NodeCache | None = None,
               now: float | None = None) -> PromiseBundle:
        """The digest's latest promise with its extensions and outcome (inclusion proof or
        signed rejection) and the exchange's view of its state (at ``now``, default this
        desk's clock); 404 without a promise."""
        promise, extensions, rejection = self._latest(s, digest)
        proof = _inclusion_or_none(s, digest, cache)
        decision = decide(promise, extensions, now=int(self.clock() if now is None else now),
                          included_at=proof.anchored_in.block_time if proof else None,
                          rejection=rejection)
        return PromiseBundle(promise=promise, extensions=extensions, state=decision.state,
                             deadline=decision.deadline, inclusion=proof, rejection=rejection)

    def _latest(self, s: Session,
                digest: bytes) -> tuple[Promise, list[Extension], Rejection | None]:
        """The digest's latest promise (of either version), its extensions and rejection."""
        rid = s.scalar(select(Record.id).where(Record.digest == digest))
        current = None if rid is None else self._current(s, rid)
        if current is not None:
            marks = s.scalars(select(PromiseMarkRow).where(
                PromiseMarkRow.record_id == rid, PromiseMarkRow.batch_id == current.stored.row_id)
                .order_by(PromiseMarkRow.id)).all()
            return (current.promise,
                    [Extension.model_validate_json(m.document) for m in marks
                     if m.kind == EXTENSION],
                    next((Rejection.model_validate_json(m.document) for m in marks
                          if m.kind == REJECTION), None))
        row = _latest_row(s, digest)
        if row is None:
            raise NotFoundError("no acceptance promise for this digest (not published here, "
                                "or published before promises existed)",
                                code="promise_not_found")
        extensions = [Extension.model_validate_json(d) for d in s.scalars(
            select(PromiseExtensionRow.document)
            .where(PromiseExtensionRow.promise_row == row.id).order_by(PromiseExtensionRow.id))]
        return (self._promise(row), extensions,
                None if row.rejection is None else Rejection.model_validate_json(row.rejection))


def _tell(s: Session, issuer: bytes, promise: Promise, ext: Extension) -> None:
    """The publisher is told of an extension (a ``promise.extended`` event)."""
    emit(s, issuer, "promise.extended",
         {"digest": promise.digest, "promise": promise.promise_id, "deadline": ext.deadline,
          "reason": ext.reason, "extension": ext.model_dump(mode="json")})


def _pack(record_ids: Sequence[int], numbers: Sequence[int]) -> bytes:
    """A batch's leaves as stored (PromiseBatchRow.leaves): the record ids as differences
    (mostly 1: a call's records are inserted together) and the key numbers (mostly 0),
    little-endian int64s, zlib-compressed: a few bytes per ten thousand records."""
    values = array("q", [record_ids[0]] if record_ids else [])
    values.extend(b - a for a, b in zip(record_ids, record_ids[1:], strict=False))
    values.extend(numbers)
    if sys.byteorder == "big":
        values.byteswap()
    return zlib.compress(values.tobytes())


def _unpack(raw: bytes, size: int) -> tuple[list[int], list[int]]:
    values = array("q")
    values.frombytes(zlib.decompress(raw))
    if sys.byteorder == "big":
        values.byteswap()
    if len(values) != 2 * size:
        raise ValueError(f"a promise batch of {size} leaves stores {len(values)} values")
    ids, rid = [], 0
    for i, step in enumerate(values[:size]):
        rid = step if i == 0 else rid + step
        ids.append(rid)
    return ids, list(values[size:])


def _latest_row(s: Session, digest: bytes) -> PromiseRow | None:
    return s.scalar(select(PromiseRow).where(PromiseRow.digest == digest)
                    .order_by(PromiseRow.id.desc()).limit(1))


def _inclusion_or_none(s: Session, digest: bytes, cache: NodeCache | None) -> Inclusion | None:
    rec = s.scalar(select(Record).where(Record.digest == digest))
    if rec is None:
        return None
    try:
        return inclusion(s, rec, cache)
    except ClaimxError:  # not yet logged or anchored, or rejected: no proof (yet)
        return None
