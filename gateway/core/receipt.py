"""Portable receipts: one JSON file that lets anyone verify a record against the chain alone.

A receipt holds the signed envelope, the record's leaf index, an inclusion proof against
an anchored tree head, the head that first included the record (its block time is when
the key must have been valid) and the anchoring transactions. Nothing in it is trusted by
``claimx verify`` except as a claim to check against chain state. This module is the wire
model only; :mod:`gateway.services.receipts` builds receipts from the database.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.core.errors import from_validation

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


class Inclusion(BaseModel):
    """Where a record sits in the anchored log, without its payload."""

    digest: str
    leaf_index: int
    tree_head: AnchorRef
    inclusion_proof: list[str]
    anchored_in: AnchorRef
