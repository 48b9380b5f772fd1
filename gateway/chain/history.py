"""What the registry's events say happened to one member, and who did it.

A monitor (``claimx monitor``) must not take the gateway's word for who registered a key or
changed an operator: the chain's event log says it. Every MemberRegistry event about a member
has the member id as its first indexed topic, so one ``eth_getLogs`` per block range finds
them all. An event emitted while the council's Safe executed a transaction is a council
action: its receipt also holds the Safe's ``ExecutionSuccess`` (the SafeTx hash) and, from
SafeL2, ``SafeMultiSigTransaction`` (the nonce and the owners' signatures, from which the
signing owners are recovered). The governing accounts are read from the registry's own
``RoleGranted`` events for ``DEFAULT_ADMIN_ROLE``, not from a deployment file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from eth_abi.abi import decode as abi_decode
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from web3 import Web3

from gateway.chain.errors import as_chain_error

if TYPE_CHECKING:
    from gateway.chain.contracts import Registry

ADMIN_ROLE = b"\x00" * 32
CHUNK_BLOCKS = 5_000
"""Blocks per ``eth_getLogs`` request: public and Besu nodes cap a request's range."""


@dataclass(frozen=True)
class CouncilExecution:
    """The council Safe's execution that a registry event happened inside."""

    safe: str
    safe_tx_hash: str
    nonce: int | None
    signers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MemberEvent:
    """One registry event about a member, with the transaction that caused it."""

    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int
    sender: str
    """The transaction's sender (for a council action: whoever relayed the Safe's tx)."""
    council: CouncilExecution | None

    @property
    def ref(self) -> str:
        """A stable name of this event (transaction and log index)."""
        return f"{self.tx_hash}#{self.log_index}"


