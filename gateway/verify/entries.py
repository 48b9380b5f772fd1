"""Evidence-log entries the auditor fetches from the gateway and proves against the chain.

An entry (a read, a consent, a claimant key binding, its revocation) is fetched as a receipt
and verified like any record (:func:`gateway.verify.receipt.verify_receipt`): its digest,
inclusion in a head on chain, the issuer's key valid in the registry when it was anchored,
no revocation on chain. Its kind is checked here, and for the exchange's own entries that
the exchange operator member issued it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway.core.envelope import Envelope
from gateway.core.packet import Packet
from gateway.core.receipt import Receipt
from gateway.core.types import Role, parse_hex32
from gateway.verify.receipt import verify_receipt

Fetch = Callable[[str], dict[str, Any]]
"""GET a gateway path as the auditor, returning its JSON (raising ClaimxError on a 4xx)."""


class Fail(Exception):
    """A check failed (``"name: detail"``); the later checks of this read are meaningless."""


@dataclass
class Entry:
    """A verified entry: its packet, its place in the log, and its receipt and envelope."""

    packet: Packet
    leaf_index: int
    receipt: Receipt
    envelope: Envelope

    def anchored_at(self, chain: Any, log_address: str) -> int:
        """Chain time (seconds) of the head that first held the entry."""
        first = self.receipt.anchored_in
        log = chain.evidence_log(log_address)
        return int(log.head_at(log.head_index_of_size(first.size)).timestamp)  # by size


def verified_entry(digest: str, kind: str, fetch: Fetch, chain: Any, log_address: str, *,
                   by_operator: bool = True) -> Entry:
    """Fetch ``digest``'s receipt, verify it against the chain, check kind (and issuer)."""
    try:
        receipt = Receipt.model_validate(fetch(f"/v1/records/{digest}/receipt"))
    except ValidationError as exc:
        raise Fail(f"{kind} entry: the gateway's receipt is malformed "
                   f"({exc.error_count()} error(s))") from exc
    report = verify_receipt(receipt, chain, log_address)
    if not report.valid:
        failed = next(c for c in report.checks if not c.ok)
        raise Fail(f"{kind} entry: {failed.name}: {failed.detail}")
    envelope = Envelope.from_json(receipt.envelope)
    packet = envelope.packet()
    if packet.kind != kind:
        raise Fail(f"{kind} entry: is a {packet.kind}")
    if by_operator:
        registry = chain.registry(chain.evidence_log(log_address).registry_address())
        if registry.member(parse_hex32(packet.issuer, "issuer")).role != Role.OPERATOR:
            raise Fail(f"{kind} entry: not issued by the exchange operator member")
    return Entry(packet, receipt.leaf_index, receipt, envelope)
