"""Keys re-checked at logging time: a record is appended only if its key is still valid.

Publishing checks a key through a short cache (gateway.services.publish.KeyCache), so a
record signed in the seconds after its key's revocation, or its member's suspension, can be
accepted. Before the anchor worker appends a batch it asks the registry once per distinct
(issuer, key id) for the status at the chain's current time; a record whose key is no longer
valid is never appended: it is marked ``rejected`` with a code, and its publisher (and any
insurer whose claim it had attached to) is told with a ``record.rejected`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from gateway.core.types import hex32
from gateway.services.publish import KeyDirectory
from gateway.store.db import Database
from gateway.store.events import emit
from gateway.store.tables import Claim, ClaimRecord, Record, utcnow

REJECT_CODES = {"revoked": "key_revoked", "member_suspended": "member_suspended",
                "unknown_key": "key_unknown", "unknown_member": "member_unknown",
                "not_yet_valid": "key_not_yet_valid"}
"""Registry status (gateway.chain.models.KEY_STATUS) -> the record's ``reject_code``."""


@dataclass(frozen=True)
class Screened:
    """The pending records whose keys are valid now (to sequence), and those rejected."""

    valid_ids: list[int]
    rejected: dict[int, str]


def check_pending(db: Database, directory: KeyDirectory, now: int, limit: int, *,
                  urgent_only: bool = False) -> Screened:
    """Ask the registry about the keys of the next ``limit`` pending records (one call per
    distinct key), outside any write transaction: chain calls never hold a database lock.
    With ``urgent_only``, the next urgent ones (the anchor worker's green-channel lane)."""
    waiting: list[ColumnElement[bool]] = [Record.leaf_index.is_(None),
                                          Record.rejected_at.is_(None)]
    if urgent_only:
        waiting.append(Record.urgent.is_(True))
    with db.session() as s:
        rows = s.execute(select(Record.id, Record.issuer, Record.key_id).where(*waiting)
                         .order_by(Record.id).limit(limit)).all()
    status = {(issuer, key_id): directory.key_status_at(issuer, key_id, now).status
              for issuer, key_id in {(r.issuer, r.key_id) for r in rows}}
    valid: list[int] = []
    rejected: dict[int, str] = {}
    for r in rows:
        st = status[(r.issuer, r.key_id)]
        if st == "valid":
            valid.append(r.id)
        else:
            rejected[r.id] = REJECT_CODES.get(st, f"key_{st}")
    return Screened(valid, rejected)


def mark_rejected(s: Session, rejected: dict[int, str],
                  on_rejected: Callable[[Session, Record], None] | None = None) -> None:
    """Mark the records rejected and tell their publishers and claims, in the caller's
    transaction (the one that sequences the valid records)."""
    if not rejected:
        return
    now = utcnow()
    for rec in s.scalars(select(Record).where(Record.id.in_(rejected),
                                              Record.leaf_index.is_(None))).all():
        rec.rejected_at, rec.reject_code = now, rejected[rec.id]
        data = {"digest": rec.digest.hex(), "code": rec.reject_code, "kind": rec.kind,
                "key_id": hex32(rec.key_id)}
        emit(s, rec.issuer, "record.rejected", data)
        for claim_id, insurer in s.execute(
                select(Claim.id, Claim.insurer).join(ClaimRecord,
                                                     ClaimRecord.claim_id == Claim.id)
                .where(ClaimRecord.record_id == rec.id)).all():
            emit(s, insurer, "record.rejected", data, claim_id)
        if on_rejected is not None:
            on_rejected(s, rec)
