"""The exchange's acceptance promises: issued at publish, extended while the chain is down,
ended by inclusion in an anchored head or by a signed rejection (models and rules in
:mod:`gateway.core.promise`).

Issuing happens in the publish transaction (one promise per acceptance; a duplicate gets
the promise already given). The anchor worker calls :meth:`PromiseDesk.extend_due` when a
cycle fails because the chain is unavailable, and the logging-time key check calls
:meth:`PromiseDesk.reject` for each record it rejects. Every document is signed with the
exchange operator's registered key, the one its ledger entries use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from sqlalchemy import Table, func, insert, or_, select
from sqlalchemy.orm import Session

from gateway.core.errors import ChainUnavailableError, ClaimxError, NotFoundError
from gateway.core.keys import SigningKey
from gateway.core.promise import (
    Extension,
    Promise,
    PromiseBundle,
    Rejection,
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
from gateway.store.tables import Anchor, PromiseExtensionRow, PromiseRow, Record

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

    # -- issuing -------------------------------------------------------------------------

    def issue(self, s: Session, checked: Sequence[Checked],
              results: Sequence[Accepted]) -> list[Accepted]:
        """``results`` with their promises: a new one per acceptance (a rejected record
        published again included), the one already given for a duplicate. One query for
        the duplicates and one multi-row insert, whatever the batch size."""
        dups = [a.digest for a in results if a.duplicate]
        given = _latest_promises(s, dups) if dups else {}
        now = int(self.clock())
        rows: list[dict[str, object]] = []
        out: list[Accepted] = []
        for c, a in zip(checked, results, strict=True):
            promise = given.get(a.digest)
            if promise is None:
                promise = given[a.digest] = self._new(c, now)
                rows.append({"promise_id": bytes.fromhex(promise.promise_id),
                             "digest": a.digest, "issuer": parse_hex32(promise.issuer),
                             "deadline": promise.deadline,
                             "document": promise.model_dump_json()})
            out.append(replace(a, promise=promise))
        if rows:
            s.execute(insert(cast(Table, PromiseRow.__table__)), rows)
        return out

    def _new(self, c: Checked, now: int) -> Promise:
        urgent = c.packet.is_urgent
        return sign(Promise, self.key, self.member_id, chain=self.chain,
                    digest=c.digest.hex(), issuer=hex32(parse_hex32(c.packet.issuer)),
                    key_id=hex32(c.key_id), urgent=urgent, accepted_at=now,
                    merge_delay=self.terms.urgent_merge_delay if urgent
                    else self.terms.merge_delay)

    # -- ending in a rejection -----------------------------------------------------------

    def reject(self, s: Session, rec: Record) -> None:
        """Sign the rejection that ends the open promise of ``rec`` (rejected at logging)."""
        row = _latest_row(s, rec.digest)
        if row is None or row.rejection is not None:
            return
        promise = Promise.model_validate_json(row.document)
        now = int(self.clock())
        checked_at = self.chain_time.last if self.chain_time and self.chain_time.last else now
        rejection = sign(Rejection, self.key, self.member_id, chain=self.chain,
                         promise=promise.promise_id, digest=promise.digest, rejected_at=now,
                         checked_at=checked_at, code=rec.reject_code or "rejected")
        row.rejection = rejection.model_dump_json()

    # -- extending while the chain is down -----------------------------------------------

    def extend_due(self, db: Database, reason: str, *, margin: float) -> int:
        """Extend every open promise whose deadline falls within ``margin`` seconds (and has
        not passed: a missed deadline cannot be mended) to ``margin`` plus its own merge
        delay from now; each extension is signed and told to the publisher as a
        ``promise.extended`` event. Returns how many were extended."""
        now = int(self.clock())
        count = 0
        with db.session() as s:
            anchored = s.scalar(select(func.max(Anchor.size))) or 0
            rows = s.scalars(
                select(PromiseRow).join(Record, Record.digest == PromiseRow.digest)
                .where(PromiseRow.rejection.is_(None), PromiseRow.deadline >= now,
                       PromiseRow.deadline <= now + margin, Record.rejected_at.is_(None),
                       or_(Record.leaf_index.is_(None), Record.leaf_index >= anchored))
                .order_by(PromiseRow.id)).all()
            for row in rows:
                if _latest_row(s, row.digest) is not row:
                    continue
                self._extend(s, row, now, reason, margin)
                count += 1
        if count:
            log.warning("extended %d open promise(s): %s", count, reason)
        return count

    def _extend(self, s: Session, row: PromiseRow, now: int, reason: str,
                margin: float) -> None:
        promise = Promise.model_validate_json(row.document)
        deadline = now + promise.merge_delay + int(margin)
        ext = sign(Extension, self.key, self.member_id, chain=self.chain,
                   promise=promise.promise_id, digest=promise.digest, extended_at=now,
                   deadline=deadline, reason=reason)
        s.add(PromiseExtensionRow(promise_row=row.id, extended_at=now, deadline=deadline,
                                  reason=reason, document=ext.model_dump_json()))
        row.deadline = deadline
        emit(s, row.issuer, "promise.extended",
             {"digest": promise.digest, "promise": promise.promise_id, "deadline": deadline,
              "reason": reason, "extension": ext.model_dump(mode="json")})

    def on_cycle_failed(self, db: Database, exc: ClaimxError, *, margin: float) -> None:
        """The anchor worker's hook: an unavailable chain extends the promises about to
        fall due; other failures (the exchange's own) extend nothing."""
        if not isinstance(exc, ChainUnavailableError):
            return
        try:
            self.extend_due(db, CHAIN_UNAVAILABLE, margin=margin)
        except Exception:  # the worker's loop must go on; the next failure tries again
            log.exception("could not extend open promises")


def latest_promise(s: Session, digest: bytes) -> Promise | None:
    row = _latest_row(s, digest)
    return None if row is None else Promise.model_validate_json(row.document)


def _latest_promises(s: Session, digests: Sequence[bytes]) -> dict[bytes, Promise]:
    """The latest promise of each digest that has one."""
    latest: dict[bytes, tuple[int, str]] = {}
    for rid, digest, doc in s.execute(select(PromiseRow.id, PromiseRow.digest,
                                             PromiseRow.document)
                                      .where(PromiseRow.digest.in_(set(digests)))):
        if digest not in latest or rid > latest[digest][0]:
            latest[digest] = (rid, doc)
    return {d: Promise.model_validate_json(doc) for d, (_, doc) in latest.items()}


def _latest_row(s: Session, digest: bytes) -> PromiseRow | None:
    return s.scalar(select(PromiseRow).where(PromiseRow.digest == digest)
                    .order_by(PromiseRow.id.desc()).limit(1))


def promise_bundle(s: Session, digest: bytes, cache: NodeCache | None = None,
                   now: float | None = None) -> PromiseBundle:
    """The digest's latest promise with its extensions and outcome (inclusion proof or
    signed rejection) and the exchange's view of its state; 404 without a promise."""
    row = _latest_row(s, digest)
    if row is None:
        raise NotFoundError("no acceptance promise for this digest (not published here, or "
                            "published before promises existed)", code="promise_not_found")
    promise = Promise.model_validate_json(row.document)
    extensions = [Extension.model_validate_json(d) for d in s.scalars(
        select(PromiseExtensionRow.document).where(PromiseExtensionRow.promise_row == row.id)
        .order_by(PromiseExtensionRow.id))]
    rejection = None if row.rejection is None else Rejection.model_validate_json(row.rejection)
    proof = _inclusion_or_none(s, digest, cache)
    decision = decide(promise, extensions, now=int(time.time() if now is None else now),
                      included_at=proof.anchored_in.block_time if proof else None,
                      rejection=rejection)
    return PromiseBundle(promise=promise, extensions=extensions, state=decision.state,
                         deadline=decision.deadline, inclusion=proof, rejection=rejection)


def _inclusion_or_none(s: Session, digest: bytes, cache: NodeCache | None) -> Inclusion | None:
    rec = s.scalar(select(Record).where(Record.digest == digest))
    if rec is None:
        return None
    try:
        return inclusion(s, rec, cache)
    except ClaimxError:  # not yet logged or anchored, or rejected: no proof (yet)
        return None
