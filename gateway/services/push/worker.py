"""The push worker: fans members' events out to webhook deliveries and sends them, signed.

Webhook bodies are signed with HMAC-SHA256 (RFC 2104) in the widely used timestamped form
``X-Claimx-Signature: t=<unix seconds>,v1=<hex HMAC(secret, "<t>.<body>")>``; a receiver
checks it with :func:`verify_signature`, which also refuses stale timestamps (replays).
Failed deliveries are retried after ``base * 2**(attempts-1)`` seconds and parked after
``webhook_max_attempts``; a parked delivery can be replayed. Streams follow the WHATWG HTML
"server-sent events" format and resume from ``Last-Event-ID``. Delivery is at least once in
both channels: receivers deduplicate by event id (and webhook delivery id). A receiver gets
its first attempts in event order; a retried event can arrive after later ones, so
receivers that care order by event id.

Each attempt goes only where :mod:`gateway.services.push.destinations` allows, to the
address it checked; a refused attempt records ``destination_forbidden`` and a failed one
``connect_failed``, whatever the cause, so ``last_error`` never maps the network behind.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.core.errors import ClaimxError
from gateway.core.webhook import sign
from gateway.services.push.destinations import Destinations
from gateway.store.db import Database
from gateway.store.events import event_dict
from gateway.store.tables import Delivery, Event, PushCursor, WebhookEndpoint
from gateway.store.tail import Tail
from gateway.store.vault import Vault

log = logging.getLogger("claimx.push")
CONNECT_TRIES = 2
"""Addresses of one name tried per attempt (e.g. its IPv6 then its IPv4 address): a name
with many unreachable addresses cannot hold a worker for long."""


@dataclass(frozen=True)
class Job:
    """A claimed delivery, ready to send without touching the database."""

    delivery_id: int
    event_id: int
    event_type: str
    url: str
    secret: str | None
    """None when the stored secret does not decrypt (another master key): not sent."""
    body: bytes


def _claim_due(s: Session, vault: Vault, now: datetime, limit: int,
               lease: timedelta) -> list[Job]:
    """Claim up to ``limit`` due deliveries: their next attempt moves ``lease`` ahead, so a
    concurrent worker skips them and a crashed one's are retried after the lease."""
    rows = s.execute(
        select(Delivery, WebhookEndpoint, Event)
        .join(WebhookEndpoint, WebhookEndpoint.id == Delivery.endpoint_id)
        .join(Event, Event.id == Delivery.event_id)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)).all()
    jobs = []
    for d, endpoint, event in rows:
        d.next_attempt_at = now + lease
        body = json.dumps({"id": d.id, "event": event_dict(event)}, separators=(",", ":"),
                          ensure_ascii=False).encode()
        jobs.append(Job(d.id, event.id, event.type, endpoint.url, _secret(vault, endpoint),
                        body))
    return jobs


def _secret(vault: Vault, endpoint: WebhookEndpoint) -> str | None:
    try:
        return vault.open_secret(endpoint.secret_ct, endpoint.id)
    except ClaimxError:
        log.error("webhook endpoint %s: secret does not decrypt with this master key",
                  endpoint.id)
        return None


def _fan_out(s: Session, events: Sequence[Event], now: datetime) -> int:
    """One pending delivery per active endpoint of each event's member, registered before
    the event; pairs that already exist are left alone (so fanning out twice is harmless)."""
    if not events:
        return 0
    members = {e.member_id for e in events}
    endpoints = s.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.member_id.in_(members), WebhookEndpoint.active)).all()
    pairs = select(Delivery.endpoint_id, Delivery.event_id).where(
        Delivery.event_id.in_([e.id for e in events]))
    existing = {(ep, ev) for ep, ev in s.execute(pairs)}
    made = 0
    for e in events:
        for ep in endpoints:
            if (ep.member_id == e.member_id and (ep.id, e.id) not in existing
                    and ep.created_at <= e.created_at):
                s.add(Delivery(endpoint_id=ep.id, event_id=e.id, status="pending", attempts=0,
                               next_attempt_at=now))
                made += 1
    return made


def _settle(d: Delivery, error: str | None, now: datetime, *, base: float,
           max_attempts: int) -> None:
    """Record one attempt: delivered, retried after exponential backoff, or parked."""
    d.attempts += 1
    if error is None:
        d.status, d.delivered_at, d.last_error = "delivered", now, None
        return
    d.last_error = error[:200]
    if d.attempts >= max_attempts:
        d.status = "parked"
    else:
        d.next_attempt_at = now + timedelta(seconds=base * 2 ** (d.attempts - 1))


