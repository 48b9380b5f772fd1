"""Claims, consent and matching: the insurer's side of the exchange.

An insurer opens a claim with the claimant's signed consent; every record whose subject
and scope the consent covers attaches to the claim automatically, whether it was published
before or after the claim was opened, so nothing is re-submitted. The same material
published twice (same source document under a new digest) is attached once and its
duplicates named. Each step emits an event for the member concerned.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.consent import SUBJECT_PATTERN, ConsentArtifact, verify_consent
from gateway.core.errors import ConflictError, NotFoundError
from gateway.core.packet import EXCHANGE_KINDS
from gateway.core.types import as_utc, hex32, parse_hex32
from gateway.services.auth import Caller
from gateway.services.consent import consent_live as consent_live  # re-exported
from gateway.services.consent import live_consent
from gateway.services.ledger import Ledger
from gateway.services.requests import cancel_open, fulfil
from gateway.store.events import emit
from gateway.store.tables import Claim, ClaimRecord, Consent, Record, utcnow


class ClaimIn(BaseModel):
    reference: str = Field(min_length=1, max_length=128, description="the insurer's own id")
    subject: str = Field(pattern=SUBJECT_PATTERN, description="claimant pseudonym")
    policy: str = Field(min_length=1, max_length=128)
    incident_date: date
    kind: str = Field(pattern="^(routine|critical_illness|accident)$")
    consent: ConsentArtifact


@dataclass(frozen=True)
class Scope:
    """A consent as the matcher uses it."""

    institutions: frozenset[bytes]
    kinds: frozenset[str]
    date_from: str
    date_to: str

    @classmethod
    def of(cls, c: Consent) -> Scope:
        return cls(frozenset(parse_hex32(m) for m in json.loads(c.institutions)),
                   frozenset(json.loads(c.kinds)), c.date_from, c.date_to)

    def covers(self, rec: Record) -> bool:
        if rec.kind in EXCHANGE_KINDS:
            return False
        if self.institutions and rec.issuer not in self.institutions:
            return False
        if self.kinds and rec.kind not in self.kinds:
            return False
        return self.date_from <= rec.issued_at[:10] <= self.date_to


def open_claim(s: Session, ledger: Ledger, caller: Caller, claim_in: ClaimIn) -> Claim:
    """Create the claim and its consent, log the consent, attach existing in-scope records."""
    verify_consent(claim_in.consent, insurer=caller.hex, subject=claim_in.subject)
    if s.scalar(select(Claim).where(Claim.insurer == caller.member_id,
                                    Claim.reference == claim_in.reference)) is not None:
        raise ConflictError(f"claim reference {claim_in.reference!r} already exists",
                            code="duplicate_claim")
    scope = claim_in.consent.parsed
    claim = Claim(id=str(uuid.uuid4()), insurer=caller.member_id, reference=claim_in.reference,
                  subject=claim_in.subject, policy=claim_in.policy,
                  incident_date=claim_in.incident_date.isoformat(), kind=claim_in.kind)
    s.add(claim)
    artifact = claim_in.consent.model_dump(mode="json")
    digest = ledger.append(s, "insurer.consent", claim_in.subject,
                           {"claim": claim.id, "artifact": artifact})
    consent = Consent(id=str(uuid.uuid4()), claim_id=claim.id, subject=claim.subject,
                      insurer=caller.member_id, institutions=json.dumps(scope.institutions),
                      kinds=json.dumps(scope.kinds), date_from=scope.date_from.isoformat(),
                      date_to=scope.date_to.isoformat(), expires_at=scope.expires_at,
                      digest=digest)
    s.add(consent)
    s.flush()
    emit(s, caller.member_id, "claim.opened", {"reference": claim.reference, "kind": claim.kind,
                                               "consent_digest": digest.hex()}, claim.id)
    existing = s.scalars(select(Record.id).where(Record.subject == claim.subject)).all()
    _attach(s, claim, consent, list(existing))
    return claim


def withdraw_consent(s: Session, ledger: Ledger, caller: Caller, claim: Claim) -> Consent:
    c = s.scalar(select(Consent).where(Consent.claim_id == claim.id))
    if c is None or c.withdrawn_at is not None:
        raise ConflictError("consent already withdrawn", code="consent_withdrawn")
    c.withdrawn_at = utcnow()
    ledger.append(s, "insurer.consent", claim.subject,
                  {"claim": claim.id, "withdrawn": c.digest.hex()})
    emit(s, caller.member_id, "consent.withdrawn", {"consent_digest": c.digest.hex()}, claim.id)
    return c


def close_claim(s: Session, claim: Claim, outcome: str) -> Claim:
    """Decide the claim: no record attaches any more and open requests are cancelled.
    Records already attached stay readable while the consent lives (a decision may be
    re-checked); withdrawing the consent stops that too."""
    if claim.status == "closed":
        raise ConflictError(f"claim already closed ({claim.outcome})", code="claim_closed")
    claim.status, claim.outcome, claim.closed_at = "closed", outcome, utcnow()
    cancelled = cancel_open(s, claim)
    emit(s, claim.insurer, "claim.closed", {"reference": claim.reference, "outcome": outcome,
                                            "requests_cancelled": cancelled}, claim.id)
    return claim


def match_new_records(s: Session, stored: list[tuple[bytes, str]]) -> None:
    """Attach newly stored records (digest, subject) to every claim whose live consent
    covers them. Most records belong to no open claim, so claims are looked up first."""
    subjects = {subject for _, subject in stored}
    claims = s.scalars(select(Claim).where(Claim.subject.in_(subjects),
                                           Claim.status != "closed")).all()
    for claim in claims:
        consent = live_consent(s, claim.id)
        if consent is None:
            continue
        digests = [d for d, subject in stored if subject == claim.subject]
        ids = list(s.scalars(select(Record.id).where(Record.digest.in_(digests))))
        _attach(s, claim, consent, ids)


def _attach(s: Session, claim: Claim, consent: Consent, record_ids: list[int]) -> None:
    scope = Scope.of(consent)
    rows = s.execute(select(ClaimRecord, Record.source_sha256)
                     .join(Record, Record.id == ClaimRecord.record_id)
                     .where(ClaimRecord.claim_id == claim.id)).all()
    attached = {cr.record_id: cr for cr, _ in rows}
    by_source = {src: cr.record_id for cr, src in rows if src and cr.duplicate_of is None}
    for rec in s.scalars(select(Record).where(Record.id.in_(record_ids))
                         .order_by(Record.id)).all():
        if rec.id in attached or not scope.covers(rec):
            continue
        dup = by_source.get(rec.source_sha256) if rec.source_sha256 else None
        attached[rec.id] = ClaimRecord(claim_id=claim.id, record_id=rec.id, duplicate_of=dup)
        s.add(attached[rec.id])
        if rec.source_sha256 and dup is None:
            by_source[rec.source_sha256] = rec.id
        data: dict[str, Any] = {"digest": rec.digest.hex(), "kind": rec.kind,
                                "issuer": hex32(rec.issuer), "verified": True}
        if dup is not None:
            dup_digest = s.scalar(select(Record.digest).where(Record.id == dup))
            data["duplicate_of"] = dup_digest.hex() if dup_digest else None
        emit(s, claim.insurer, "record.received", data, claim.id)
        emit(s, claim.insurer, "record.verified", _verification(rec), claim.id)
        if dup is None:
            fulfil(s, claim, rec)


def _verification(rec: Record) -> dict[str, Any]:
    """What was checked when the record was accepted (the timeline's "verified" step)."""
    return {"digest": rec.digest.hex(), "issuer": hex32(rec.issuer),
            "key_id": hex32(rec.key_id), "verified_at": as_utc(rec.accepted_at).isoformat(),
            "checks": ["payload_canonical", "signature", "key_valid_at_acceptance"]}


def notify_anchored(s: Session, old_size: int, new_size: int) -> None:
    """Tell insurers which of their claims' records the new tree head anchored."""
    rows = s.execute(
        select(ClaimRecord.claim_id, Claim.insurer, Record.digest, Record.leaf_index)
        .join(Record, Record.id == ClaimRecord.record_id)
        .join(Claim, Claim.id == ClaimRecord.claim_id)
        .where(Record.leaf_index >= old_size, Record.leaf_index < new_size)).all()
    for claim_id, insurer, digest, leaf in rows:
        emit(s, insurer, "record.anchored", {"digest": digest.hex(), "leaf_index": leaf,
                                             "tree_size": new_size}, claim_id)


def get_claim(s: Session, caller: Caller, claim_id: str) -> Claim:
    """The caller's own claim; another insurer's is a 404, as if it did not exist."""
    claim = s.get(Claim, claim_id)
    if claim is None or claim.insurer != caller.member_id:
        raise NotFoundError("no such claim", code="claim_not_found")
    return claim
