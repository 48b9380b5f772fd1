"""Share links: a claimant's capability for one claim's progress board.

The insurer creates a link for its own claim; the token (``cxs_`` + 32 random bytes) is shown
once and stored only as its SHA-256. It opens that claim's progress and nothing else, until it
expires or the insurer revokes it. The page carries it in the URL fragment (``#t=``), which
browsers send to no server and put in no Referer; it reaches the API in an
``Authorization: Share cxs_…`` header.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import AuthError, NotFoundError
from gateway.core.types import as_utc
from gateway.store.tables import Claim, ShareLink, utcnow

SHARE_PREFIX = "cxs_"
SCHEME = "share"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_link(s: Session, claim: Claim, days: int) -> tuple[ShareLink, str]:
    """A new link to ``claim``'s progress, valid ``days``; returns it and its token (once)."""
    token = SHARE_PREFIX + secrets.token_urlsafe(32)
    link = ShareLink(id=str(uuid.uuid4()), claim_id=claim.id, insurer=claim.insurer,
                     token_hash=_hash(token), created_at=utcnow(),
                     expires_at=utcnow() + timedelta(days=days))
    s.add(link)
    return link, token


def links_of(s: Session, claim: Claim) -> list[ShareLink]:
    return list(s.scalars(select(ShareLink).where(ShareLink.claim_id == claim.id)
                          .order_by(ShareLink.created_at)))


def revoke_link(s: Session, claim: Claim, share_id: str) -> ShareLink:
    """Revoke one of ``claim``'s links (again is a no-op); another claim's is a 404."""
    link = s.get(ShareLink, share_id)
    if link is None or link.claim_id != claim.id:
        raise NotFoundError("no such share link for this claim", code="share_not_found")
    if link.revoked_at is None:
        link.revoked_at = utcnow()
    return link


def link_view(link: ShareLink) -> dict[str, Any]:
    return {"id": link.id, "claim_id": link.claim_id,
            "created_at": as_utc(link.created_at).isoformat(),
            "expires_at": as_utc(link.expires_at).isoformat(),
            "revoked_at": as_utc(link.revoked_at).isoformat() if link.revoked_at else None}


def resolve(s: Session, header: str | None, now: datetime | None = None) -> Claim:
    """The claim an ``Authorization: Share cxs_…`` header opens, or 401 saying why not."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != SCHEME or not token.startswith(SHARE_PREFIX):
        raise AuthError("send the link's token as `Authorization: Share cxs_…`",
                        code="missing_share_token")
    link = s.scalar(select(ShareLink).where(ShareLink.token_hash == _hash(token)))
    if link is None:
        raise AuthError("this progress link is not known", code="share_unknown")
    if link.revoked_at is not None:
        raise AuthError("this progress link was withdrawn by the insurer; ask them for a new "
                        "one", code="share_revoked")
    if as_utc(link.expires_at) <= (now or utcnow()):
        raise AuthError("this progress link has expired; ask the insurer for a new one",
                        code="share_expired")
    claim = s.get(Claim, link.claim_id)
    if claim is None:
        raise AuthError("this progress link is not known", code="share_unknown")
    return claim
