"""Signed webhooks against a real local HTTP receiver: signatures, retries with backoff,
parking and replay, fan-out to the event's member, endpoint rules, the webhook routes
and the worker thread."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from gateway.config import Settings
from gateway.core.errors import ClaimxError, ConflictError, InputError, VerificationError
from gateway.core.webhook import sign, verify_signature
from gateway.services.push import endpoints
from gateway.services.push.worker import PushWorker
from gateway.store.db import Database
from gateway.store.tables import PushCursor, WebhookEndpoint
from tests.services.push_support import (
    BASE,
    HOSPITAL,
    INSURER,
    LOCAL,
    OTHER,
    VAULT,
    Clock,
    Gateway,
    Receiver,
    at,
    aware,
    deliveries,
    endpoint,
    event,
    worker,
)


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
