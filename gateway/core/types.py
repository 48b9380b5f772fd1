"""Identifier types and enums shared by the gateway, the contracts and the adapters.

``NewType`` keeps a record digest from being confused with a key id or a member id even
though all three are 32 bytes.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import IntEnum
from typing import NewType

Digest = NewType("Digest", bytes)
"""SHA-256 of a packet's canonical (RFC 8785) bytes."""
MemberId = NewType("MemberId", bytes)
"""bytes32 id of a consortium member (institution)."""
KeyId = NewType("KeyId", bytes)
"""bytes32 id of a signing key: SHA-256 of its SubjectPublicKeyInfo DER."""
Hash32 = NewType("Hash32", bytes)
"""A Merkle tree node or root hash."""


class Role(IntEnum):
    """Member roles; values match the ``Role`` enum in contracts/Common.sol."""

    NONE = 0
    HOSPITAL = 1
    POLICE = 2
    INSURER = 3
    AUDITOR = 4
    OPERATOR = 5
    CIVIL = 6


class KeyAlgorithm(IntEnum):
    """Signing algorithms; values match ``KeyAlgorithm`` in contracts/Common.sol."""

    NONE = 0
    ED25519 = 1
    ECDSA_P256 = 2


def member_id(slug: str) -> MemberId:
    """Derive a member's bytes32 id from its consortium slug, e.g. ``hospital.ruijin``."""
    return MemberId(hashlib.sha256(b"claimx.member:" + slug.encode()).digest())


def hex32(value: bytes) -> str:
    """``0x``-prefixed hex of a 32-byte identifier."""
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return "0x" + value.hex()


def as_utc(moment: datetime) -> datetime:
    """The same instant, timezone-aware in UTC; a naive datetime is taken to be UTC already
    (how SQLite hands stored timestamps back). The one place timezones are fixed up."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_hex32(text: str, what: str = "value") -> bytes:
    """Parse a ``0x``-prefixed (or bare) 64-hex-digit identifier, raising ValueError."""
    raw = text[2:] if text.startswith(("0x", "0X")) else text
    if len(raw) != 64:
        raise ValueError(f"{what} must be 32 bytes as 64 hex digits, got {len(raw)} digits")
    try:
        return bytes.fromhex(raw)
    except ValueError as exc:
        raise ValueError(f"{what} is not hexadecimal") from exc
