"""Withdrawals name the claimant: every consent of a subject to an insurer stops at once.

The claimant withdraws without the insurer's help by signing a
:class:`gateway.core.binding.WithdrawalStatement` with a bound key; the exchange accepts it
from anyone (the signature authenticates it) and the insurer cannot refuse it. A consent
signed before the claimant's latest withdrawal is refused afterwards, so an old artifact or
a second key cannot sidestep it; a fresh consent by a bound key is the claimant consenting
again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core.binding import WithdrawalArtifact, verify_claimant_signature
from gateway.core.consent import ConsentScope
from gateway.core.errors import ForbiddenError, InputError
from gateway.core.types import as_utc, parse_hex32
from gateway.services.bindings import Attesters, require_binding
from gateway.services.ledger import Ledger
from gateway.store.events import emit
from gateway.store.tables import ClaimantWithdrawal, Consent, utcnow

FRESHNESS = timedelta(minutes=10)
"""How far a signed withdrawal's time may be from the exchange's clock."""


def withdraw_subject(s: Session, ledger: Ledger, subject: str, insurer: bytes,
                     entry: dict[str, Any], claimant_key: bytes | None = None
                     ) -> ClaimantWithdrawal:
    """Withdraw every live consent of ``subject`` to ``insurer``, log it, tell the insurer."""
    now = utcnow()
    digest = ledger.append(s, "insurer.consent", subject,
                           {**entry, "withdrawal": {"subject": subject,
                                                    "insurer": "0x" + insurer.hex()}})
    w = ClaimantWithdrawal(subject=subject, insurer=insurer, at=now, claimant_key=claimant_key,
                           digest=digest)
    s.add(w)
    for c in s.scalars(select(Consent).where(Consent.subject == subject,
                                             Consent.insurer == insurer,
                                             Consent.withdrawn_at.is_(None))).all():
        c.withdrawn_at = now
        emit(s, insurer, "consent.withdrawn", {"consent_digest": c.digest.hex(),
                                               "by_claimant": claimant_key is not None},
             c.claim_id)
    return w


def refuse_if_withdrawn(s: Session, subject: str, insurer: bytes, scope: ConsentScope) -> None:
    """403 when the consent was signed (or states no signing time) before the claimant's
    latest withdrawal to this insurer."""
    latest = s.scalar(select(func.max(ClaimantWithdrawal.at)).where(
        ClaimantWithdrawal.subject == subject, ClaimantWithdrawal.insurer == insurer))
    if latest is None:
        return
    if scope.signed_at is None or as_utc(scope.signed_at) <= as_utc(latest):
        raise ForbiddenError("the claimant withdrew consent to this insurer after (or without "
                             "saying when) this consent was signed; a new consent signed by a "
                             "bound key is needed", code="consent_withdrawn")


def withdraw_by_claimant(s: Session, ledger: Ledger, attesters: Attesters,
                         artifact: WithdrawalArtifact) -> ClaimantWithdrawal:
    """A withdrawal signed by the claimant's bound key, from anyone."""
    statement = artifact.parsed
    key = verify_claimant_signature(artifact.claimant_signature, artifact.withdrawal,
                                    "withdrawal")
    if abs(as_utc(statement.withdrawn_at) - datetime.now(UTC)) > FRESHNESS:
        raise InputError("withdrawn_at is more than 10 minutes from now: sign a fresh "
                         "withdrawal", code="withdrawal_stale",
                         loc=["withdrawal", "withdrawn_at"])
    insurer = parse_hex32(statement.insurer)
    require_binding(s, attesters, statement.subject, key, insurer)
    return withdraw_subject(s, ledger, statement.subject, insurer,
                            {"artifact": artifact.model_dump(mode="json")}, key)