class PushWorker:
    """Fans new events out to webhook deliveries and sends the due ones, in a thread.

    Several gateway processes may each run one: the cursor row is locked while fanning out,
    deliveries are claimed with a lease before sending, and a pair (endpoint, event) is
    unique, so an event is never fanned out twice nor sent twice at once.
    """

    def __init__(self, db: Database, settings: Settings, *, client: httpx.Client | None = None,
                 vault: Vault | None = None, destinations: Destinations | None = None,
                 clock: Callable[[], float] = time.time,
                 on_cycle: Callable[[], object] | None = None) -> None:
        self.db, self.clock, self.on_cycle = db, clock, on_cycle
        self.vault = vault or Vault(settings.master_key_bytes())
        self.destinations = destinations or Destinations(settings.webhook_allow_hosts)
        self.base = settings.webhook_backoff_seconds
        self.max_attempts = settings.webhook_max_attempts
        self.timeout = settings.webhook_timeout_seconds
        self.poll = settings.webhook_poll_seconds
        self._own_client = client is None
        self.client = client or self._new_client()
        self._tail: Tail | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.wake = threading.Event()

    def _new_client(self) -> httpx.Client:
        """Redirects are not followed: a receiver answers 2xx itself or the attempt fails.
        Each request is aimed at a checked address (see :meth:`send`), so connections are
        not kept alive (a pooled connection to an address is not shared by two names) and
        no proxy from the environment is used (it would resolve the name again)."""
        return httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False,
                            limits=httpx.Limits(max_keepalive_connections=0),
                            headers={"User-Agent": "claimx-webhooks/1"})

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def fan_out(self) -> int:
        """Turn events past the cursor into deliveries; returns how many were made."""
        try:
            with self.db.session() as s:
                cursor = s.get(PushCursor, 1, with_for_update=True)
                if cursor is None:
                    cursor = PushCursor(id=1, last_event_id=0)
                    s.add(cursor)
                if self._tail is None or cursor.last_event_id > self._tail.floor:
                    self._tail = Tail(cursor.last_event_id)  # first run, or another worker moved
                made = _fan_out(s, self._tail.poll(s, datetime.now(UTC)), self.now())
                cursor.last_event_id = max(cursor.last_event_id, self._tail.floor)
            return made
        except BaseException:
            self._tail = None  # the transaction rolled back: re-read from the stored cursor
            raise

    def deliver_due(self, limit: int = 32) -> int:
        """POST every due delivery (up to ``limit``): receivers concurrently, each one's in
        event order; returns how many receivers answered 2xx."""
        with self.db.session() as s:
            jobs = _claim_due(s, self.vault, self.now(), limit,
                              timedelta(seconds=self.timeout + 30))
        if not jobs:
            return 0
        by_url: dict[str, list[Job]] = {}
        for job in jobs:  # already in event order
            by_url.setdefault(job.url, []).append(job)
        with ThreadPoolExecutor(min(8, len(by_url)), thread_name_prefix="claimx-push") as pool:
            results = [r for group in pool.map(self._send_in_order, by_url.values())
                       for r in group]
        with self.db.session() as s:
            now = self.now()
            for job, error in results:
                d = s.get(Delivery, job.delivery_id)
                if d is not None and d.status == "pending":  # not removed meanwhile
                    _settle(d, error, now, base=self.base, max_attempts=self.max_attempts)
        return sum(error is None for _, error in results)

    def _send_in_order(self, jobs: list[Job]) -> list[tuple[Job, str | None]]:
        """One receiver's jobs one after another, so its events arrive in order (first
        attempts; a retried event may still arrive after later ones)."""
        return [(job, self.send(job)) for job in jobs]

    def send(self, job: Job) -> str | None:
        """One signed POST; None on 2xx, else what went wrong (no body, no payload, and
        nothing that tells a refused port from a silent one or a non-HTTP service)."""
        if job.secret is None:
            return "secret_unreadable"
        try:  # resolved once here; the request goes to one of these checked addresses
            targets = self.destinations.pin(job.url)
        except ClaimxError as exc:
            log.warning("webhook delivery %d refused: %s", job.delivery_id, exc.msg)
            return "destination_forbidden"
        headers = {"Content-Type": "application/json", "X-Claimx-Event": job.event_type,
                   "X-Claimx-Delivery": str(job.delivery_id),
                   "X-Claimx-Signature": sign(job.secret, job.body, int(self.clock()))}
        for target in targets[:CONNECT_TRIES]:
            try:
                with self.client.stream("POST", target.url, content=job.body,
                                        headers=headers | target.headers,
                                        extensions=target.extensions) as r:
                    status = r.status_code  # the receiver's body is not read
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                log.info("webhook delivery %d: %s, next address", job.delivery_id,
                         type(exc).__name__)
                continue  # nothing was sent: the next address may answer
            except Exception as exc:  # noqa: BLE001 - any failure is one failed attempt
                log.info("webhook delivery %d failed: %s", job.delivery_id,
                         type(exc).__name__)
                return "connect_failed"
            return None if 200 <= status < 300 else f"HTTP {status}"
        return "connect_failed"

    # -- thread ----------------------------------------------------------------------------

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        while not self._stop.is_set():
            busy = False
            try:
                if self.on_cycle is not None:
                    self.on_cycle()  # e.g. the request clock sweep: its events go out now
                self.fan_out()
                busy = self.deliver_due() > 0 and not self._stop.is_set()
            except (ClaimxError, SQLAlchemyError) as exc:
                log.error("push cycle failed (%s); retrying", type(exc).__name__)
            if not busy:
                self.wake.wait(self.poll)
                self.wake.clear()

    def start(self) -> threading.Thread:
        self._stop.clear()
        if self._own_client and self.client.is_closed:  # started again after stop()
            self.client = self._new_client()
        self._thread = threading.Thread(target=self.run, name="claimx-push", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Stop the loop, wait for an in-flight batch (bounded by the timeout), close."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)
            self._thread = None
        if self._own_client:
            self.client.close()
