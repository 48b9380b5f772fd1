"""Records and the log as members read them: metadata and status, tree heads, consistency
proofs, erasure and the access log, with who may erase and who may read the access log.

A record is ``accepted`` when stored, ``logged`` once it has a leaf in the Merkle log,
``anchored`` once a tree head anchored on chain covers that leaf, and ``rejected`` when its
key was no longer valid at logging time (:func:`record_status`,
the one place that rule is written).
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import ForbiddenError, InputError
from gateway.core.receipt import AnchorRef, ChainRef
from gateway.core.types import Role, hex32
from gateway.services.access import access_entries
from gateway.services.auth import Caller
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Anchor, Record
from gateway.store.vault import erase

RecordStatus = Literal["accepted", "logged", "anchored", "rejected"]


def record_status(leaf_index: int | None, anchored_size: int,
                  rejected: bool = False) -> RecordStatus:
    """``anchored_size`` is the size of the latest tree head anchored on chain (0 if none):
    a head of size n covers leaves 0 … n-1. ``rejected``: the key was found no longer valid
    when the record was to be logged, so it never will be (gateway.services.logcheck)."""
    if leaf_index is None:
        return "rejected" if rejected else "accepted"
    return "anchored" if leaf_index < anchored_size else "logged"


def anchor_ref(a: Anchor) -> AnchorRef:
    return AnchorRef(head_index=a.head_index, size=a.size, root=a.root.hex(),
                     tx_hash=a.tx_hash.hex(), block_number=a.block_number,
                     block_time=a.block_time)


def latest_anchor(s: Session) -> Anchor | None:
    """The latest confirmed tree head: anchors not yet confirmed, or lost by the chain and
    waiting to be anchored again (gateway.services.reconcile), are never cited."""
    return s.scalar(select(Anchor).where(Anchor.confirmed).order_by(Anchor.size.desc())
                    .limit(1))


def anchored_size(s: Session) -> int:
    """The size of the latest confirmed tree head, 0 before the first."""
    return s.scalar(select(Anchor.size).where(Anchor.confirmed)
                    .order_by(Anchor.size.desc()).limit(1)) or 0


def first_anchor(s: Session, leaf_index: int) -> Anchor | None:
    """The first confirmed head that includes the leaf (None while none does)."""
    return s.scalar(select(Anchor).where(Anchor.size > leaf_index, Anchor.confirmed)
                    .order_by(Anchor.size).limit(1))


def metadata(s: Session, rec: Record) -> dict[str, Any]:
    """A record's metadata and status, and the head that first anchored it; no payload."""
    status = record_status(rec.leaf_index, anchored_size(s), rec.rejected_at is not None)
    anchor = first_anchor(s, rec.leaf_index) \
        if status == "anchored" and rec.leaf_index is not None else None
    return {
        "digest": rec.digest.hex(), "status": status, "kind": rec.kind,
        "issuer": hex32(rec.issuer), "issued_at": rec.issued_at,
        "accepted_at": rec.accepted_at.isoformat(), "urgent": rec.urgent,
        "leaf_index": rec.leaf_index, "erased": rec.erased_at is not None,
        "reject_code": rec.reject_code,
        "anchored_in": None if anchor is None else {
            "head_index": anchor.head_index, "size": anchor.size,
            "tx_hash": anchor.tx_hash.hex(), "block_number": anchor.block_number},
    }


def log_head(s: Session, cache: NodeCache, chain: ChainRef) -> dict[str, Any]:
    """The latest tree head anchored on chain, and the local log size."""
    latest = latest_anchor(s)
    return {"log_size": EvidenceLogDB(s, cache).size(),
            "anchored": None if latest is None else anchor_ref(latest), "chain": chain}


LEAVES_MAX = 1000
"""Most leaves one ``GET /v1/log/leaves`` page returns."""


def log_leaves(s: Session, cache: NodeCache, start: int, limit: int) -> dict[str, Any]:
    """Leaves ``[start, start + limit)`` of the log: index, digest, issuer, key id and kind.

    What a monitor needs to see every entry made in its name (and to recompute the anchored
    roots from the digests, so that no leaf can be left out of the listing); never a subject,
    a payload or anything else about a person.
    """
    size = EvidenceLogDB(s, cache).size()
    end = min(size, start + min(limit, LEAVES_MAX))
    rows = s.execute(select(Record.leaf_index, Record.digest, Record.issuer, Record.key_id,
                            Record.kind)
                     .where(Record.leaf_index >= start, Record.leaf_index < end)
                     .order_by(Record.leaf_index)).all()
    return {"log_size": size, "start": start,
            "leaves": [{"index": r.leaf_index, "digest": r.digest.hex(),
                        "issuer": hex32(r.issuer), "key_id": hex32(r.key_id), "kind": r.kind}
                       for r in rows]}


def consistency(s: Session, cache: NodeCache, first: int, second: int) -> dict[str, Any]:
    """RFC 9162 consistency proof between two sizes of the log; 422 unless
    0 <= first <= second <= log size."""
    logdb = EvidenceLogDB(s, cache)
    if not first <= second <= logdb.size():
        raise InputError(f"need 0 <= first <= second <= log size {logdb.size()}",
                         code="bad_sizes")
    return {"first": first, "second": second,
            "root1": logdb.root(first).hex(), "root2": logdb.root(second).hex(),
            "proof": [p.hex() for p in logdb.consistency_proof(first, second)]}


def erase_record(s: Session, caller: Caller, rec: Record) -> dict[str, Any]:
    """Destroy the payload's key, by the record's issuer or the operator; the digest and its
    proofs stay."""
    if caller.member_id != rec.issuer and caller.role != Role.OPERATOR:
        raise ForbiddenError("only the record's issuer or the exchange operator may erase it",
                             code="erase_forbidden")
    erase(s, rec)
    return {"digest": rec.digest.hex(), "erased": True}


def access_log(s: Session, caller: Caller, rec: Record) -> dict[str, Any]:
    """Every payload read of the record: for auditors, the operator and the issuer."""
    if caller.role not in (Role.AUDITOR, Role.OPERATOR) and caller.member_id != rec.issuer:
        raise ForbiddenError("access logs are for auditors, the operator and the issuer",
                             code="role_forbidden")
    return {"digest": rec.digest.hex(), "reads": access_entries(s, rec.digest)}
