"""A claim's progress as its claimant sees it: the board a share link opens.

Steps only (opened, each request with its institution's name, kinds and response clock, each
record received with its kind and issuer's name, verified, anchored, ready, closed) and the
typical time to ready of the insurer's closed claims of the same kind. Nothing else leaves
here: no payloads, digests, subject, policy, reference or outcome, and no other claim.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core.errors import AuthError, ClaimxError
from gateway.core.types import MemberId, as_utc
from gateway.services.requests import view as request_view
from gateway.store.tables import Claim, Event, EvidenceRequest

TYPICAL_MIN_CLAIMS = 5
"""Fewer closed claims than this say too little (and too much about each): no typical time."""
TYPICAL_SAMPLE = 500
STEPS = {"record.received": "received", "record.verified": "verified",
         "record.anchored": "anchored", "claim.ready": "ready", "claim.closed": "closed"}

NameOf = Callable[[MemberId], str | None]


def names_from(lookup: Callable[[MemberId], Any]) -> NameOf:
    """Member names from a directory lookup; None when unknown or the chain does not answer
    (the board still shows the step, without the name)."""
    def name(member: MemberId) -> str | None:
        try:
            caller = lookup(member)
        except ClaimxError:
            return None
        return None if caller is None else str(caller.name)
    return name


def progress(s: Session, claim: Claim, name_of: NameOf,
             now: datetime | None = None) -> dict[str, Any]:
    """The claimant's view of ``claim`` now."""
    now = now or datetime.now(UTC)
    steps: list[dict[str, Any]] = [{"step": "opened", "at": _iso(claim.created_at)}]
    for er in s.scalars(select(EvidenceRequest).where(EvidenceRequest.claim_id == claim.id)):
        v = request_view(er, now)
        steps.append({"step": "requested", "at": v["created_at"],
                      "institution": name_of(MemberId(er.institution)), "kinds": v["kinds"],
                      "status": v["status"], "urgent": v["urgent"], "due_at": v["due_at"],
                      "remaining_seconds": v["remaining_seconds"]})
    kinds: dict[str, str] = {}
    for e in s.scalars(select(Event).where(Event.claim_id == claim.id,
                                           Event.member_id == claim.insurer,
                                           Event.type.in_(STEPS)).order_by(Event.id)):
        steps.append(_step(e, kinds, name_of))
    steps.sort(key=lambda st: datetime.fromisoformat(st["at"]))
    current = ("closed" if claim.status == "closed" else
               "ready" if any(st["step"] == "ready" for st in steps) else steps[-1]["step"])
    return {"status": current, "kind": claim.kind, "opened_at": _iso(claim.created_at),
            "steps": steps, "typical": typical_time_to_ready(s, claim)}


def _step(e: Event, kinds: dict[str, str], name_of: NameOf) -> dict[str, Any]:
    data = json.loads(e.data)
    step: dict[str, Any] = {"step": STEPS[e.type], "at": _iso(e.created_at)}
    if e.type == "record.received":
        kinds[data["digest"]] = data["kind"]
        issuer = bytes.fromhex(data["issuer"].removeprefix("0x"))
        step |= {"kind": data["kind"], "issuer": name_of(MemberId(issuer))}
    elif e.type in ("record.verified", "record.anchored"):
        step["kind"] = kinds.get(data.get("digest", ""))
    return step


def typical_time_to_ready(s: Session, claim: Claim) -> dict[str, Any] | None:
    """Median seconds from opened to ready over the insurer's closed claims of this kind
    (the latest ``TYPICAL_SAMPLE``), or None below ``TYPICAL_MIN_CLAIMS``."""
    rows = s.execute(
        select(Claim.created_at, func.min(Event.created_at))
        .join(Event, Event.claim_id == Claim.id)
        .where(Claim.insurer == claim.insurer, Claim.kind == claim.kind,
               Claim.status == "closed", Event.type == "claim.ready",
               Event.member_id == claim.insurer)
        .group_by(Claim.id, Claim.created_at)
        .order_by(Claim.created_at.desc()).limit(TYPICAL_SAMPLE)).all()
    seconds = [(as_utc(ready) - as_utc(opened)).total_seconds() for opened, ready in rows]
    if len(seconds) < TYPICAL_MIN_CLAIMS:
        return None
    return {"median_seconds": round(statistics.median(seconds)), "claims": len(seconds)}


def _iso(at: datetime) -> str:
    return as_utc(at).isoformat()


def snapshot(db: Any, header: str | None, name_of: NameOf) -> dict[str, Any]:
    """The progress the share token in ``header`` opens now (401 when it no longer does)."""
    from gateway.services.share import resolve

    with db.session() as s:
        return progress(s, resolve(s, header), name_of)


async def progress_stream(db: Any, header: str | None, name_of: NameOf, *, poll: float = 1.0,
                          keepalive: float = 15.0) -> AsyncGenerator[str, None]:
    """Server-sent events: the whole board as ``event: progress`` whenever it changes; the
    token is checked again each time, so an expired or revoked link ends the stream with
    ``event: refused``."""
    last, quiet_since = "", time.monotonic()
    yield "retry: 3000\n\n"
    while True:
        try:
            board = await anyio.to_thread.run_sync(snapshot, db, header, name_of)
        except AuthError as exc:
            yield f"event: refused\ndata: {json.dumps({'error': exc.to_dict()})}\n\n"
            return
        text = json.dumps(board, separators=(",", ":"), ensure_ascii=False)
        if text != last:
            last, quiet_since = text, time.monotonic()
            yield f"event: progress\ndata: {text}\n\n"
        elif time.monotonic() - quiet_since >= keepalive:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        await anyio.sleep(poll)
