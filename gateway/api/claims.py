"""Routes for the insurer's side: claims with consent, evidence requests, the timeline.

Insurers open and read their own claims (another insurer's claim is a 404); institutions
list and decline the requests addressed to them. Publishing evidence answers requests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.deps import CallerDep, ServicesDep, SessionDep
from gateway.core.errors import ConflictError, InputError
from gateway.core.types import Role, parse_hex32
from gateway.services import requests
from gateway.services.auth import PUBLISHERS, require_role
from gateway.services.claims import (
    ClaimIn,
    close_claim,
    get_claim,
    open_claim,
    withdraw_consent,
)
from gateway.services.consent import live_consent
from gateway.store.events import event_dict
from gateway.store.tables import Anchor, Claim, ClaimRecord, Consent, Event, EvidenceRequest, Record

router = APIRouter(tags=["claims"])


class DeclineIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post("/v1/claims", status_code=201)
def create_claim(s: SessionDep, sv: ServicesDep, caller: CallerDep,
                 body: ClaimIn) -> dict[str, Any]:
    """Open a claim with the claimant's signed consent. Records already published in the
    consent's scope attach at once; later ones attach as they arrive."""
    require_role(caller, Role.INSURER, action="open claims")
    claim = open_claim(s, sv.ledger, caller, body)
    return claim_view(s, claim)


@router.get("/v1/claims")
def list_claims(s: SessionDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Your claims, newest first."""
    require_role(caller, Role.INSURER, action="read claims")
    claims = s.scalars(select(Claim).where(Claim.insurer == caller.member_id)
                       .order_by(Claim.created_at.desc())).all()
    return [_summary(c) for c in claims]


@router.get("/v1/claims/{claim_id}")
def read_claim(s: SessionDep, caller: CallerDep, claim_id: str) -> dict[str, Any]:
    """A claim with its consent, records (duplicates named), requests and timeline."""
    require_role(caller, Role.INSURER, action="read claims")
    return claim_view(s, get_claim(s, caller, claim_id))


@router.post("/v1/claims/{claim_id}/consent/withdraw")
def withdraw(s: SessionDep, sv: ServicesDep, caller: CallerDep,
             claim_id: str) -> dict[str, Any]:
    """Record the claimant's withdrawal: payload reads under this claim stop at once."""
    require_role(caller, Role.INSURER, action="manage consent")
    claim = get_claim(s, caller, claim_id)
    withdraw_consent(s, sv.ledger, caller, claim)
    return claim_view(s, claim)


class CloseIn(BaseModel):
    outcome: Literal["paid", "denied", "withdrawn"] = Field(
        description="the decision: paid, denied, or withdrawn by the claimant")


@router.post("/v1/claims/{claim_id}/close")
def close(s: SessionDep, caller: CallerDep, claim_id: str, body: CloseIn) -> dict[str, Any]:
    """Close a decided claim: nothing attaches any more, open requests are cancelled (their
    institutions are told), the claim keeps its records, consent and timeline."""
    require_role(caller, Role.INSURER, action="close claims")
    return claim_view(s, close_claim(s, get_claim(s, caller, claim_id), body.outcome))


@router.post("/v1/claims/{claim_id}/requests", status_code=201)
def request_evidence(s: SessionDep, sv: ServicesDep, caller: CallerDep, claim_id: str,
                     body: requests.RequestIn) -> dict[str, Any]:
    """Ask an institution for kinds of evidence; green-channel claims get a 30-minute clock."""
    require_role(caller, Role.INSURER, action="request evidence")
    claim = get_claim(s, caller, claim_id)
    if claim.status == "closed":
        raise ConflictError("the claim is closed", code="claim_closed")
    if live_consent(s, claim.id) is None:
        raise ConflictError("the claim's consent is withdrawn or expired", code="no_consent")
    asked = sv.members.lookup(parse_hex32(body.institution, "institution"))
    if asked is None or asked.role not in PUBLISHERS:
        raise InputError("institution is not an active hospital, police or civil-registry "
                         "member in the registry", code="unknown_institution",
                         loc=["institution"])
    return requests.view(requests.create(s, claim, body, sv.settings.green_channel_minutes))


@router.get("/v1/requests")
def list_requests(s: SessionDep, caller: CallerDep,
                  status: Annotated[Literal["open", "partly_fulfilled", "fulfilled",
                                            "declined", "expired", "cancelled"] | None, Query(
                      description="only requests in this state (as shown: a routine request "
                      "past due shows expired)")] = None,
                  ) -> list[dict[str, Any]]:
    """Institutions: requests addressed to you. Insurers: requests you sent."""
    if caller.role in PUBLISHERS:
        q = select(EvidenceRequest).where(EvidenceRequest.institution == caller.member_id)
    else:
        require_role(caller, Role.INSURER, *PUBLISHERS, action="read evidence requests")
        q = select(EvidenceRequest).join(Claim, Claim.id == EvidenceRequest.claim_id).where(
            Claim.insurer == caller.member_id)
    views = [requests.view(r) for r in s.scalars(q.order_by(EvidenceRequest.created_at)).all()]
    return [v for v in views if status is None or v["status"] == status]


@router.post("/v1/requests/{request_id}/decline")
def decline_request(s: SessionDep, caller: CallerDep, request_id: str,
                    body: DeclineIn) -> dict[str, Any]:
    """Decline a request addressed to you, with a reason the insurer sees."""
    require_role(caller, *PUBLISHERS, action="decline evidence requests")
    return requests.view(requests.decline(s, caller, request_id, body.reason))


def _summary(c: Claim) -> dict[str, Any]:
    return {"id": c.id, "reference": c.reference, "subject": c.subject, "policy": c.policy,
            "incident_date": c.incident_date, "kind": c.kind, "status": c.status,
            "green_channel": c.kind in requests.GREEN_CHANNEL_KINDS,
            "created_at": c.created_at.isoformat(), "outcome": c.outcome,
            "closed_at": c.closed_at.isoformat() if c.closed_at else None}


def claim_view(s: Session, claim: Claim) -> dict[str, Any]:
    consent = s.scalar(select(Consent).where(Consent.claim_id == claim.id))
    anchored = s.scalar(select(Anchor.size).order_by(Anchor.size.desc()).limit(1)) or 0
    rows = s.execute(select(ClaimRecord, Record).join(Record, Record.id == ClaimRecord.record_id)
                     .where(ClaimRecord.claim_id == claim.id).order_by(Record.id)).all()
    digests = {rec.id: rec.digest.hex() for _, rec in rows}
    records = [{
        "digest": rec.digest.hex(), "kind": rec.kind, "issuer": "0x" + rec.issuer.hex(),
        "issued_at": rec.issued_at, "verified": True, "urgent": rec.urgent,
        "status": "anchored" if rec.leaf_index is not None and rec.leaf_index < anchored
        else "logged" if rec.leaf_index is not None else "accepted",
        "duplicate_of": digests.get(cr.duplicate_of) if cr.duplicate_of else None,
        "duplicates": [digests[o.record_id] for o, _ in rows if o.duplicate_of == rec.id],
    } for cr, rec in rows]
    reqs = s.scalars(select(EvidenceRequest).where(EvidenceRequest.claim_id == claim.id)
                     .order_by(EvidenceRequest.created_at)).all()
    timeline = s.scalars(select(Event).where(Event.claim_id == claim.id,
                                             Event.member_id == claim.insurer)
                         .order_by(Event.id)).all()
    return {**_summary(claim),
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
