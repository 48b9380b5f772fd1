"""Who may read what, and the record of every payload read.

Metadata and proofs are open to every authenticated member. Payloads are read by their
issuer, or by an insurer whose claim holds the record under a live consent; the exchange's
own consent and read entries, and claimant key bindings (a pseudonym and a public key, no
personal data), also by auditors (gateway.verify.audit proves access with them). Each
payload read is stored and appended to the evidence log, signed by the exchange, naming the
member, the record, the claim and the consent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import ConflictError, ForbiddenError, NotFoundError
from gateway.core.packet import EXCHANGE_KINDS, IDENTITY_KINDS
from gateway.core.types import Role, hex32
from gateway.services.auth import Caller
from gateway.services.consent import live_consent
from gateway.services.ledger import Ledger
from gateway.store.tables import AccessLog, Claim, ClaimRecord, Consent, IdentityBinding, Record
from gateway.store.vault import Vault, envelope_json


def find_record(s: Session, digest: bytes) -> Record:
    rec = s.scalar(select(Record).where(Record.digest == digest))
    if rec is None:
        raise NotFoundError("no record with this digest", code="record_not_found")
    return rec


def authorise_payload(s: Session, caller: Caller, rec: Record,
                      claim_id: str | None = None) -> tuple[str | None, Consent | None]:
    """The claim and consent under which ``caller`` may read ``rec``'s payload, or 403."""
    if caller.member_id == rec.issuer:
        return None, None
    if rec.kind in EXCHANGE_KINDS | IDENTITY_KINDS and caller.role in (Role.AUDITOR,
                                                                       Role.OPERATOR):
        return None, None  # consents, reads, bindings hold no evidence: auditors prove with them
    if caller.role != Role.INSURER:
        raise ForbiddenError(f"{caller.role.name.lower()} members read metadata and proofs, "
                             "not payloads", code="payload_forbidden")
    if rec.rejected_at is not None:
        raise ConflictError("record was rejected when it was to be logged (its key was no "
                            "longer valid): it is no evidence", code="record_rejected",
                            reject_code=rec.reject_code)
    query = (select(Claim.id).join(ClaimRecord, ClaimRecord.claim_id == Claim.id)
             .where(ClaimRecord.record_id == rec.id, Claim.insurer == caller.member_id))
    if claim_id is not None:
        query = query.where(Claim.id == claim_id)
    for cid in s.scalars(query):
        consent = live_consent(s, cid)
        if consent is not None and not _binding_revoked(s, consent):
            return cid, consent
    raise ForbiddenError("no live consent of yours covers this record (none given, expired or "
                         "withdrawn)", code="no_consent")


def _binding_revoked(s: Session, consent: Consent) -> bool:
    """A consent whose claimant key binding was revoked (or rejected) no longer counts."""
    if consent.binding_digest is None:
        return False
    b = s.get(IdentityBinding, consent.binding_digest)
    return b is None or b.revoked_at is not None


def read_payload(s: Session, vault: Vault, ledger: Ledger, caller: Caller, rec: Record,
                 claim_id: str | None = None) -> dict[str, Any]:
    """Authorise, log (database and evidence log), then decrypt the envelope."""
    cid, consent = authorise_payload(s, caller, rec, claim_id)
    envelope = envelope_json(vault, s, rec)
    entry = ledger.append(s, "exchange.access", rec.subject, {
        "member": caller.hex, "record": rec.digest.hex(), "claim": cid,
        "consent": consent.digest.hex() if consent else None})
    s.add(AccessLog(member_id=caller.member_id, record_digest=rec.digest, claim_id=cid,
                    consent_id=consent.id if consent else None, entry_digest=entry))
    return envelope


def access_entries(s: Session, digest: bytes) -> list[dict[str, Any]]:
    rows = s.scalars(select(AccessLog).where(AccessLog.record_digest == digest)
                     .order_by(AccessLog.id)).all()
    return [{"member": hex32(r.member_id), "claim_id": r.claim_id,
             "consent_id": r.consent_id, "at": r.at.isoformat(),
             "log_entry": r.entry_digest.hex()} for r in rows]
