"""Claims as their insurer reads them: summaries, and the full view with consent, records
(duplicates named), evidence requests and the timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.types import hex32
from gateway.services import requests
from gateway.services.auth import Caller
from gateway.services.consent import live_consent
from gateway.services.records import anchored_size, record_status
from gateway.store.events import event_dict
from gateway.store.tables import Claim, ClaimRecord, Consent, Event, EvidenceRequest, Record


def summary(c: Claim) -> dict[str, Any]:
    """A claim without its consent, records, requests and timeline."""
    return {"id": c.id, "reference": c.reference, "subject": c.subject, "policy": c.policy,
            "incident_date": c.incident_date, "kind": c.kind, "status": c.status,
            "green_channel": c.kind in requests.GREEN_CHANNEL_KINDS,
            "created_at": c.created_at.isoformat(), "outcome": c.outcome,
            "closed_at": c.closed_at.isoformat() if c.closed_at else None}


def list_claims(s: Session, caller: Caller) -> list[dict[str, Any]]:
    """The caller's claims, newest first, as summaries."""
    claims = s.scalars(select(Claim).where(Claim.insurer == caller.member_id)
                       .order_by(Claim.created_at.desc())).all()
    return [summary(c) for c in claims]


def claim_view(s: Session, claim: Claim) -> dict[str, Any]:
    """The claim with its consent, records, duplicates, requests and timeline."""
    consent = s.scalar(select(Consent).where(Consent.claim_id == claim.id))
    records = _records(s, claim)
    reqs = s.scalars(select(EvidenceRequest).where(EvidenceRequest.claim_id == claim.id)
                     .order_by(EvidenceRequest.created_at)).all()
    timeline = s.scalars(select(Event).where(Event.claim_id == claim.id,
                                             Event.member_id == claim.insurer)
                         .order_by(Event.id)).all()
    return {**summary(claim),
            "consent": None if consent is None else {
                "id": consent.id, "digest": consent.digest.hex(),
                "live": live_consent(s, claim.id) is not None,
                "expires_at": consent.expires_at.isoformat(),
                "withdrawn_at": consent.withdrawn_at.isoformat() if consent.withdrawn_at
                else None},
            "records": [r for r in records if r["duplicate_of"] is None],
            "duplicates": [r for r in records if r["duplicate_of"] is not None],
            "requests": [requests.view(r) for r in reqs],
            "timeline": [event_dict(e) for e in timeline]}


def _records(s: Session, claim: Claim) -> list[dict[str, Any]]:
    """Every record attached to the claim, in publication order: each first copy lists its
    duplicates, each duplicate names its first copy."""
    anchored = anchored_size(s)
    rows = s.execute(select(ClaimRecord, Record).join(Record, Record.id == ClaimRecord.record_id)
                     .where(ClaimRecord.claim_id == claim.id).order_by(Record.id)).all()
    digests = {rec.id: rec.digest.hex() for _, rec in rows}
    return [{
        "digest": rec.digest.hex(), "kind": rec.kind, "issuer": hex32(rec.issuer),
        "issued_at": rec.issued_at, "verified": True, "urgent": rec.urgent,
        "status": record_status(rec.leaf_index, anchored),
        "duplicate_of": digests.get(cr.duplicate_of) if cr.duplicate_of else None,
        "duplicates": [digests[o.record_id] for o, _ in rows if o.duplicate_of == rec.id],
    } for cr, rec in rows]
