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

import base64
import hashlib
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
class Signed:
    """A promise just signed, with what its row stores: its id and the raw signature."""

    promise: Promise
    promise_id: bytes
    signature: bytes


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

    # -- issuing -------------------------------------------------------------------------

    def now(self) -> int:
        """Acceptance time for the promises signed now (the chain's clock, estimated)."""
        return int(self.clock())

    def promise_for(self, c: Checked, now: int) -> Signed:
        """The signed promise for one checked envelope accepted at ``now`` (thread-safe:
        the publisher signs a large batch's on its pool)."""
        urgent = c.packet.is_urgent
        unsigned = Promise(chain=self.chain, signer=self._signer, digest=c.digest.hex(),
                           issuer=hex32(parse_hex32(c.packet.issuer)), key_id=hex32(c.key_id),
                           urgent=urgent, accepted_at=now,
                           merge_delay=self.terms.urgent_merge_delay if urgent
                           else self.terms.merge_delay)
        message = unsigned.signing_bytes()
        sig = self.key.sign(message)
        return Signed(unsigned.model_copy(update={"signature": base64.b64encode(sig).decode()}),
                      hashlib.sha256(message).digest(), sig)

    def issue(self, s: Session, signed: Sequence[Signed],
              results: Sequence[Accepted]) -> list[Accepted]:
        """``results`` with their promises, in the storing transaction: ``signed`` (one per
        result, from :meth:`promise_for`) is stored and given for each acceptance (a
        rejected record published again included); a duplicate gets the promise already
        given instead. One query for the duplicates and one multi-row insert."""
        dups = [a.digest for a in results if a.duplicate]
        given = self._latest(s, dups) if dups else {}
        rows: list[dict[str, object]] = []
        out: list[Accepted] = []
        for fresh, a in zip(signed, results, strict=True):
            promise = given.get(a.digest)
            if promise is None:
                promise = given[a.digest] = fresh.promise
                rows.append(_row(fresh, a.digest))
            out.append(replace(a, promise=promise))
        if rows:
            s.execute(insert(cast(Table, PromiseRow.__table__)), rows)
        return out

    def _promise(self, row: PromiseRow) -> Promise:
        """The signed document a stored row stands for (its deployment is this one's)."""
        return Promise(chain=self.chain,
                       signer=Signer(member_id=hex32(row.signer), key_id=hex32(row.signer_key_id)),
                       signature=base64.b64encode(row.signature).decode(),
                       digest=row.digest.hex(), issuer=hex32(row.issuer), key_id=hex32(row.key_id),
                       urgent=row.urgent, accepted_at=row.accepted_at,
                       merge_delay=row.merge_delay)

    def _latest(self, s: Session, digests: Sequence[bytes]) -> dict[bytes, Promise]:
        """The latest promise of each digest that has one."""
        latest: dict[bytes, PromiseRow] = {}
        for row in s.scalars(select(PromiseRow).where(PromiseRow.digest.in_(set(digests)))):
            if row.digest not in latest or row.id > latest[row.digest].id:
                latest[row.digest] = row
        return {d: self._promise(row) for d, row in latest.items()}

    # -- ending in a rejection -----------------------------------------------------------

    def reject(self, s: Session, rec: Record) -> None:
        """Sign the rejection that ends the open promise of ``rec`` (rejected at logging)."""
        row = _latest_row(s, rec.digest)
        if row is None or row.rejection is not None:
            return
        promise = self._promise(row)
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
        promise = self._promise(row)
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

    def bundle(self, s: Session, digest: bytes, cache: NodeCache | None = None,
               now: float | None = None) -> PromiseBundle:
        """The digest's latest promise with its extensions and outcome (inclusion proof or
        signed rejection) and the exchange's view of its state (at ``now``, default this
        desk's clock); 404 without a promise."""
        row = _latest_row(s, digest)
        if row is None:
            raise NotFoundError("no acceptance promise for this digest (not published here, "
                                "or published before promises existed)",
                                code="promise_not_found")
        promise = self._promise(row)
        extensions = [Extension.model_validate_json(d) for d in s.scalars(
            select(PromiseExtensionRow.document)
            .where(PromiseExtensionRow.promise_row == row.id).order_by(PromiseExtensionRow.id))]
        rejection = (None if row.rejection is None
                     else Rejection.model_validate_json(row.rejection))
        proof = _inclusion_or_none(s, digest, cache)
        decision = decide(promise, extensions, now=int(self.clock() if now is None else now),
                          included_at=proof.anchored_in.block_time if proof else None,
                          rejection=rejection)
        return PromiseBundle(promise=promise, extensions=extensions, state=decision.state,
                             deadline=decision.deadline, inclusion=proof, rejection=rejection)


def _row(signed: Signed, digest: bytes) -> dict[str, object]:
    p = signed.promise
    return {"promise_id": signed.promise_id, "digest": digest, "issuer": parse_hex32(p.issuer),
            "key_id": parse_hex32(p.key_id), "urgent": p.urgent, "accepted_at": p.accepted_at,
            "merge_delay": p.merge_delay, "signer": parse_hex32(p.signer.member_id),
            "signer_key_id": parse_hex32(p.signer.key_id), "signature": signed.signature,
            "deadline": p.deadline}


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
