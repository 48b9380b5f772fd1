"""Typed wrappers of the two claimx contracts (their values are in gateway.chain.models).

Split from :mod:`gateway.chain.client` (which re-exports everything here) so that module holds the
connection and transaction plumbing and this one the contract surfaces: MemberRegistry
(members, operators, keys and the one validity question) and EvidenceLog (tree heads,
append-only anchoring, record revocations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from gateway.chain.errors import as_chain_error
from gateway.chain.models import (
    KEY_STATUS,
    AnchorResult,
    KeyState,
    MemberInfo,
    Revocation,
    TreeHead,
)
from gateway.core.errors import ChainError
from gateway.core.keys import SigningKey
from gateway.core.possession import prove_possession
from gateway.core.types import KeyAlgorithm, MemberId, Role

if TYPE_CHECKING:
    from gateway.chain.client import Chain

ANCHOR_GAS_LIMIT = 500_000
"""Fixed gas limit of ``EvidenceLog.anchor``: no estimate per anchor (the green channel's
latency). A later anchor costs about 85,000 gas plus about 1,700 per consistency-proof hash;
at 128 hashes (more than a uint64 log needs) that is about 300,000, so this keeps a margin of
1.5 (tests/chain/test_anchor_gas.py measures it). Gas is paid as used, not as limited."""


class Governor(Protocol):
    """Something that can make the council send a registry call (a k-of-n Safe's signers)."""

    def execute(self, call: Any) -> Any:
        """Have the council send ``call``; returns the transaction receipt."""


class Registry:
    """Typed wrapper of MemberRegistry.

    Council calls (admit, suspend, reinstate, emergency revocation, operator recovery) without
    an explicit ``sender`` go through ``council`` when one is attached (a development council
    whose keys this process holds), else from the chain's default sender (test deployments
    governed by one account). Key registration is sent by the member's own operator account.
    """

    def __init__(self, chain: Chain, contract: Contract, council: Governor | None = None) -> None:
        self.chain, self.c = chain, contract
        self.address = str(contract.address)
        self.council = council

    def _govern(self, call: Any, sender: str | None) -> Any:
        if sender is None and self.council is not None:
            return self.council.execute(call)
        return self.chain.transact(call, sender)

    def admit_member(self, member_id: bytes, role: Role, name: str, operators: list[str],
                     *, sender: str | None = None) -> None:
        self._govern(self.c.functions.admitMember(member_id, int(role), name, operators),
                     sender)

    def suspend_member(self, member_id: bytes, *, sender: str | None = None) -> None:
        self._govern(self.c.functions.suspendMember(member_id), sender)

    def reinstate_member(self, member_id: bytes, *, sender: str | None = None) -> None:
        self._govern(self.c.functions.reinstateMember(member_id), sender)

    def add_operator(self, member_id: bytes, account: str, *, sender: str | None = None) -> None:
        """By one of the member's operators (``sender``), or the council to recover it."""
        self._govern(self.c.functions.addOperator(member_id, account), sender)

    def remove_operator(self, member_id: bytes, account: str, *,
                        sender: str | None = None) -> None:
        self._govern(self.c.functions.removeOperator(member_id, account), sender)

    def add_key(self, member_id: bytes, key_id: bytes, algorithm: KeyAlgorithm,
                public_key: bytes, valid_from: int = 0, *, proof: bytes = b"",
                sender: str | None = None) -> None:
        """Register a key from the member's operator ``sender`` with its possession ``proof``."""
        self.chain.transact(self.c.functions.addKey(member_id, key_id, int(algorithm),
                                                     public_key, valid_from, proof), sender)

    def register_key(self, member_id: bytes, key: SigningKey, *, sender: str,
                     valid_from: int = 0) -> None:
        """Register ``key`` for ``member_id`` with a proof of possession made by ``key`` itself."""
        proof = prove_possession(key, member_id, self.chain.chain_id, self.address)
        self.add_key(member_id, key.key_id, key.algorithm, key.public.raw, valid_from,
                     proof=proof, sender=sender)

    def revoke_key(self, member_id: bytes, key_id: bytes, at: int = 0, *,
                   sender: str | None = None) -> None:
        """Revoke from ``at`` on (0 = now); backdate it to when a compromise began.

        Only the member's operator (``sender``) or the council (no ``sender``) may.
        """
        self._govern(self.c.functions.revokeKey(member_id, key_id, at), sender)

    def rotate_key(self, member_id: bytes, old_key_id: bytes, new_key_id: bytes,
                   algorithm: KeyAlgorithm, public_key: bytes, *, proof: bytes = b"",
                   sender: str | None = None) -> None:
        self.chain.transact(self.c.functions.rotateKey(member_id, old_key_id, new_key_id,
                                                        int(algorithm), public_key, proof),
                            sender)

    def rotate_to(self, member_id: bytes, old_key_id: bytes, key: SigningKey, *,
                  sender: str) -> None:
        """Rotate to ``key``, proving possession of it."""
        proof = prove_possession(key, member_id, self.chain.chain_id, self.address)
        self.rotate_key(member_id, old_key_id, key.key_id, key.algorithm, key.public.raw,
                        proof=proof, sender=sender)

    def proof_of(self, key_id: bytes) -> bytes:
        """The proof of possession stored with a key (reverts for unknown keys)."""
        return bytes(self.chain.call(self.c.functions.proofOf(key_id)))

    def is_council(self, account: str) -> bool:
        """Whether ``account`` holds the governing role (DEFAULT_ADMIN_ROLE)."""
        return bool(self.chain.call(self.c.functions.hasRole(b"\x00" * 32, account)))

    def key_status_at(self, member_id: bytes, key_id: bytes, at: int) -> KeyState:
        status, alg, pub = self.chain.call(self.c.functions.keyStatusAt(member_id, key_id, at))
        return KeyState(KEY_STATUS[status], KeyAlgorithm(alg), bytes(pub))

    def key_valid_from(self, key_id: bytes) -> int:
        """When a registered key became valid (reverts with MemberRegistryUnknownKey)."""
        return int(self.chain.call(self.c.functions.key(key_id))[2])

    def member(self, member_id: bytes) -> MemberInfo:
        role, admitted, suspended, name = self.chain.call(self.c.functions.member(member_id))
        return MemberInfo(MemberId(member_id), Role(role), name, admitted, suspended)

    def members(self) -> list[MemberInfo]:
        count = self.chain.call(self.c.functions.memberCount())
        return [self.member(bytes(self.chain.call(self.c.functions.memberAt(i))))
                for i in range(count)]

    def keys_of(self, member_id: bytes) -> list[bytes]:
        return [bytes(k) for k in self.chain.call(self.c.functions.keysOf(member_id))]

    def is_operator(self, member_id: bytes, account: str) -> bool:
        """Whether ``account`` (any letter case) is one of the member's operator accounts."""
        return bool(self.chain.call(self.c.functions.isOperator(
            member_id, Web3.to_checksum_address(account))))


class EvidenceLogClient:
    """Typed wrapper of EvidenceLog."""

    def __init__(self, chain: Chain, contract: Contract) -> None:
        self.chain, self.c = chain, contract
        self.address = str(contract.address)

    def registry_address(self) -> str:
        return str(self.chain.call(self.c.functions.registry()))

    def grant_anchorer(self, account: str, *, sender: str | None = None) -> None:
        role = self.chain.call(self.c.functions.ANCHOR_ROLE())
        self.chain.transact(self.c.functions.grantRole(role, account), sender)

    def anchor(self, size: int, root: bytes, proof: list[bytes], *,
               sender: str | None = None) -> AnchorResult:
        """Append a tree head; the consistency proof runs from the current head on chain."""
        receipt = self.chain.transact(self.c.functions.anchor(size, root, proof), sender,
                                      gas=ANCHOR_GAS_LIMIT)
        # the index comes from our own event, so a concurrent anchorer cannot confuse it
        events = [e for e in self.c.events.Anchored().process_receipt(receipt, errors=DISCARD)
                  if e["address"] == self.c.address]
        if len(events) != 1:
            raise ChainError(f"anchor transaction emitted {len(events)} Anchored events",
                             code="missing_event")
        args = events[0]["args"]  # the head as stored: the event's values and the block's time
        block = int(receipt["blockNumber"])
        try:
            timestamp = int(self.chain.w3.eth.get_block(block)["timestamp"])
        except Exception as exc:
            raise as_chain_error(exc, self.chain.decoder) from exc
        head = TreeHead(int(args["index"]), int(args["size"]), bytes(args["root"]), timestamp,
                        block)
        return AnchorResult(bytes(receipt["transactionHash"]), int(receipt["blockNumber"]),
                            int(receipt["gasUsed"]), head)

    def head_count(self) -> int:
        return int(self.chain.call(self.c.functions.headCount()))

    def head_at(self, index: int) -> TreeHead:
        root, size, ts, block = self.chain.call(self.c.functions.headAt(index))
        return TreeHead(index, size, bytes(root), ts, block)

    def latest_head(self) -> TreeHead | None:
        count = self.head_count()
        return self.head_at(count - 1) if count else None

    def head_index_of_size(self, size: int) -> int:
        return int(self.chain.call(self.c.functions.headIndexOfSize(size)))

    def anchor_tx_of(self, index: int) -> bytes:
        """Hash of the transaction that anchored head ``index`` (from the Anchored event)."""
        head = self.head_at(index)
        try:
            logs: Any = self.c.events.Anchored().get_logs(
                from_block=head.block_number, to_block=head.block_number,
                argument_filters={"index": index})
        except Exception as exc:
            raise as_chain_error(exc, self.chain.decoder) from exc
        if not logs:
            raise ChainError(f"no Anchored event for head {index} in block {head.block_number}",
                             code="missing_event")
        return bytes(logs[0]["transactionHash"])

    def revoke_record(self, member_id: bytes, digest: bytes, reason: int, *,
                      sender: str | None = None) -> None:
        """Revoke ``digest`` as issuer ``member_id``; ``sender`` must be its operator."""
        self.chain.transact(self.c.functions.revokeRecord(member_id, digest, reason), sender)

    def revocation_of(self, digest: bytes, member_id: bytes) -> Revocation | None:
        revoked, reason, at = self.chain.call(self.c.functions.revocationOf(digest, member_id))
        return Revocation(reason, at) if revoked else None

    def verify_consistency(self, size1: int, size2: int, root1: bytes, root2: bytes,
                           proof: list[bytes]) -> bool:
        """The contract's own RFC 9162 check (a pure call), for shared test vectors."""
        return bool(self.chain.call(self.c.functions.verifyConsistency(size1, size2, root1,
                                                                        root2, proof)))
