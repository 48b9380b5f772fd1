"""Members' events: the tail that misses no late commit (PostgreSQL), server-sent events
over a real HTTP server (own events only, resume, keepalives), and the JSON page for
plain clients."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from gateway.services.push.sse import event_stream
from gateway.store.db import Database
from gateway.store.events import emit
from gateway.store.tables import Claim
from gateway.store.tail import Tail
from tests.services.push_support import (
    HOSPITAL,
    INSURER,
    OTHER,
    Gateway,
    event,
)


@pytest.mark.postgres
def test_tail_returns_events_committed_out_of_id_order(pg_url: str) -> None:
    """PostgreSQL gives out ids at insert time: a later id can commit first (SQLite
    serialises writers, so there ids always commit in order)."""
    db = Database(pg_url)
    tail = Tail(0, grace=timedelta(seconds=30))
    slow = db.sessions()
    slow.begin()
    emit(slow, INSURER, "slow", {})
    slow.flush()  # takes id 1 but does not commit yet
    fast = event(db, INSURER, "fast")
    with db.session() as s:
        assert [e.type for e in tail.poll(s, datetime.now(UTC))] == ["fast"]
    slow.commit()
    slow.close()
    with db.session() as s:
        late = tail.poll(s, datetime.now(UTC))
        assert [e.type for e in late] == ["slow"] and late[0].id < fast
        assert tail.poll(s, datetime.now(UTC)) == []
    settled = Tail(0, grace=timedelta(0))
    with db.session() as s:
        assert len(settled.poll(s, datetime.now(UTC))) == 2
    assert settled.floor == fast  # everything old enough: the floor moves to the top
    db.engine.dispose()


SSE = {"Accept": "text/event-stream"}
"""What EventSource clients send; without it the event routes answer one JSON page."""


def read_events(lines: Iterator[str], n: int) -> list[dict[str, str]]:
    """Parse text/event-stream lines until ``n`` events (comments and retry skipped)."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "id" in fields:
                events.append(fields)
                if len(events) == n:
                    return events
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
    raise AssertionError(f"stream ended after {len(events)} of {n} events")


def test_event_stream_is_the_callers_own_and_resumes(gateway: Gateway) -> None:
    db = gateway.db
    early = event(db, INSURER, "claim.opened")
    client = httpx.Client(base_url=gateway.url, timeout=httpx.Timeout(10.0))
    assert client.get("/v1/events").status_code == 401
    with client.stream("GET", "/v1/events", headers={**gateway.auth(INSURER), **SSE}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        [first] = read_events(lines, 1)
        assert (int(first["id"]), first["event"]) == (early, "claim.opened")
        event(db, OTHER, "not.yours")
        live = event(db, INSURER, "record.received", digest="ab" * 32)
        [second] = read_events(lines, 1)  # the other member's event lies between: skipped
    assert int(second["id"]) == live and second["event"] == "record.received"
    assert json.loads(second["data"])["data"] == {"digest": "ab" * 32}

    resume = {**gateway.auth(INSURER), **SSE, "Last-Event-ID": str(early)}
    with client.stream("GET", "/v1/events", headers=resume) as r:
        [again] = read_events(r.iter_lines(), 1)
    assert int(again["id"]) == live
    client.close()


def test_claim_stream_is_the_insurers_only(gateway: Gateway) -> None:
    db = gateway.db
    claim_id = str(uuid.uuid4())
    with db.session() as s:
        s.add(Claim(id=claim_id, insurer=INSURER, reference="R-9", subject="ab" * 32,
                    policy="P-1", incident_date="2026-01-02", kind="accident"))
    event(db, INSURER, "claim.other", claim_id=str(uuid.uuid4()))
    opened = event(db, INSURER, "claim.opened", claim_id=claim_id)
    client = httpx.Client(base_url=gateway.url, timeout=httpx.Timeout(10.0))
    path = f"/v1/claims/{claim_id}/events"
    refused = client.get(path, headers=gateway.auth(OTHER))  # another insurer: absent
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "claim_not_found"
    hospital = client.get(path, headers=gateway.auth(HOSPITAL))
    assert hospital.status_code == 403 and hospital.json()["error"]["code"] == "role_forbidden"
    missing = client.get(f"/v1/claims/{uuid.uuid4()}/events", headers=gateway.auth(INSURER))
    assert missing.status_code == 404
    with client.stream("GET", path, headers={**gateway.auth(INSURER), **SSE}) as r:
        lines = r.iter_lines()
        [first] = read_events(lines, 1)
        event(db, INSURER, "no.claim")
        requested = event(db, INSURER, "request.opened", claim_id=claim_id)
        [second] = read_events(lines, 1)
    assert [int(first["id"]), int(second["id"])] == [opened, requested]
    client.close()


def test_event_routes_answer_a_json_page_to_plain_clients(gateway: Gateway) -> None:
    """Poll mode: no stream held open; resume_after lets a poller miss nothing."""
    db = gateway.db
    claim_id = str(uuid.uuid4())
    with db.session() as s:
        s.add(Claim(id=claim_id, insurer=INSURER, reference="R-10", subject="ab" * 32,
                    policy="P-1", incident_date="2026-01-02", kind="accident"))
    ids = [event(db, INSURER, "claim.opened", claim_id=claim_id),
           event(db, OTHER, "not.yours"), event(db, INSURER, "record.received"),
           event(db, INSURER, "request.opened", claim_id=claim_id)]
    client = httpx.Client(base_url=gateway.url, timeout=httpx.Timeout(10.0))
    page = client.get("/v1/events", headers=gateway.auth(INSURER), params={"limit": 2})
    assert page.status_code == 200 and page.headers["content-type"] == "application/json"
    body = page.json()
    assert [e["id"] for e in body["events"]] == [ids[0], ids[2]]
    # just written, so not yet settled: resuming from there returns them again, never less
    assert body["resume_after"] <= ids[0] - 1
    rest = client.get("/v1/events", headers=gateway.auth(INSURER),
                      params={"after": ids[2]}).json()
    assert [(e["id"], e["type"]) for e in rest["events"]] == [(ids[3], "request.opened")]
    claim_page = client.get(f"/v1/claims/{claim_id}/events", headers=gateway.auth(INSURER))
    assert [e["id"] for e in claim_page.json()["events"]] == [ids[0], ids[3]]
    bad = client.get("/v1/events", headers=gateway.auth(INSURER), params={"limit": 0})
    assert bad.status_code == 422
    assert client.get(f"/v1/claims/{claim_id}/events",
                      headers=gateway.auth(OTHER)).status_code == 404
    client.close()


def test_stream_sends_keepalives_when_idle(db: Database) -> None:
    async def first_chunks() -> list[str]:
        stream = event_stream(db, INSURER, None, 0, poll=0.01, keepalive=0.05)
        chunks = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        return chunks

    assert anyio.run(first_chunks) == ["retry: 2000\n\n", ": keepalive\n\n", ": keepalive\n\n"]
