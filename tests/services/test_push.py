"""Push: signed webhooks against a real local HTTP receiver, retries, parking, replay, fan-out,
and server-sent events over a real HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import inspect, select

from gateway.api.push import router
from gateway.config import Settings
from gateway.core.errors import ClaimxError, ConflictError, InputError, VerificationError
from gateway.core.types import Role, member_id
from gateway.core.webhook import sign, verify_signature
from gateway.services.auth import Caller, issue_credential
from gateway.services.push import endpoints
from gateway.services.push.destinations import Destinations
from gateway.services.push.sse import event_stream
from gateway.services.push.worker import PushWorker
from gateway.store.db import Database, downgrade, upgrade
from gateway.store.events import emit
from gateway.store.tables import Base, Claim, Delivery, Event, PushCursor, WebhookEndpoint
from gateway.store.tail import Tail
from gateway.store.vault import DEV_MASTER_KEY, Vault

INSURER = member_id("insurer-a")
OTHER = member_id("insurer-b")
HOSPITAL = member_id("hospital-c")
BASE = 2.0
"""Backoff base in (fake-clock) seconds: the clock is advanced, never waited for (and stays
within the receiver's 300 s signature tolerance)."""


def no_dns(host: str, port: int) -> list[str]:
    """A resolver that knows no names: tests never send a DNS query off this machine."""
    raise OSError(f"tests resolve no names ({host})")


LOCAL = Destinations(["127.0.0.1"], resolver=no_dns)
"""The receivers here listen on 127.0.0.1, allowed as a gateway allows its dev receivers."""
VAULT = Vault(DEV_MASTER_KEY)


# --- a real webhook receiver ------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """An HTTP server that checks signatures like an insurer's system would, and can be told
    to answer 500 a number of times."""

    secret: str = ""
    fail: int = 0
    got: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/claimx-hook"


def _handler(rec: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                verify_signature(rec.secret, self.headers.get("X-Claimx-Signature"), body)
                ok = True
            except VerificationError:
                ok = False
            rec.got.append(Received(dict(self.headers.items()), body, ok))
            code = 401 if not ok else 500 if rec.fail > 0 else 204
            rec.fail -= code == 500
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    rec.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    thread = threading.Thread(target=rec.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


class Clock:
    """A settable unix clock, so backoff is checked by moving time rather than waiting."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.engine.dispose()


def worker(db: Database, clock: Callable[[], float], max_attempts: int = 3) -> PushWorker:
    settings = Settings(webhook_backoff_seconds=BASE, webhook_max_attempts=max_attempts,
                        webhook_timeout_seconds=5.0, webhook_allow_hosts=["127.0.0.1"])
    return PushWorker(db, settings, clock=clock, destinations=LOCAL)


def endpoint(db: Database, member: bytes, url: str) -> tuple[str, str]:
    with db.session() as s:
        ep, secret = endpoints.register_endpoint(s, member, url, destinations=LOCAL,
                                                 vault=VAULT)
        return ep.id, secret


def event(db: Database, member: bytes, type_: str = "record.received",
          claim_id: str | None = None, **data: Any) -> int:
    with db.session() as s:
        emit(s, member, type_, data or {"n": 1}, claim_id=claim_id)
        s.flush()
        return int(s.scalars(select(Event.id).order_by(Event.id.desc()).limit(1)).one())


def deliveries(db: Database) -> list[Delivery]:
    with db.session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def at(clock: Clock, seconds: float = 0.0) -> datetime:
    return datetime.fromtimestamp(clock.t + seconds, UTC)


def aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# --- webhooks ---------------------------------------------------------------------------


def test_signed_delivery_reaches_the_receiver(db: Database, receiver: Receiver) -> None:
    ep_id, receiver.secret = endpoint(db, INSURER, receiver.url)
    event_id = event(db, INSURER, "claim.opened", reference="R-1")
    w = worker(db, Clock())
    assert w.fan_out() == 1
    assert w.deliver_due() == 1
    [got] = receiver.got
    assert got.verified
    body = json.loads(got.body)
    [d] = deliveries(db)
    assert body["id"] == d.id and body["event"]["id"] == event_id
    assert body["event"]["type"] == "claim.opened" and body["event"]["data"] == {"reference":
                                                                                 "R-1"}
    assert got.headers["X-Claimx-Event"] == "claim.opened"
    assert got.headers["X-Claimx-Delivery"] == str(d.id)
    assert got.headers["Content-Type"] == "application/json"
    assert (d.status, d.attempts, d.endpoint_id, d.last_error) == ("delivered", 1, ep_id, None)
    assert w.deliver_due() == 0 and len(receiver.got) == 1  # delivered once only


def test_signature_check_refuses_tampering_wrong_secret_and_stale_times() -> None:
    secret, body, t = "whsec_test", b'{"id":1}', int(time.time())
    header = sign(secret, body, t)
    verify_signature(secret, header, body)
    verify_signature(secret, f"t={t},v1={'0' * 64},{header.split(',')[1]}", body)
    for bad_secret, bad_header, bad_body, code in [
            (secret, header, b'{"id":2}', "bad_signature"),
            ("whsec_other", header, body, "bad_signature"),
            (secret, sign(secret, body, t - 301), body, "stale_signature"),
            (secret, f"v1={header.split('v1=')[1]}", body, "bad_signature"),
            (secret, None, body, "bad_signature")]:
        with pytest.raises(VerificationError) as err:
            verify_signature(bad_secret, bad_header, bad_body)
        assert err.value.code == code


def test_retry_with_exponential_backoff_then_success(db: Database, receiver: Receiver) -> None:
    _, receiver.secret = endpoint(db, INSURER, receiver.url)
    receiver.fail = 2
    event(db, INSURER)
    clock = Clock()
    w = worker(db, clock, max_attempts=5)
    w.fan_out()
    assert w.deliver_due() == 0
    [d] = deliveries(db)
    assert (d.status, d.attempts, d.last_error) == ("pending", 1, "HTTP 500")
    assert aware(d.next_attempt_at) == at(clock, BASE)

    clock.advance(BASE - 1)
    assert w.deliver_due() == 0 and len(receiver.got) == 1  # not due yet
    clock.advance(1)
    assert w.deliver_due() == 0
    [d] = deliveries(db)
    assert d.attempts == 2 and aware(d.next_attempt_at) == at(clock, 2 * BASE)

    clock.advance(2 * BASE - 1)
    assert w.deliver_due() == 0 and len(receiver.got) == 2
    clock.advance(1)
    assert w.deliver_due() == 1
    [d] = deliveries(db)
    assert (d.status, d.attempts, d.last_error) == ("delivered", 3, None)
    assert len(receiver.got) == 3 and all(r.verified for r in receiver.got)
    assert {r.headers["X-Claimx-Delivery"] for r in receiver.got} == {str(d.id)}


def test_parked_after_max_attempts_then_replayed(db: Database, receiver: Receiver) -> None:
    _, receiver.secret = endpoint(db, INSURER, receiver.url)
    receiver.fail = 100
    event(db, INSURER)
    clock = Clock()
    w = worker(db, clock, max_attempts=3)
    w.fan_out()
    for _ in range(3):
        w.deliver_due()
        clock.advance(8 * BASE)
    [d] = deliveries(db)
    assert (d.status, d.attempts, d.last_error) == ("parked", 3, "HTTP 500")
    clock.advance(50 * BASE)
    assert w.deliver_due() == 0 and len(receiver.got) == 3  # parked: no more attempts

    with db.session() as s:
        with pytest.raises(ClaimxError) as err:
            endpoints.replay(s, d.id, OTHER)
        assert err.value.code == "delivery_not_found"
    receiver.fail = 0
    with db.session() as s:
        endpoints.replay(s, d.id, INSURER, now=at(clock))
    with db.session() as s, pytest.raises(ConflictError):
        endpoints.replay(s, d.id, INSURER)  # pending now, not parked
    assert w.deliver_due() == 1
    [d] = deliveries(db)
    assert (d.status, d.attempts) == ("delivered", 1)
    assert len(receiver.got) == 4 and receiver.got[-1].verified


def test_unreachable_receiver_is_a_failed_attempt(db: Database) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    endpoint(db, INSURER, f"http://127.0.0.1:{port}/hook")
    event(db, INSURER)
    w = worker(db, Clock(), max_attempts=1)
    w.fan_out()
    assert w.deliver_due() == 0
    [d] = deliveries(db)
    assert (d.status, d.attempts, d.last_error) == ("parked", 1, "connect_failed")


def test_fan_out_reaches_only_the_events_member(db: Database) -> None:
    a1, _ = endpoint(db, INSURER, "https://a.example/1")
    a2, _ = endpoint(db, INSURER, "https://a.example/2")
    b1, _ = endpoint(db, OTHER, "https://b.example/1")
    ea, eb, ec = event(db, INSURER), event(db, OTHER), event(db, HOSPITAL)
    w = worker(db, Clock())
    assert w.fan_out() == 3
    pairs = {(d.endpoint_id, d.event_id) for d in deliveries(db)}
    assert pairs == {(a1, ea), (a2, ea), (b1, eb)}
    assert all(d.event_id != ec for d in deliveries(db))
    assert w.fan_out() == 0
    assert worker(db, Clock()).fan_out() == 0  # a restarted worker does not fan out again

    with db.session() as s:
        endpoints.remove_endpoint(s, INSURER, a2)
        with pytest.raises(ClaimxError) as err:
            endpoints.remove_endpoint(s, OTHER, a1)  # not OTHER's endpoint
        assert err.value.code == "webhook_not_found"
    late, _ = endpoint(db, INSURER, "https://a.example/late")
    ea2 = event(db, INSURER)
    assert w.fan_out() == 2
    new = {(d.endpoint_id, d.event_id) for d in deliveries(db)} - pairs
    assert new == {(a1, ea2), (late, ea2)}  # the late endpoint gets only later events
    with db.session() as s:
        assert s.get(PushCursor, 1) is not None


def test_endpoint_urls_are_checked(db: Database) -> None:
    with db.session() as s:
        for url in ["ftp://x.example/", "file:///etc/passwd", "https://", "not a url",
                    "https://user:pw@x.example/", "http://x.example:99999/", "javascript:1"]:
            with pytest.raises(InputError) as err:
                endpoints.register_endpoint(s, INSURER, url, destinations=LOCAL, vault=VAULT)
            assert err.value.code == "bad_url", url
        for i in range(endpoints.MAX_ENDPOINTS):
            endpoints.register_endpoint(s, INSURER, f"https://x.example/{i}",
                                        destinations=LOCAL, vault=VAULT)
        with pytest.raises(ConflictError):
            endpoints.register_endpoint(s, INSURER, "https://x.example/one-too-many",
                                        destinations=LOCAL, vault=VAULT)


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


def test_migrations_0003_to_0005_apply_and_revert(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diffs == []  # models and migrations agree
        push_tables = {"webhook_endpoints", "webhook_deliveries", "push_cursor"}
        with database.session() as s:
            assert s.get(PushCursor, 1) is not None
        downgrade(database.engine, "0004")
        columns = {c["name"] for c in inspect(database.engine).get_columns("claims")}
        assert "outcome" not in columns and "closed_at" not in columns
        downgrade(database.engine, "0003")
        columns = {c["name"] for c in inspect(database.engine).get_columns("evidence_requests")}
        assert "overdue_at" not in columns and "due_at" in columns
        downgrade(database.engine, "0002")
        assert not push_tables & set(inspect(database.engine).get_table_names())
        upgrade(database.engine)
        assert push_tables <= set(inspect(database.engine).get_table_names())
        columns = {c["name"] for c in inspect(database.engine).get_columns("evidence_requests")}
        assert "overdue_at" in columns
        assert {"outcome", "closed_at"} <= {c["name"] for c in
                                            inspect(database.engine).get_columns("claims")}
    finally:
        database.engine.dispose()


# --- HTTP: webhook routes and server-sent events ------------------------------------------


class Directory:
    """Stands in for the chain-backed member directory: role and standing by member id."""

    def __init__(self, *callers: Caller) -> None:
        self.callers = {c.member_id: c for c in callers}

    def lookup(self, member: bytes) -> Caller | None:
        return self.callers.get(member)


@dataclass
class Gateway:
    url: str
    db: Database
    tokens: dict[bytes, str]

    def auth(self, member: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[member]}"}


def _app(db: Database) -> FastAPI:
    app = FastAPI()
    app.state.services = SimpleNamespace(db=db, vault=VAULT,
                                         push=SimpleNamespace(destinations=LOCAL),
                                         members=Directory(
        Caller(INSURER, Role.INSURER, "insurer-a"), Caller(OTHER, Role.INSURER, "insurer-b"),
        Caller(HOSPITAL, Role.HOSPITAL, "hospital-c")))

    @app.exception_handler(ClaimxError)
    async def _error(_request: Request, exc: ClaimxError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    app.include_router(router)
    return app


@pytest.fixture
def gateway(db: Database) -> Iterator[Gateway]:
    """The push routes served by uvicorn on a free port (a real HTTP server, so streams
    arrive as they are written)."""
    with db.session() as s:
        tokens: dict[bytes, str] = {m: issue_credential(s, m) for m in (INSURER, OTHER,
                                                                         HOSPITAL)}
    config = uvicorn.Config(_app(db), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Gateway(f"http://127.0.0.1:{port}", db, tokens)
    server.should_exit = True
    thread.join(10)


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


def test_webhook_routes(gateway: Gateway, receiver: Receiver) -> None:
    client = httpx.Client(base_url=gateway.url, timeout=httpx.Timeout(10.0))
    a, b = gateway.auth(INSURER), gateway.auth(OTHER)
    assert client.post("/v1/webhooks", json={"url": receiver.url}).status_code == 401
    bad = client.post("/v1/webhooks", json={"url": "gopher://x"}, headers=a)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_url"
    for url in ["https://169.254.169.254/latest/meta-data/", "https://0x0a000001:5432/",
                "http://hooks.example.com/"]:  # the cloud metadata service, PostgreSQL, http
        inside = client.post("/v1/webhooks", json={"url": url}, headers=a)
        assert inside.status_code == 422, url
        error = inside.json()["error"]
        assert error["code"] == "webhook_destination_forbidden" and error["loc"] == ["url"]
    made = client.post("/v1/webhooks", json={"url": receiver.url}, headers=a)
    assert made.status_code == 201
    hook = made.json()
    assert hook["secret"].startswith("whsec_") and hook["url"] == receiver.url
    listed = client.get("/v1/webhooks", headers=a).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    assert client.get("/v1/webhooks", headers=b).json() == []

    receiver.secret, receiver.fail = hook["secret"], 1
    event(gateway.db, INSURER, "record.received")
    w = worker(gateway.db, time.time, max_attempts=1)  # the route replays at real time
    w.fan_out()
    w.deliver_due()
    parked = client.get("/v1/webhooks/deliveries", params={"status": "parked"},
                        headers=a).json()
    assert [(d["status"], d["event_type"], d["last_error"]) for d in parked] == [
        ("parked", "record.received", "HTTP 500")]
    assert client.get("/v1/webhooks/deliveries", headers=b).json() == []
    replay = f"/v1/webhooks/deliveries/{parked[0]['id']}/replay"
    assert client.post(replay, headers=b).status_code == 404
    again = client.post(replay, headers=a)
    assert again.status_code == 200 and again.json()["status"] == "pending"
    assert client.post(replay, headers=a).status_code == 409
    assert w.deliver_due() == 1 and receiver.got[-1].verified
    assert client.get("/v1/webhooks/deliveries", params={"status": "delivered"},
                      headers=a).json()[0]["id"] == parked[0]["id"]

    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=b).status_code == 404
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=a).status_code == 204
    assert client.get("/v1/webhooks", headers=a).json() == []
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=a).status_code == 404
    client.close()


def test_stream_sends_keepalives_when_idle(db: Database) -> None:
    async def first_chunks() -> list[str]:
        stream = event_stream(db, INSURER, None, 0, poll=0.01, keepalive=0.05)
        chunks = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        return chunks

    assert anyio.run(first_chunks) == ["retry: 2000\n\n", ": keepalive\n\n", ": keepalive\n\n"]


def test_worker_thread_delivers(db: Database, receiver: Receiver) -> None:
    _, receiver.secret = endpoint(db, INSURER, receiver.url)
    w = worker(db, Clock())
    w.start()
    try:
        event(db, INSURER)
        for _ in range(500):  # a bound on polling, not a timing assertion
            if receiver.got:
                break
            time.sleep(0.02)
    finally:
        w.stop()
    assert len(receiver.got) == 1 and receiver.got[0].verified
    with db.session() as s:
        assert s.scalar(select(WebhookEndpoint.active)) is True


def test_worker_runs_its_cycle_hook_before_fanning_out(db: Database) -> None:
    """The request clock sweep rides on the push loop: its events are sent the same cycle."""
    ran = threading.Event()
    w = PushWorker(db, Settings(webhook_poll_seconds=0.05), destinations=LOCAL,
                   on_cycle=ran.set)
    w.start()
    try:
        assert ran.wait(10)
    finally:
        w.stop()
