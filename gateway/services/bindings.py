"""Claimant key bindings: who may bind a key to a subject, and when a consent's key counts.

A consent counts only when its claimant key has a live binding to the consent's subject:
published by a member whose role may attest identities (:data:`ATTESTER_ROLES`), never the
insurer that will read under it, with the attester active and its signing key valid now, the
binding neither expired nor revoked. Bindings are ordinary evidence-log records (indexed in
``identity_bindings`` when stored), so they are anchored and provable like any evidence.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.chain.models import KeyState, MemberInfo
from gateway.core.binding import (
    ATTESTER_ROLES,
    BINDING_KIND,
    BindingBody,
    BindingRevokedBody,
    parse_identity_body,
)
from gateway.core.errors import ChainError, ChainUnavailableError, ForbiddenError, NotFoundError
from gateway.core.packet import Packet
from gateway.core.types import Role, as_utc, hex32, parse_hex32
from gateway.services.auth import Caller
from gateway.store.tables import IdentityBinding, Record, utcnow

ATTESTER_ROLES = ATTESTER_ROLES  # re-exported: gateway.verify.audit applies the same rule


class AttesterRegistry(Protocol):
    """What the rules need from the chain's member registry."""

    def member(self, member_id: bytes) -> MemberInfo: ...
    def key_status_at(self, member_id: bytes, key_id: bytes, at: int) -> KeyState: ...


class Attesters:
    """Asks the registry, uncached, whether a binding's attester may attest and still can."""

    def __init__(self, registry: AttesterRegistry, chain_time: Callable[[], int]) -> None:
        self.registry, self.chain_time = registry, chain_time

    def problem(self, b: IdentityBinding) -> tuple[str, str] | None:
        """(code, message) of why this binding does not count now, or None."""
        try:
            info = self.registry.member(b.attester)
        except ChainUnavailableError:
            raise
        except ChainError:
            return "binding_attester_unknown", "the binding's attester is not a member"
        if info.role not in ATTESTER_ROLES:
            return ("binding_attester_not_allowed",
                    f"{info.role.name.lower()} members may not attest identities")
        state = self.registry.key_status_at(b.attester, b.attester_key_id, self.chain_time())
        if not state.valid:
            return ("binding_attester_invalid",
                    f"the binding's attester key is {state.status} now")
        return None


def index_identity(s: Session, packet: Packet, digest: bytes, key_id: bytes) -> None:
    """Index a stored identity record (binding or revocation) in the caller's transaction."""
    body = parse_identity_body(packet)
    issuer = parse_hex32(packet.issuer)
    if isinstance(body, BindingBody):
        s.add(IdentityBinding(digest=digest, subject=body.subject, claimant_key=body.key_raw,
                              attester=issuer, attester_key_id=key_id,
                              attested_at=body.attested_at, expires_at=body.expires_at))
        return
    assert isinstance(body, BindingRevokedBody)
    b = s.get(IdentityBinding, bytes.fromhex(body.binding))
    if b is None:
        raise NotFoundError("no binding with this digest", code="binding_not_found")
    if b.attester != issuer:
        raise ForbiddenError("only the binding's attester revokes it", code="binding_not_yours")
    if b.revoked_at is None:
        b.revoked_at, b.revoked_by = utcnow(), digest


def binding_rejected(s: Session, rec: Record) -> None:
    """A binding whose record was rejected at logging time never counted: drop its index.
    (A rejected revocation still stands: revoking can only take rights away.)"""
    if rec.kind == BINDING_KIND:
        s.execute(delete(IdentityBinding).where(IdentityBinding.digest == rec.digest))


def require_binding(s: Session, attesters: Attesters, subject: str, claimant_key: bytes,
                    reader: bytes, now: datetime | None = None) -> IdentityBinding:
    """The live binding of ``claimant_key`` to ``subject``, or a 403 saying which part fails:
    unbound, self-bound (by ``reader``), revoked, expired, or an attester that may not or can
    no longer attest."""
    now = now or datetime.now(UTC)
    found: Sequence[IdentityBinding] = s.scalars(
        select(IdentityBinding).where(IdentityBinding.subject == subject,
                                      IdentityBinding.claimant_key == claimant_key)
        .order_by(IdentityBinding.attested_at.desc())).all()
    if not found:
        raise ForbiddenError("the claimant key is not bound to this subject by an institution "
                             "that knows the claimant", code="claimant_key_unbound")
    others = [b for b in found if b.attester != reader]
    if not others:
        raise ForbiddenError("the claimant key is bound only by the insurer itself; a binding "
                             "must come from an institution that knows the claimant",
                             code="claimant_key_self_bound")
    problem: tuple[str, str] = ("claimant_key_unbound", "no binding counts")
    for b in others:
        if b.revoked_at is not None and as_utc(b.revoked_at) <= now:
            problem = ("binding_revoked", "the binding was revoked")
        elif b.expires_at is not None and as_utc(b.expires_at) <= now:
            problem = ("binding_expired", "the binding has expired")
        elif (bad := attesters.problem(b)) is not None:
            problem = bad
        else:
            return b
    raise ForbiddenError(f"the claimant key's binding does not count: {problem[1]}",
                         code=problem[0])


def binding_view(s: Session, caller: Caller, digest: bytes) -> dict[str, object]:
    """What an auditor needs to prove a binding counted at a read: the binding and the
    revocations the gateway knows of (each an evidence-log record it then fetches and
    verifies). Bindings hold a pseudonym and a public key only; the attester, auditors and
    the operator may see them."""
    b = s.get(IdentityBinding, digest)
    if b is None:
        raise NotFoundError("no binding with this digest", code="binding_not_found")
    if caller.member_id != b.attester and caller.role not in (Role.AUDITOR, Role.OPERATOR):
        raise ForbiddenError("a binding is shown to its attester, auditors and the operator",
                             code="binding_forbidden")
    return {"digest": b.digest.hex(), "subject": b.subject,
            "claimant_key": base64.b64encode(b.claimant_key).decode(),
            "attester": hex32(b.attester), "attested_at": as_utc(b.attested_at).isoformat(),
            "expires_at": as_utc(b.expires_at).isoformat() if b.expires_at else None,
            "revoked_at": as_utc(b.revoked_at).isoformat() if b.revoked_at else None,
            "revocations": [b.revoked_by.hex()] if b.revoked_by else []}
