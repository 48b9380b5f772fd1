"""Whether a claim's consent is live: given, not withdrawn, not expired.

Its own module because both the claims service (matching) and the requests service (a new
request needs a live consent) ask, and the claims service already uses the requests one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.types import as_utc
from gateway.store.tables import Consent


def consent_live(c: Consent, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return c.withdrawn_at is None and as_utc(c.expires_at) > now


def live_consent(s: Session, claim_id: str) -> Consent | None:
    c = s.scalar(select(Consent).where(Consent.claim_id == claim_id))
    return c if c is not None and consent_live(c) else None