class RegistryHistory:
    """Reads a registry's events from the chain, with receipts looked up once each."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.w3 = reg.chain.w3
        abi = cast(list[dict[str, Any]], reg.c.abi)
        self._events = {_topic(e): e for e in abi if e.get("type") == "event"}
        self._safe: dict[str, str] | None = None  # the Safe's events, on first use
        self._safes: dict[str, Any] = {}
        self._receipts: dict[str, Any] = {}
        self._governors: set[str] = set()
        self._governors_to = -1
        self._txs: dict[str, Any] = {}

    def latest_block(self) -> int:
        return self.reg.chain.block_number()

    def governors(self, to_block: int) -> set[str]:
        """Every account ever granted DEFAULT_ADMIN_ROLE (the council Safes), lowercased;
        read incrementally, so a follower asks only about new blocks."""
        if to_block > self._governors_to:
            granted = self._logs([_topic_of(self._events, "RoleGranted"),
                                  "0x" + ADMIN_ROLE.hex()], self._governors_to + 1, to_block)
            self._governors |= {str(e["args"]["account"]).lower() for e in granted}
            self._governors_to = to_block
        return set(self._governors)

    def member_events(self, member_id: bytes, from_block: int, to_block: int,
                      governors: set[str]) -> list[MemberEvent]:
        """Every registry event about ``member_id`` in ``[from_block, to_block]``, in order."""
        out = []
        for e in self._logs([None, "0x" + member_id.hex()], from_block, to_block):
            tx = "0x" + bytes(e["transactionHash"]).hex()
            council = self._council_execution(tx, governors)
            out.append(MemberEvent(str(e["event"]), _plain(dict(e["args"])),
                                   int(e["blockNumber"]), tx, int(e["logIndex"]),
                                   self._sender(tx), council))
        return out

    def _logs(self, topics: list[str | None], from_block: int, to_block: int
              ) -> list[Any]:
        decoded = []
        start = from_block
        while start <= to_block:
            end = min(to_block, start + CHUNK_BLOCKS - 1)
            try:
                raw = self.w3.eth.get_logs({"address": self.reg.c.address, "fromBlock": start,
                                            "toBlock": end, "topics": topics})
            except Exception as exc:
                raise as_chain_error(exc, self.reg.chain.decoder) from exc
            for log in raw:
                abi = self._events.get("0x" + bytes(log["topics"][0]).hex())
                if abi is not None:
                    decoded.append(self.reg.c.events[abi["name"]]().process_log(log))
            start = end + 1
        return decoded

    def _receipt(self, tx: str) -> Any:
        if tx not in self._receipts:
            try:
                self._receipts[tx] = self.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
            except Exception as exc:
                raise as_chain_error(exc, self.reg.chain.decoder) from exc
        return self._receipts[tx]

    def _sender(self, tx: str) -> str:
        return str(self._receipt(tx)["from"])

    def _council_execution(self, tx: str, governors: set[str]) -> CouncilExecution | None:
        """The Safe execution inside ``tx``, if a governing Safe executed one there."""
        safe_events = self._safe_events()
        success = multisig = None
        safe = ""
        for log in self._receipt(tx)["logs"]:
            if str(log["address"]).lower() not in governors or not log["topics"]:
                continue
            name = safe_events.get("0x" + bytes(log["topics"][0]).hex())
            if name is None:
                continue
            safe = str(log["address"])
            event = self._safe_contract(safe).events[name]().process_log(log)
            if event["event"] == "ExecutionSuccess":
                success = event
            elif event["event"] == "SafeMultiSigTransaction":
                multisig = event
        if success is None:
            return None
        safe_tx_hash = bytes(success["args"]["txHash"])
        nonce, signers = None, []
        if multisig is not None:
            nonce = int(abi_decode(["uint256", "address", "uint256"],
                                   bytes(multisig["args"]["additionalInfo"]))[0])
            signers = _signers(safe_tx_hash, bytes(multisig["args"]["signatures"]))
        return CouncilExecution(safe, "0x" + safe_tx_hash.hex(), nonce, signers)

    def _safe_events(self) -> dict[str, str]:
        """The Safe's event names by topic."""
        if self._safe is None:
            from gateway.chain.client import artifact

            self._safe = {_topic(e): str(e["name"]) for e in artifact("SafeL2")["abi"]
                          if e.get("type") == "event"}
        return self._safe

    def _safe_contract(self, address: str) -> Any:
        if address not in self._safes:
            self._safes[address] = self.reg.chain.contract_at("SafeL2", address)
        return self._safes[address]


def _signers(safe_tx_hash: bytes, signatures: bytes) -> list[str]:
    """Owners whose plain ECDSA signatures (v 27/28; eth_sign's v 31/32) are in ``signatures``.

    Safe's contract and approved-hash signature types (v 0 and 1) name their owner in ``r``."""
    out: list[str] = []
    for i in range(0, len(signatures) - 64, 65):
        r, s, v = signatures[i:i + 32], signatures[i + 32:i + 64], signatures[i + 64]
        try:
            if v in (0, 1):
                out.append(str(Web3.to_checksum_address(r[12:])))
                continue
            digest = safe_tx_hash
            if v > 30:
                digest = Web3.keccak(b"\x19Ethereum Signed Message:\n32" + safe_tx_hash)
                v -= 4
            sig = Signature(vrs=(v - 27, int.from_bytes(r, "big"),
                                          int.from_bytes(s, "big")))
            out.append(str(sig.recover_public_key_from_msg_hash(digest).to_checksum_address()))
        except (ValueError, BadSignature):
            out.append("(unrecoverable signature)")
    return out


def _topic(abi: dict[str, Any]) -> str:
    types = ",".join(i["type"] for i in abi["inputs"])
    return "0x" + Web3.keccak(text=f"{abi['name']}({types})").hex().removeprefix("0x")


def _topic_of(events: dict[str, dict[str, Any]], name: str) -> str:
    return next(t for t, e in events.items() if e["name"] == name)


def _plain(args: dict[str, Any]) -> dict[str, Any]:
    """Event arguments as plain values (bytes, int, str)."""
    return {k: bytes(v) if isinstance(v, bytes | bytearray) else v for k, v in args.items()}
