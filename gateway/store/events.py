"""Events addressed to a member: the claim timeline, and what webhooks and SSE deliver."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from gateway.store.tables import Event


def emit(s: Session, member_id: bytes, type_: str, data: dict[str, Any],
         claim_id: str | None = None) -> None:
    """Record an event for ``member_id`` in the caller's transaction (so it is never sent for
    a change that rolled back)."""
    s.add(Event(member_id=member_id, claim_id=claim_id, type=type_,
                data=json.dumps(data, separators=(",", ":"), ensure_ascii=False)))


def event_dict(e: Event) -> dict[str, Any]:
    return {"id": e.id, "type": e.type, "claim_id": e.claim_id,
            "at": e.created_at.isoformat(), "data": json.loads(e.data)}
