"""The plain values the chain answers with: tree heads, key states, members, revocations.

No web3 here: services and verifiers type against these without loading the chain client.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.types import KeyAlgorithm, MemberId, Role

KEY_STATUS = ("valid", "unknown_member", "member_suspended", "unknown_key", "not_yet_valid",
              "revoked")
"""``KeyStatus`` of contracts/Common.sol, by value, as stable lowercase names."""


@dataclass(frozen=True)
class TreeHead:
    """An anchored tree head: the log's root at ``size`` leaves, with its block time."""

    index: int
    size: int
    root: bytes
    timestamp: int
    block_number: int


@dataclass(frozen=True)
class KeyState:
    """The registry's answer to "was this key of this member valid at that time"."""

    status: str
    algorithm: KeyAlgorithm
    public_key: bytes

    @property
    def valid(self) -> bool:
        return self.status == "valid"


@dataclass(frozen=True)
class AnchorResult:
    tx_hash: bytes
    block_number: int
    gas_used: int
    head: TreeHead


@dataclass(frozen=True)
class Revocation:
    reason: int
    timestamp: int


@dataclass(frozen=True)
class MemberInfo:
    member_id: MemberId
    role: Role
    name: str
    admitted_at: int
    suspended_at: int
    """Block time the current suspension began; 0 while the member is active."""

    @property
    def active(self) -> bool:
        return self.suspended_at == 0
