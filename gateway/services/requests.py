"""Evidence requests: an insurer asks an institution for kinds of evidence for a claim.

Publishing records that answer a request fulfils it (partly, then fully). Green-channel
claims (critical illness, accident) give their requests a 30-minute response clock; a
request past its clock is flagged ``breached`` while it stays open, and routine requests
expire at theirs. Either is announced once, as an event to both sides (:func:`sweep_clocks`).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import ConflictError, InputError, NotFoundError
from gateway.core.packet import KINDS
from gateway.core.types import MemberId, Role, as_utc, hex32, parse_hex32
from gateway.services.auth import PUBLISHERS, Caller, MemberDirectory, require_role
from gateway.services.consent import live_consent
from gateway.store.db import Database
from gateway.store.events import emit
from gateway.store.tables import Claim, ClaimRecord, EvidenceRequest, Record, utcnow

ROUTINE_DAYS = 7
GREEN_CHANNEL_KINDS = frozenset({"critical_illness", "accident"})
"""Claim kinds whose evidence requests run on the green-channel clock."""
OPEN_STATES = ("open", "partly_fulfilled")


class RequestIn(BaseModel):
    institution: str = Field(pattern=r"^0x[0-9a-f]{64}$", description="member id asked")
    kinds: list[str] = Field(min_length=1, max_length=10)
    note: str = Field("", max_length=500, description="no personal data, please")

    def checked_kinds(self) -> list[str]:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise InputError(f"unknown evidence kinds: {', '.join(unknown)}",
                             code="unknown_kind", loc=["kinds"])
        return self.kinds


def create(s: Session, members: MemberDirectory, claim: Claim, req: RequestIn,
           green_minutes: int) -> EvidenceRequest:
    """Open a request on an open claim with a live consent, to an active publishing member;
    records already attached to the claim may fulfil it at once."""
    if claim.status == "closed":
        raise ConflictError("the claim is closed", code="claim_closed")
    if live_consent(s, claim.id) is None:
        raise ConflictError("the claim's consent is withdrawn or expired", code="no_consent")
    asked = members.lookup(MemberId(parse_hex32(req.institution, "institution")))
    if asked is None or asked.role not in PUBLISHERS:
        raise InputError("institution is not an active hospital, police or civil-registry "
                         "member in the registry", code="unknown_institution",
                         loc=["institution"])
    urgent = claim.kind in GREEN_CHANNEL_KINDS
    now = utcnow()
    due = now + (timedelta(minutes=green_minutes) if urgent else timedelta(days=ROUTINE_DAYS))
    er = EvidenceRequest(id=str(uuid.uuid4()), claim_id=claim.id,
                         institution=parse_hex32(req.institution),
                         kinds=json.dumps(sorted(set(req.checked_kinds()))), urgent=urgent,
                         note=req.note, due_at=due)
    s.add(er)
    s.flush()
    payload = {"request": er.id, "kinds": json.loads(er.kinds), "urgent": urgent,
               "due_at": due.isoformat()}
    emit(s, er.institution, "request.opened", {**payload, "claim_subject": claim.subject},
         claim.id)
    emit(s, claim.insurer, "request.sent", {**payload, "institution": req.institution}, claim.id)
    held = s.scalars(select(Record).join(ClaimRecord, ClaimRecord.record_id == Record.id)
                     .where(ClaimRecord.claim_id == claim.id,
                            ClaimRecord.duplicate_of.is_(None))).all()
    for rec in held:
        fulfil(s, claim, rec)
    return er


def fulfil(s: Session, claim: Claim, rec: Record) -> None:
    """Mark requests of ``claim`` to ``rec``'s issuer answered by ``rec``'s kind."""
    for er in s.scalars(select(EvidenceRequest).where(
            EvidenceRequest.claim_id == claim.id, EvidenceRequest.institution == rec.issuer,
            EvidenceRequest.status.in_(OPEN_STATES))).all():
        wanted = set(json.loads(er.kinds))
        if rec.kind not in wanted:
            continue
        got = set(s.scalars(select(Record.kind).join(ClaimRecord,
                                                     ClaimRecord.record_id == Record.id)
                            .where(ClaimRecord.claim_id == claim.id,
                                   Record.issuer == rec.issuer)))
        got.add(rec.kind)
        done = wanted <= got
        er.status = "fulfilled" if done else "partly_fulfilled"
        if done:
            er.closed_at = utcnow()
        emit(s, claim.insurer, "request." + er.status, {"request": er.id, "digest":
                                                         rec.digest.hex()}, claim.id)
    _maybe_ready(s, claim)


def _maybe_ready(s: Session, claim: Claim) -> None:
    states = list(s.scalars(select(EvidenceRequest.status)
                            .where(EvidenceRequest.claim_id == claim.id)))
    if states and all(st in ("fulfilled", "declined") for st in states) \
            and claim.status == "open":
        claim.status = "ready"
        emit(s, claim.insurer, "claim.ready", {"reference": claim.reference}, claim.id)


def list_for(s: Session, caller: Caller, status: str | None = None) -> list[dict[str, Any]]:
    """Institutions: the requests addressed to them. Insurers: the requests they sent. Oldest
    first, as :func:`view` shows them, only those whose shown status is ``status`` if given."""
    if caller.role in PUBLISHERS:
        q = select(EvidenceRequest).where(EvidenceRequest.institution == caller.member_id)
    else:
        require_role(caller, Role.INSURER, *PUBLISHERS, action="read evidence requests")
        q = select(EvidenceRequest).join(Claim, Claim.id == EvidenceRequest.claim_id).where(
            Claim.insurer == caller.member_id)
    views = [view(r) for r in s.scalars(q.order_by(EvidenceRequest.created_at)).all()]
    return [v for v in views if status is None or v["status"] == status]


def decline(s: Session, caller: Caller, request_id: str, reason: str) -> EvidenceRequest:
    er = s.get(EvidenceRequest, request_id)
    if er is None or er.institution != caller.member_id:
        raise NotFoundError("no such request addressed to you", code="request_not_found")
    if er.status not in OPEN_STATES:
        raise ConflictError(f"request is {er.status}", code="request_closed")
    er.status, er.decline_reason, er.closed_at = "declined", reason[:500], utcnow()
    claim = s.get(Claim, er.claim_id)
    if claim is not None:
        emit(s, claim.insurer, "request.declined", {"request": er.id, "reason": reason[:500]},
             claim.id)
        _maybe_ready(s, claim)
    return er


def sweep_clocks(s: Session, now: datetime | None = None, limit: int = 500) -> int:
    """Announce, once each, the open requests whose clock has run out: a green-channel
    request ``request.breached`` (it stays open and flagged), a routine one
    ``request.expired``; both to the insurer and to the institution asked. Rows are locked
    (skipped when another gateway holds them), so several sweepers announce each once."""
    now = now or utcnow()
    due = s.scalars(select(EvidenceRequest)
                    .where(EvidenceRequest.status.in_(OPEN_STATES),
                           EvidenceRequest.due_at <= now, EvidenceRequest.overdue_at.is_(None))
                    .order_by(EvidenceRequest.due_at).limit(limit)
                    .with_for_update(skip_locked=True)).all()
    for er in due:
        er.overdue_at = now
        claim = s.get(Claim, er.claim_id)
        if claim is None:
            continue
        kind = "request.breached" if er.urgent else "request.expired"
        data = {"request": er.id, "kinds": json.loads(er.kinds), "urgent": er.urgent,
                "due_at": as_utc(er.due_at).isoformat(), "status": er.status}
        emit(s, claim.insurer, kind, {**data, "institution": hex32(er.institution)},
             claim.id)
        emit(s, er.institution, kind, data, claim.id)
    return len(due)


class ClockSweep:
    """Runs :func:`sweep_clocks` at most every ``interval`` seconds (the push worker calls
    it each cycle), so a breach is announced within about a second."""

    def __init__(self, db: Database, interval: float = 1.0) -> None:
        self.db, self.interval, self._last = db, interval, 0.0

    def __call__(self) -> int:
        if time.monotonic() - self._last < self.interval:
            return 0
        self._last = time.monotonic()
        with self.db.session() as s:
            return sweep_clocks(s)


def cancel_open(s: Session, claim: Claim) -> int:
    """The claim was closed: its open requests are cancelled, and the institutions told so
    (``request.cancelled``) so they stop working on them."""
    open_ones = s.scalars(select(EvidenceRequest).where(
        EvidenceRequest.claim_id == claim.id, EvidenceRequest.status.in_(OPEN_STATES))).all()
    for er in open_ones:
        er.status, er.closed_at = "cancelled", utcnow()
        emit(s, er.institution, "request.cancelled", {"request": er.id}, claim.id)
    return len(open_ones)


def view(er: EvidenceRequest, now: datetime | None = None) -> dict[str, Any]:
    """A request with its response clock; routine requests past due read as expired."""
    now = now or datetime.now(UTC)
    due, created = as_utc(er.due_at), as_utc(er.created_at)
    end = as_utc(er.closed_at) if er.closed_at else now
    status = er.status
    if status in OPEN_STATES and now > due and not er.urgent:
        status = "expired"
    return {
        "id": er.id, "claim_id": er.claim_id, "institution": hex32(er.institution),
        "kinds": json.loads(er.kinds), "status": status, "urgent": er.urgent, "note": er.note,
        "created_at": created.isoformat(), "due_at": due.isoformat(),
        "elapsed_seconds": int((end - created).total_seconds()),
        "remaining_seconds": max(0, int((due - now).total_seconds())) if er.status in
        OPEN_STATES else 0,
        "breached": er.urgent and end > due,
        "decline_reason": er.decline_reason or None,
    }
