"""Claimant key bindings and claimant-signed withdrawals: wire models and pure checks.

A binding is an evidence-log record of kind ``identity.binding`` published (DSSE-signed,
like any record) by a member that knows the person, stating that a raw Ed25519 key is the
claimant's key for a subject pseudonym. It is revoked by an ``identity.binding_revoked``
record naming the binding's digest. A withdrawal is a :class:`WithdrawalStatement` signed by
the claimant's bound key over its RFC 8785 bytes, exactly like a consent scope.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.core.canonical import canonical_bytes
from gateway.core.consent import MEMBER_PATTERN, SUBJECT_PATTERN, ClaimantSignature
from gateway.core.errors import InputError, from_validation
from gateway.core.packet import Packet
from gateway.core.types import Role

BINDING_KIND = "identity.binding"
BINDING_REVOKED_KIND = "identity.binding_revoked"
ATTESTER_ROLES = frozenset({Role.HOSPITAL, Role.POLICE, Role.CIVIL})
"""Members that may attest identities: institutions that know the person (registration
desk, police bureau, civil registry). Never an insurer, so no reader binds its own keys."""


def claimant_key_bytes(text: str) -> bytes:
    """Parse a base64 raw Ed25519 public key (32 bytes), raising ValueError."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("claimant key is not base64") from exc
    if len(raw) != 32:
        raise ValueError(f"claimant key must be 32 raw Ed25519 bytes, got {len(raw)}")
    return raw


class BindingBody(BaseModel):
    """The body of an ``identity.binding`` record."""

    model_config = ConfigDict(extra="forbid")
    subject: str = Field(pattern=SUBJECT_PATTERN, description="the claimant's pseudonym")
    claimant_key: str = Field(description="base64 raw Ed25519 public key of the claimant")
    attested_at: datetime
    expires_at: datetime | None = None

    @field_validator("claimant_key")
    @classmethod
    def _key(cls, v: str) -> str:
        claimant_key_bytes(v)
        return v

    @property
    def key_raw(self) -> bytes:
        return claimant_key_bytes(self.claimant_key)


class BindingRevokedBody(BaseModel):
    """The body of an ``identity.binding_revoked`` record."""

    model_config = ConfigDict(extra="forbid")
    binding: str = Field(pattern=SUBJECT_PATTERN, description="hex digest of the binding")
    reason: str = Field(default="", max_length=200)


def parse_identity_body(packet: Packet) -> BindingBody | BindingRevokedBody:
    """Validate an identity packet's body once, at publish; located 422 otherwise."""
    model: type[BindingBody] | type[BindingRevokedBody] = (
        BindingBody if packet.kind == BINDING_KIND else BindingRevokedBody)
    try:
        body = model.model_validate(packet.body)
    except ValidationError as exc:
        raise from_validation(exc, "binding", code="invalid_binding") from exc
    if isinstance(body, BindingBody) and body.subject != packet.subject:
        raise InputError("binding body names another subject than its packet",
                         code="invalid_binding", loc=["body", "subject"])
    return body


def binding_body(subject: str, claimant_key: bytes, attested_at: datetime,
                 expires_at: datetime | None = None) -> dict[str, Any]:
    """The body an attester signs (as an ``identity.binding`` packet)."""
    body = BindingBody(subject=subject, claimant_key=base64.b64encode(claimant_key).decode(),
                       attested_at=attested_at, expires_at=expires_at)
    return body.model_dump(mode="json", exclude_none=True)


class WithdrawalStatement(BaseModel):
    """What the claimant signs to withdraw every consent to one insurer."""

    subject: str = Field(pattern=SUBJECT_PATTERN)
    insurer: str = Field(pattern=MEMBER_PATTERN)
    withdrawn_at: datetime


class WithdrawalArtifact(BaseModel):
    """A withdrawal as sent: the statement (signed as RFC 8785 bytes of exactly this JSON
    object) and the claimant's signature."""

    withdrawal: dict[str, Any]
    claimant_signature: ClaimantSignature

    @property
    def parsed(self) -> WithdrawalStatement:
        try:
            return WithdrawalStatement.model_validate(self.withdrawal)
        except ValidationError as exc:
            raise from_validation(exc, "withdrawal", code="invalid_withdrawal") from exc


def verify_claimant_signature(sig: ClaimantSignature, signed: dict[str, Any],
                              what: str) -> bytes:
    """Check an Ed25519 signature over the RFC 8785 bytes of ``signed``; returns the raw key."""
    try:
        raw = claimant_key_bytes(sig.public_key)
        ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(
            base64.b64decode(sig.sig), canonical_bytes(signed))
    except (ValueError, InvalidSignature) as exc:
        raise InputError(f"claimant signature does not verify over the {what}",
                         code=f"bad_{what}_signature", loc=[what, "claimant_signature"]
                         ) from exc
    return raw
