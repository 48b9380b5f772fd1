"""Claim packets: the versioned, kind-tagged JSON document an institution signs once.

A packet is canonicalised with RFC 8785 and its SHA-256 is the record's digest. Packets
carry no JSON floats (decimal amounts are strings such as ``"1280.50"``) so that every
language produces the same canonical bytes, and a random salt so that a digest cannot be
guessed from low-entropy content. Subjects are pseudonyms, never raw identifiers.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.core.canonical import canonical_bytes, digest_of
from gateway.core.errors import InputError, from_validation
from gateway.core.types import Digest

PACKET_SCHEMA = "claimx.packet/1"

KINDS: dict[str, str] = {
    "hospital.admission_summary": "admission record: time, department, diagnoses on admission",
    "hospital.discharge_summary": "discharge summary: admission/discharge times, diagnoses, "
    "procedures, attending doctor",
    "hospital.invoice": "itemised bill: items, categories, quantities, unit prices, amounts, "
    "self-pay and insurer-covered parts",
    "hospital.diagnosis": "diagnosis certificate: coded diagnoses",
    "hospital.lab_report": "lab report: observations, units, reference ranges, abnormal flags",
    "hospital.procedure": "procedures performed outside a discharge summary (operations, "
    "chemotherapy): coded procedure, status, time",
    "police.accident_determination": "road traffic accident determination: case number, time, "
    "place, parties, vehicles, liability split, facts",
    "police.incident_report": "incident report: case number, time, place, summary",
    "civil.death_certificate": "death certificate: date, place and cause of death",
    "attachment": "photographed or scanned document, classified by type",
    "payer.adjudication": "an adjudicated bill (FHIR ExplanationOfBenefit): items with their "
    "submitted, eligible, benefit, copay and deductible amounts, totals by category, payment",
    "payer.coverage": "the policy a claim is made under (FHIR Coverage): payor, type, period, "
    "class (plan, group), relationship, costs to the beneficiary; subscriber pseudonymised",
    "identity.binding": "an attester's statement that a claimant key belongs to a subject: "
    "subject, claimant_key (base64 raw Ed25519), attested_at, expires_at",
    "identity.binding_revoked": "the attester's revocation of a binding: binding (digest)",
    "insurer.consent": "a claimant's consent for an insurer to read evidence (appended by the "
    "exchange)",
    "exchange.access": "a payload read: member, record, claim, consent (appended by the "
    "exchange)",
}
"""Evidence kinds claimx understands, with what each body holds."""

EXCHANGE_KINDS = frozenset({"insurer.consent", "exchange.access"})
"""Kinds the exchange itself appends (gateway.services.ledger); never evidence of a claim."""

IDENTITY_KINDS = frozenset({"identity.binding", "identity.binding_revoked"})
"""Kinds that bind claimants' keys (gateway.core.binding); never evidence of a claim."""

URGENT_KINDS = frozenset({"police.accident_determination"})
"""Kinds that always take the green channel, whatever the packet's own flag says."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MEMBER = re.compile(r"^0x[0-9a-f]{64}$")
_SALT = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


class SourceRef(BaseModel):
    """Where the packet came from: the institutional format and the hash of the raw export."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=_HEX64.pattern)


class AttachmentRef(BaseModel):
    """A document referenced by hash; its bytes travel separately."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str = Field(pattern=_HEX64.pattern)
    media_type: str = Field(min_length=3, max_length=128)
    doc_type: str | None = Field(default=None, max_length=64)
    size: int | None = Field(default=None, ge=0)


class Packet(BaseModel):
    """One claim packet, validated. Build with :func:`new_packet`, parse with :meth:`from_obj`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: str = Field(alias="schema", default=PACKET_SCHEMA)
    kind: str
    issuer: str = Field(pattern=_MEMBER.pattern, description="0x-hex bytes32 member id")
    issued_at: str = Field(pattern=_TIME.pattern, description="RFC 3339 UTC, 'Z' suffix")
    subject: str = Field(pattern=_HEX64.pattern, description="keyed-HMAC pseudonym")
    body: dict[str, Any]
    source: SourceRef | None = None
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=64)
    salt: str = Field(pattern=_SALT.pattern)
    supersedes: str | None = Field(default=None, pattern=_HEX64.pattern)
    urgent: bool = False

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, value: str) -> str:
        if value != PACKET_SCHEMA:
            raise ValueError(f"unsupported packet schema {value!r}, expected {PACKET_SCHEMA!r}")
        return value

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown evidence kind {value!r}; known: {', '.join(KINDS)}")
        return value

    @classmethod
    def from_obj(cls, obj: Any, *, floats_checked: bool = False) -> Packet:
        """Validate a decoded JSON value as a packet, raising :class:`InputError` with a path.

        ``floats_checked`` skips the float scan when the JSON parser already refused floats.
        """
        if not isinstance(obj, dict):
            raise InputError("packet must be a JSON object", code="invalid_packet", loc=[])
        if not floats_checked:
            _reject_floats(obj, ())
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            raise from_validation(exc, "packet", "invalid_packet") from exc

    def to_obj(self) -> dict[str, Any]:
        """The JSON object form, without absent optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def canonical(self) -> bytes:
        """RFC 8785 canonical bytes: what is signed and hashed."""
        return canonical_bytes(self.to_obj())

    def digest(self) -> Digest:
        return digest_of(self.to_obj())

    @property
    def is_urgent(self) -> bool:
        """Whether this packet takes the green channel."""
        return self.urgent or self.kind in URGENT_KINDS


def new_salt() -> str:
    """128 random bits, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def utc_now() -> str:
    """Current time as the RFC 3339 UTC text packets use."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_packet(*, kind: str, issuer: str, subject: str, body: dict[str, Any],
               issued_at: str | None = None, source: SourceRef | None = None,
               attachments: list[AttachmentRef] | None = None, supersedes: str | None = None,
               urgent: bool = False) -> Packet:
    """Build a packet with a fresh salt, validating every field."""
    obj: dict[str, Any] = {
        "schema": PACKET_SCHEMA, "kind": kind, "issuer": issuer, "subject": subject,
        "body": body, "issued_at": issued_at or utc_now(), "salt": new_salt(),
        "attachments": [a.model_dump(exclude_none=True) for a in attachments or []],
        "urgent": urgent,
    }
    if source is not None:
        obj["source"] = source.model_dump()
    if supersedes is not None:
        obj["supersedes"] = supersedes
    return Packet.from_obj(obj)


def _reject_floats(value: Any, loc: tuple[str, ...]) -> None:
    if isinstance(value, float):
        raise InputError(f"packet field {'/'.join(loc)}: JSON floats are not allowed; "
                         "write decimal amounts as strings", code="float_in_packet", loc=list(loc))
    if isinstance(value, dict):
        for key, sub in value.items():
            _reject_floats(sub, (*loc, str(key)))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _reject_floats(sub, (*loc, str(i)))
