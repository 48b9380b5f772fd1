"""An acceptance promise checked against the chain alone: kept, rejected, open or broken.

Nothing the exchange says is taken on trust: the signer's key and role come from the
MemberRegistry, the tree heads and their block times from the EvidenceLog, the inclusion
proof is recomputed, and a rejection is justified only if the registry says the record's key
was not valid when the exchange says it asked. Extensions, inclusions and rejections that do
not verify are ignored (and said so): they cannot save a promise. The rules that decide the
state are :func:`gateway.core.promise.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.core import merkle
from gateway.core.errors import ChainError, ClaimxError
from gateway.core.keys import PublicKey
from gateway.core.promise import (
    Decision,
    Extension,
    Promise,
    PromiseBundle,
    Rejection,
    binds,
    decide,
    verify_signature,
)
from gateway.core.receipt import Inclusion
from gateway.core.types import Role, parse_hex32
from gateway.verify.receipt import Check, chain_answered


@dataclass
class PromiseReport:
    checks: list[Check] = field(default_factory=list)
    decision: Decision | None = None
    """None when the promise itself does not verify (INVALID)."""

    @property
    def verdict(self) -> str:
        """KEPT, REJECTED (ended honestly), OPEN, BROKEN, or INVALID (not a genuine promise
        of this deployment's exchange)."""
        return "INVALID" if self.decision is None else self.decision.state.upper()

    @property
    def honoured(self) -> bool:
        return self.decision is not None and self.decision.state in ("kept", "rejected")

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {"verdict": self.verdict, "state": d.state if d else None,
                "deadline": d.deadline if d else None, "detail": d.detail if d else None,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail}
                           for c in self.checks]}


class _Invalid(Exception):
    pass


def verify_promise(bundle: PromiseBundle, chain: Any, log_address: str, *,
                   now: int) -> PromiseReport:
    """Check ``bundle`` (a chain.client.Chain behind ``chain``) and decide it at ``now``
    (the verifier's clock, Unix seconds). A chain that does not answer raises its
    :class:`ChainError`: nothing was learnt."""
    report = PromiseReport()
    log = chain.evidence_log(log_address)
    registry = chain.registry(log.registry_address())
    promise = bundle.promise
    try:
        report.checks.append(Check("deployment", True, _deployment(promise, chain, log_address,
                                                                   log.registry_address())))
        report.checks.append(Check("exchange signature", True,
                                   _signed_by_operator(promise, registry, promise.accepted_at)))
    except _Invalid as exc:
        report.checks.append(Check("deployment" if not report.checks else "exchange signature",
                                   False, str(exc)))
        return report
    extensions = _extensions(report, bundle.extensions, promise, registry)
    included_at = _inclusion(report, bundle.inclusion, promise, log)
    rejection = _rejection(report, bundle.rejection, promise, registry, chain)
    report.decision = decide(promise, extensions, now=now, included_at=included_at,
                             rejection=rejection)
    return report


def _deployment(promise: Promise, chain: Any, log_address: str, registry: str) -> str:
    ref = promise.chain
    if ref.chain_id != chain.chain_id:
        raise _Invalid(f"the promise is for chain {ref.chain_id}, this chain is "
                       f"{chain.chain_id}: replayed from another deployment?")
    if ref.evidence_log.lower() != log_address.lower():
        raise _Invalid(f"the promise names evidence log {ref.evidence_log}, checked against "
                       f"{log_address}: replayed from another deployment?")
    if ref.registry.lower() != registry.lower():
        raise _Invalid(f"the promise names registry {ref.registry}, the log's is {registry}")
    return f"chain {ref.chain_id}, evidence log {ref.evidence_log}, registry {ref.registry}"


