"""Receipts and inclusion proofs built from the database (the wire models are in
:mod:`gateway.core.receipt`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import NotFoundError
from gateway.core.receipt import ChainRef, Inclusion, Receipt
from gateway.services.records import anchor_ref, first_anchor, latest_anchor
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Record


def inclusion(s: Session, rec: Record, cache: NodeCache | None = None) -> Inclusion:
    """Inclusion proof against the latest anchored head; 404 until the record is anchored."""
    if rec.leaf_index is None:
        raise NotFoundError("record accepted but not yet in the log; retry shortly",
                            code="not_yet_logged")
    latest, first = latest_anchor(s), first_anchor(s, rec.leaf_index)
    if latest is None or first is None:
        raise NotFoundError("record logged but not yet anchored on chain; retry shortly",
                            code="not_yet_anchored")
    proof = EvidenceLogDB(s, cache).inclusion_proof(rec.leaf_index, latest.size)
    return Inclusion(digest=rec.digest.hex(), leaf_index=rec.leaf_index,
                     tree_head=anchor_ref(latest), inclusion_proof=[p.hex() for p in proof],
                     anchored_in=anchor_ref(first))


def build_receipt(s: Session, digest: bytes, chain: ChainRef, envelope: dict[str, Any],
                  cache: NodeCache | None = None) -> Receipt:
    """Receipt for a stored record (its envelope already read by the caller)."""
    rec = s.scalar(select(Record).where(Record.digest == digest))
    if rec is None:
        raise NotFoundError("no record with this digest", code="record_not_found")
    inc = inclusion(s, rec, cache)
    return Receipt(digest=inc.digest, envelope=envelope, leaf_index=inc.leaf_index,
                   tree_head=inc.tree_head, inclusion_proof=inc.inclusion_proof,
                   anchored_in=inc.anchored_in, chain=chain)
