"""Server-sent event streams of a member's events (WHATWG HTML, "Server-sent events").

Each event is framed as ``id: N``, ``event: TYPE`` and one ``data:`` line of JSON; a client
that reconnects sends ``Last-Event-ID`` and gets what followed. Delivery is at least once
(an event committed out of id order can follow a higher id): clients deduplicate by id.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import anyio

from gateway.store.db import Database
from gateway.store.events import event_dict
from gateway.store.tables import Event
from gateway.store.tail import Tail


def sse_text(e: Event) -> str:
    """One event in text/event-stream framing (``id``, ``event``, one ``data`` line)."""
    data = json.dumps(event_dict(e), separators=(",", ":"), ensure_ascii=False)
    kind = "".join(c for c in e.type if c not in "\r\n")
    return f"id: {e.id}\nevent: {kind}\ndata: {data}\n\n"


def member_tail(member_id: bytes, claim_id: str | None, after: int) -> Tail:
    """A reader of the member's events (optionally one claim's) after id ``after``."""
    where = [Event.member_id == member_id]
    if claim_id is not None:
        where.append(Event.claim_id == claim_id)
    return Tail(after, where=where)


def poll_once(db: Database, member_id: bytes, claim_id: str | None, after: int,
              limit: int) -> tuple[list[dict[str, object]], int]:
    """Events after ``after`` (at most ``limit``) and the id to resume from: the tail's floor,
    below which every event is settled, so a client resuming there misses none (and skips the
    ids it already has)."""
    tail = member_tail(member_id, claim_id, after)
    tail.batch = limit
    with db.session() as s:
        events = tail.poll(s, datetime.now(UTC))
    return [event_dict(e) for e in events], tail.floor


def _read(db: Database, tail: Tail) -> list[str]:
    with db.session() as s:
        return [sse_text(e) for e in tail.poll(s, datetime.now(UTC))]


async def event_stream(db: Database, member_id: bytes, claim_id: str | None,
                       last_event_id: int, *, poll: float = 0.2,
                       keepalive: float = 15.0) -> AsyncGenerator[str, None]:
    """The member's events after ``last_event_id`` (optionally one claim's), then live ones.

    Polls the events table (one indexed query per ``poll`` seconds and client); a comment
    line every ``keepalive`` seconds keeps proxies from closing an idle stream.
    """
    tail = member_tail(member_id, claim_id, last_event_id)
    yield "retry: 2000\n\n"
    quiet_since = time.monotonic()
    while True:
        chunks = await anyio.to_thread.run_sync(_read, db, tail)
        for chunk in chunks:
            yield chunk
        if chunks:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= keepalive:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
        if not tail.more:
            await anyio.sleep(poll)