def _signed_by_operator(doc: Promise | Extension | Rejection, registry: Any, at: int) -> str:
    """The signer is an operator member of the registry, its key was valid at ``at`` (or
    when registered, if later: a document dated before its key only binds the exchange
    more), and the signature verifies with it."""
    member, key_id = parse_hex32(doc.signer.member_id), parse_hex32(doc.signer.key_id)
    try:
        info = registry.member(member)
        if info.role != Role.OPERATOR:
            raise _Invalid(f"signer {doc.signer.member_id[:18]}… is a {info.role.name.lower()}, "
                           "not the exchange operator")
        when = max(at, registry.key_valid_from(key_id))
        state = registry.key_status_at(member, key_id, when)
    except ChainError as exc:
        if not chain_answered(exc):
            raise
        raise _Invalid(f"the registry does not know the signer or its key ({exc.code})") from exc
    if not state.valid:
        raise _Invalid(f"signer key {doc.signer.key_id[:18]}… was {state.status} at {when}")
    try:
        verify_signature(doc, PublicKey.from_chain(state.algorithm, state.public_key))
    except ClaimxError as exc:
        raise _Invalid(f"{exc.code}: {exc.msg}") from exc
    return f"signed by the exchange operator's key {doc.signer.key_id[:18]}…, valid at {when}"


def _extensions(report: PromiseReport, extensions: list[Extension], promise: Promise,
                registry: Any) -> list[Extension]:
    good: list[Extension] = []
    for i, ext in enumerate(extensions):
        try:
            if not binds(promise, ext):
                raise _Invalid("it extends another promise or deployment")
            _signed_by_operator(ext, registry, ext.extended_at)
        except _Invalid as exc:
            report.checks.append(Check(f"extension {i}", False, f"ignored: {exc}"))
            continue
        good.append(ext)
        report.checks.append(Check(f"extension {i}", True, f"to {ext.deadline} ({ext.reason}), "
                                   f"made at {ext.extended_at}"))
    return good


def _inclusion(report: PromiseReport, inc: Inclusion | None, promise: Promise,
               log: Any) -> int | None:
    """Block time of the first head holding the digest, once the proof checks on chain."""
    if inc is None:
        return None
    try:
        if inc.digest != promise.digest:
            raise _Invalid("the inclusion is for another digest")
        head = log.head_at(inc.tree_head.head_index)
        if head.size != inc.tree_head.size or head.root.hex() != inc.tree_head.root:
            raise _Invalid(f"head {inc.tree_head.head_index} on chain is not the one claimed")
        merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(inc.digest)), inc.leaf_index,
                                head.size, [bytes.fromhex(p) for p in inc.inclusion_proof],
                                head.root)
        first = log.head_at(inc.anchored_in.head_index)
        if first.size <= inc.leaf_index or (
                first.index > 0 and log.head_at(first.index - 1).size > inc.leaf_index):
            raise _Invalid(f"head {first.index} is not the first to hold leaf {inc.leaf_index}")
    except ChainError as exc:
        if not chain_answered(exc):
            raise
        report.checks.append(Check("inclusion", False, f"ignored: {exc.code}: {exc.msg}"))
        return None
    except (_Invalid, ClaimxError) as exc:
        report.checks.append(Check("inclusion", False, f"ignored: {exc}"))
        return None
    report.checks.append(Check("inclusion", True, f"leaf {inc.leaf_index}, first anchored in "
                               f"head {first.index} at block time {first.timestamp}"))
    return int(first.timestamp)


def _rejection(report: PromiseReport, rej: Rejection | None, promise: Promise,
               registry: Any, chain: Any) -> Rejection | None:
    if rej is None:
        return None
    try:
        if not binds(promise, rej):
            raise _Invalid("it ends another promise or deployment")
        _signed_by_operator(rej, registry, rej.rejected_at)
        if rej.checked_at > chain.now():
            raise _Invalid(f"it says the registry was asked at {rej.checked_at}, after the "
                           "chain's latest block")
        state = registry.key_status_at(parse_hex32(promise.issuer),
                                       parse_hex32(promise.key_id), rej.checked_at)
        if state.valid:
            raise _Invalid(f"the record's key was valid at {rej.checked_at}: the rejection "
                           "is not justified")
    except _Invalid as exc:
        report.checks.append(Check("rejection", False, f"ignored: {exc}"))
        return None
    report.checks.append(Check("rejection", True, f"{rej.code} at {rej.rejected_at}; the "
                               f"registry says the key was {state.status} at {rej.checked_at}"))
    return rej
