"""Independent verification of a receipt against the chain alone (the auditor's check).

Nothing the exchange operator says is trusted: the tree heads, the key and its validity,
and revocations are read from the EvidenceLog and MemberRegistry contracts; the digest and
proofs are recomputed here. Each check is reported by name with its outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.chain.directory import check_possession
from gateway.core import merkle
from gateway.core.envelope import Envelope
from gateway.core.errors import ChainError, ClaimxError
from gateway.core.keys import PublicKey, algorithm_name
from gateway.core.receipt import Receipt
from gateway.core.types import parse_hex32


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def verdict(self) -> str:
        """``VALID`` or ``INVALID``; a caller that could not check says ``UNCHECKED`` itself."""
        return "VALID" if self.valid else "INVALID"

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "verdict": self.verdict,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]}


def chain_answered(exc: ChainError) -> bool:
    """Whether a chain error is the contracts' answer (a decoded revert such as
    EvidenceLogUnknownHead) rather than a node that could not be reached or asked."""
    return exc.code == "contract_error"


class _Stop(Exception):
    """A check failed in a way that makes the later checks meaningless."""


def verify_receipt(receipt: Receipt, chain: Any, log_address: str) -> Report:
    """Run every check of ``receipt`` against the chain behind ``chain`` (a chain.client.Chain).

    A failed check ends the report (invalid); a chain that does not answer raises its
    :class:`ChainError` instead, since nothing was learnt about the receipt."""
    report = Report()
    ctx: dict[str, Any] = {"receipt": receipt, "chain": chain,
                           "log": chain.evidence_log(log_address)}
    for name, fn in _CHECKS:
        try:
            detail = fn(ctx)
            report.checks.append(Check(name, True, detail))
        except _Stop as exc:
            report.checks.append(Check(name, False, str(exc)))
            break
        except ChainError as exc:
            if not chain_answered(exc):
                raise  # no answer is not a "no": the caller reports the receipt unchecked
            report.checks.append(Check(name, False, f"{exc.code}: {exc.msg}"))
            break
        except ClaimxError as exc:
            report.checks.append(Check(name, False, f"{exc.code}: {exc.msg}"))
            break
    return report


def _envelope(ctx: dict[str, Any]) -> str:
    r: Receipt = ctx["receipt"]
    env = Envelope.from_json(r.envelope)
    packet = env.packet()
    if env.digest.hex() != r.digest:
        raise _Stop(f"digest mismatch: receipt says {r.digest}, payload hashes to "
                    f"{env.digest.hex()}")
    ctx.update(envelope=env, packet=packet)
    return f"payload is canonical; SHA-256 = {r.digest} ({packet.kind})"


def head_of(log: Any, size: int, root: str) -> Any:
    """The chain's head of ``size`` leaves, which must have ``root``: a head is identified by
    its size and root, never by the index or transaction a receipt names (a chain that lost
    blocks holds the same head again, anchored by another transaction)."""
    try:
        head = log.head_at(log.head_index_of_size(size))
    except ChainError as exc:
        if exc.name == "EvidenceLogUnknownSize":
            raise _Stop(f"the chain holds no head of size {size}") from exc
        raise
    if head.root.hex() != root.lower():
        raise _Stop(f"the chain's head of size {size} has root {head.root.hex()}, the receipt "
                    f"claims {root}")
    return head


def _tree_head(ctx: dict[str, Any]) -> str:
    r: Receipt = ctx["receipt"]
    head = head_of(ctx["log"], r.tree_head.size, r.tree_head.root)
    ctx["head"] = head
    moved = "" if head.index == r.tree_head.head_index else \
        f" (the receipt says #{r.tree_head.head_index})"
    return f"head #{head.index} on chain{moved}: size {head.size}, root {head.root.hex()[:16]}…"


def _inclusion(ctx: dict[str, Any]) -> str:
    r: Receipt = ctx["receipt"]
    head = ctx["head"]
    proof = [bytes.fromhex(p) for p in r.inclusion_proof]
    merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(r.digest)), r.leaf_index, head.size,
                            proof, head.root)
    return f"leaf {r.leaf_index} of {head.size} ({len(proof)} hashes) reaches the chain's root"


def _anchor_time(ctx: dict[str, Any]) -> str:
    r: Receipt = ctx["receipt"]
    first = head_of(ctx["log"], r.anchored_in.size, r.anchored_in.root)
    if first.size <= r.leaf_index:
        raise _Stop(f"head #{first.index} has size {first.size}: it cannot hold leaf "
                    f"{r.leaf_index}")
    if first.index > 0 and ctx["log"].head_at(first.index - 1).size > r.leaf_index:
        raise _Stop("an earlier head already held the leaf: receipt names the wrong first head")
    tx = ctx["log"].anchor_tx_of(first.index)  # the chain's, never the receipt's
    stale = "" if tx.hex() == r.anchored_in.tx_hash else \
        f" (the receipt's tx {r.anchored_in.tx_hash[:16]}… is not on this chain: the head " \
        "was anchored again)"
    ctx["anchored_at"] = first.timestamp
    return f"first anchored in head #{first.index}, block {first.block_number}, " \
           f"time {first.timestamp}, tx {tx.hex()[:16]}…{stale}"


def _signature(ctx: dict[str, Any]) -> str:
    env: Envelope = ctx["envelope"]
    issuer = parse_hex32(ctx["packet"].issuer, "issuer")
    registry = ctx["chain"].registry(ctx["log"].registry_address())
    reasons = []
    for sig in env.signatures:
        state = registry.key_status_at(issuer, sig.keyid, ctx["anchored_at"])
        if not state.valid:
            reasons.append(f"key {sig.keyid.hex()[:16]}…: {state.status}")
            continue
        key = PublicKey.from_chain(state.algorithm, state.public_key)
        if key.key_id != sig.keyid:
            reasons.append("registered key does not hash to its key id")
            continue
        env.verify_with(key)
        ctx.update(registry=registry, issuer=issuer, key_id=sig.keyid, key_state=state)
        return f"signed by key {sig.keyid.hex()[:16]}… ({algorithm_name(key.algorithm)}), " \
               "valid for the issuer at anchoring time"
    raise _Stop("no valid signature: " + "; ".join(reasons))


def _possession(ctx: dict[str, Any]) -> str:
    """The signing key's registration carried the key's own signature over it: otherwise an
    operator account registered a key it may not hold (the contract cannot check this)."""
    key_id: bytes = ctx["key_id"]
    check_possession(ctx["registry"], ctx["issuer"], key_id, ctx["key_state"])
    return f"key {key_id.hex()[:16]}… signed its own registration for the issuer " \
           "(member, key, chain and registry)"


def _not_revoked(ctx: dict[str, Any]) -> str:
    r: Receipt = ctx["receipt"]
    issuer = parse_hex32(ctx["packet"].issuer, "issuer")
    rev = ctx["log"].revocation_of(bytes.fromhex(r.digest), issuer)
    if rev is not None:
        raise _Stop(f"revoked by its issuer at {rev.timestamp}, reason code {rev.reason}")
    return "no revocation by the issuer on chain"


_CHECKS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("envelope and digest", _envelope),
    ("tree head on chain", _tree_head),
    ("inclusion proof", _inclusion),
    ("anchoring transaction", _anchor_time),
    ("issuer signature", _signature),
    ("key proof of possession", _possession),
    ("not revoked", _not_revoked),
]


