"""Entries the exchange itself appends to the evidence log: consents and payload reads.

They are ordinary claim packets issued by the exchange operator member and signed with its
registered key, so they are sequenced, anchored and verified exactly like institutional
evidence: who was allowed to see what, and who did, is provable later from the chain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.core.types import Digest, hex32
from gateway.services.publish import Checked, store_checked
from gateway.store.vault import Vault

OPERATOR_SLUG = "exchange.operator"


class Ledger:
    def __init__(self, key: SigningKey, member_id: bytes, vault: Vault) -> None:
        self.key, self.member_id, self.vault = key, member_id, vault

    def append(self, s: Session, kind: str, subject: str, body: dict[str, Any]) -> Digest:
        """Sign and store one exchange entry in the caller's transaction; returns its digest."""
        packet = new_packet(kind=kind, issuer=hex32(self.member_id), subject=subject, body=body)
        env = sign_packet(packet, self.key)
        store_checked(s, self.vault, [Checked(env, packet, env.digest, self.key.key_id)])
        return env.digest
