"""Portable receipts: one JSON file that lets anyone verify a record against the chain alone.

A receipt holds the signed envelope, the record's leaf index, an inclusion proof against
an anchored tree head, the head that first included the record (its block time is when
the key must have been valid) and the anchoring transactions. Nothing in it is trusted by
``claimx verify`` except as a claim to check against chain state.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import NotFoundError, from_validation
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Anchor, Record

RECEIPT_VERSION = "claimx.receipt/1"
_HEX32 = r"^[0-9a-f]{64}$"


class AnchorRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    head_index: int = Field(ge=0)
    size: int = Field(ge=1)
    root: str = Field(pattern=_HEX32)
    tx_hash: str = Field(pattern=_HEX32)
    block_number: int = Field(ge=0)
    block_time: int = Field(ge=0)


class ChainRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chain_id: int
    evidence_log: str
    registry: str


class Receipt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(RECEIPT_VERSION, pattern=r"^claimx\.receipt/1$")
    digest: str = Field(pattern=_HEX32)
    envelope: dict[str, Any]
    leaf_index: int = Field(ge=0)
    tree_head: AnchorRef
    """The head the inclusion proof is against (the latest when the receipt was written)."""
    inclusion_proof: list[str] = Field(max_length=64)
    anchored_in: AnchorRef
    """The first head that included the record."""
    chain: ChainRef

    @classmethod
    def from_json(cls, raw: bytes | str) -> Receipt:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise from_validation(exc, "receipt", "invalid_receipt") from exc

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def _anchor_ref(a: Anchor) -> AnchorRef:
    return AnchorRef(head_index=a.head_index, size=a.size, root=a.root.hex(),
                     tx_hash=a.tx_hash.hex(), block_number=a.block_number,
                     block_time=a.block_time)


class Inclusion(BaseModel):
    """Where a record sits in the anchored log, without its payload."""

    digest: str
    leaf_index: int
    tree_head: AnchorRef
    inclusion_proof: list[str]
    anchored_in: AnchorRef


def inclusion(s: Session, rec: Record, cache: NodeCache | None = None) -> Inclusion:
    """Inclusion proof against the latest anchored head; 404 until the record is anchored."""
    if rec.leaf_index is None:
        raise NotFoundError("record accepted but not yet in the log; retry shortly",
                            code="not_yet_logged")
    latest = s.scalar(select(Anchor).order_by(Anchor.size.desc()).limit(1))
    first = s.scalar(select(Anchor).where(Anchor.size > rec.leaf_index)
                     .order_by(Anchor.size).limit(1))
    if latest is None or first is None:
        raise NotFoundError("record logged but not yet anchored on chain; retry shortly",
                            code="not_yet_anchored")
    proof = EvidenceLogDB(s, cache).inclusion_proof(rec.leaf_index, latest.size)
    return Inclusion(digest=rec.digest.hex(), leaf_index=rec.leaf_index,
                     tree_head=_anchor_ref(latest), inclusion_proof=[p.hex() for p in proof],
                     anchored_in=_anchor_ref(first))


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
