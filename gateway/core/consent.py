"""Claimant consent: the scope a claimant signs and the check of that signature.

A consent is the RFC 8785 (JCS) bytes of a :class:`ConsentScope` JSON object exactly as
sent, signed with the claimant's Ed25519 key. This module is the wire model and the pure
check; :mod:`gateway.services.claims` stores consents and applies them to claims, and
:mod:`gateway.verify.audit` re-checks them against the chain.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, Field, field_validator, model_validator

from gateway.core.canonical import canonical_bytes
from gateway.core.errors import ForbiddenError, InputError
from gateway.core.packet import EXCHANGE_KINDS, IDENTITY_KINDS, KINDS
from gateway.core.types import parse_hex32

SUBJECT_PATTERN = r"^[0-9a-f]{64}$"
MEMBER_PATTERN = r"^0x[0-9a-f]{64}$"


class ClaimantSignature(BaseModel):
    algorithm: str = Field(pattern="^ed25519$")
    public_key: str = Field(description="base64 raw Ed25519 public key of the claimant")
    sig: str = Field(description="base64 signature over the RFC 8785 bytes of `scope`")


class ConsentScope(BaseModel):
    """What the claimant allows: signed by the claimant as RFC 8785 JSON."""

    subject: str = Field(pattern=SUBJECT_PATTERN)
    insurer: str = Field(pattern=MEMBER_PATTERN)
    institutions: list[str] = Field(default_factory=list, max_length=50,
                                    description="0x member ids; empty = any institution")
    kinds: list[str] = Field(default_factory=list, max_length=20,
                             description="evidence kinds; empty = any kind")
    date_from: date
    date_to: date
    expires_at: datetime
    signed_at: datetime | None = Field(default=None, description="when the claimant signed; "
                                       "a consent signed before the claimant's latest "
                                       "withdrawal to this insurer is refused")

    @field_validator("institutions")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        for m in v:
            parse_hex32(m, "institution")
        return v

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        unknown = [k for k in v if k not in KINDS or k in EXCHANGE_KINDS | IDENTITY_KINDS]
        if unknown:
            raise ValueError(f"unknown evidence kinds: {', '.join(unknown[:5])}")
        return v


class ConsentArtifact(BaseModel):
    """The scope as the claimant signed it (RFC 8785 bytes of exactly this JSON object) and
    the signature. The scope is validated as a :class:`ConsentScope` but signed as sent."""

    scope: dict[str, Any] = Field(description="a ConsentScope object")
    claimant_signature: ClaimantSignature

    @model_validator(mode="after")
    def _scope_valid(self) -> ConsentArtifact:
        ConsentScope.model_validate(self.scope)
        return self

    @property
    def parsed(self) -> ConsentScope:
        return ConsentScope.model_validate(self.scope)


def verify_consent(artifact: ConsentArtifact, *, insurer: str, subject: str,
                   now: datetime | None = None) -> None:
    """The claimant's signature, and that the scope names this insurer (``0x`` hex) and
    claimant (subject pseudonym) and is still in force; raises a located error otherwise."""
    scope = artifact.parsed
    if scope.insurer != insurer:
        raise ForbiddenError("consent names another insurer", code="consent_not_yours")
    if scope.subject != subject:
        raise InputError("consent is for another claimant", code="consent_subject_mismatch",
                         loc=["consent", "scope", "subject"])
    if scope.date_from > scope.date_to:
        raise InputError("consent date_from is after date_to", code="invalid_consent",
                         loc=["consent", "scope"])
    if scope.expires_at.astimezone(UTC) <= (now or datetime.now(UTC)):
        raise InputError("consent has already expired", code="consent_expired",
                         loc=["consent", "scope", "expires_at"])
    sig = artifact.claimant_signature
    try:
        key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(sig.public_key))
        key.verify(base64.b64decode(sig.sig), scope_bytes(artifact.scope))
    except (ValueError, InvalidSignature) as exc:
        raise InputError("claimant signature does not verify over the consent scope",
                         code="bad_consent_signature", loc=["consent", "claimant_signature"]
                         ) from exc


def scope_bytes(scope: dict[str, Any] | ConsentScope) -> bytes:
    """What the claimant signs: RFC 8785 bytes of the scope object as sent."""
    obj = scope.model_dump(mode="json") if isinstance(scope, ConsentScope) else scope
    return canonical_bytes(obj)
