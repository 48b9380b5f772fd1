"""Push: signed webhooks (retried, parked, replayable) and server-sent event streams.

Webhook bodies are signed with HMAC-SHA256 (RFC 2104) in the widely used timestamped form
``X-Claimx-Signature: t=<unix seconds>,v1=<hex HMAC(secret, "<t>.<body>")>``; a receiver
checks it with :func:`verify_signature`, which also refuses stale timestamps (replays).
Failed deliveries are retried after ``base * 2**(attempts-1)`` seconds and parked after
``webhook_max_attempts``; a parked delivery can be replayed. Streams follow the WHATWG HTML
"server-sent events" format and resume from ``Last-Event-ID``. Delivery is at least once in
both channels: receivers deduplicate by event id (and webhook delivery id). A receiver gets
its first attempts in event order; a retried event can arrive after later ones, so
receivers that care order by event id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.core.errors import (
    ClaimxError,
    ConflictError,
    InputError,
    NotFoundError,
    VerificationError,
)
from gateway.services.push.sse import event_stream, poll_once, sse_text
from gateway.store.db import Database
from gateway.store.events import event_dict
from gateway.store.tables import Base, Event, UtcDateTime, utcnow
from gateway.store.tail import Tail, aware

__all__ = ["Delivery", "PushCursor", "PushWorker", "WebhookEndpoint", "event_stream", "poll_once",
           "list_deliveries", "list_endpoints", "register_endpoint", "remove_endpoint",
           "replay", "sign", "sse_text", "verify_signature"]

log = logging.getLogger("claimx.push")

SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS = 10
"""Webhook endpoints one member may hold at a time."""
STATUSES = ("pending", "delivered", "parked")


class WebhookEndpoint(Base):
    """A member's HTTPS receiver. The secret signs every body; it is shown once at creation
    and kept so the gateway can sign (it is a shared key, not a password)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Delivery(Base):
    """One event for one endpoint. ``last_error`` names the failure, never payload data."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(Integer, ForeignKey("events.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )


class PushCursor(Base):
    """Single row (id=1): every event up to ``last_event_id`` has been fanned out."""

    __tablename__ = "push_cursor"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)


# --- endpoints ------------------------------------------------------------------------


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host and no embedded credentials, else ``bad_url``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InputError("webhook url is not a valid URL", code="bad_url", loc=["url"]) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("webhook url must be an absolute http:// or https:// URL",
                         code="bad_url", loc=["url"])
    if parts.username or parts.password:
        raise InputError("webhook url must not carry credentials: bodies are signed instead",
                         code="bad_url", loc=["url"])
    if len(url) > 2048 or any(c.isspace() for c in url):
        raise InputError("webhook url is too long or contains whitespace", code="bad_url",
                         loc=["url"])
    return url


def register_endpoint(s: Session, member_id: bytes, url: str) -> tuple[WebhookEndpoint, str]:
    """Add a receiver for the member's events; returns it and its signing secret."""
    check_url(url)
    held = len(list_endpoints(s, member_id))
    if held >= MAX_ENDPOINTS:
        raise ConflictError(f"a member may hold at most {MAX_ENDPOINTS} webhook endpoints; "
                            "delete one first", code="too_many_endpoints")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(id=str(uuid.uuid4()), member_id=member_id, url=url,
                               secret=secret, active=True, created_at=utcnow())
    s.add(endpoint)
    s.flush()
    return endpoint, secret


def list_endpoints(s: Session, member_id: bytes) -> list[WebhookEndpoint]:
    return list(s.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.member_id == member_id, WebhookEndpoint.active)
        .order_by(WebhookEndpoint.created_at)))


def remove_endpoint(s: Session, member_id: bytes, endpoint_id: str) -> None:
    """Deactivate the member's endpoint and park what was still waiting for it."""
    endpoint = s.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.member_id != member_id or not endpoint.active:
        raise NotFoundError("no webhook endpoint with this id", code="webhook_not_found")
    endpoint.active = False
    for d in s.scalars(select(Delivery).where(Delivery.endpoint_id == endpoint_id,
                                              Delivery.status == "pending")):
        d.status, d.last_error = "parked", "endpoint removed"


def list_deliveries(s: Session, member_id: bytes, status: str | None = None,
                    limit: int = 100) -> list[tuple[Delivery, str]]:
    """The member's deliveries, newest first, each with its event type."""
    q = (select(Delivery, Event.type).join(WebhookEndpoint,
                                           WebhookEndpoint.id == Delivery.endpoint_id)
         .join(Event, Event.id == Delivery.event_id)
         .where(WebhookEndpoint.member_id == member_id))
    if status is not None:
        q = q.where(Delivery.status == status)
    return [(d, t) for d, t in s.execute(q.order_by(Delivery.id.desc()).limit(limit))]


def replay(s: Session, delivery_id: int, member_id: bytes | None = None, *,
           now: datetime | None = None) -> Delivery:
    """Send a parked delivery again now, with a fresh round of attempts."""
    d = s.get(Delivery, delivery_id)
    endpoint = None if d is None else s.get(WebhookEndpoint, d.endpoint_id)
    if d is None or endpoint is None or (member_id is not None
                                         and endpoint.member_id != member_id):
        raise NotFoundError("no webhook delivery with this id", code="delivery_not_found")
    if d.status != "parked":
        raise ConflictError(f"only parked deliveries can be replayed (this one is {d.status})",
                            code="not_parked")
    if not endpoint.active:
        raise ConflictError("the delivery's endpoint was removed", code="endpoint_removed")
    d.status, d.attempts, d.next_attempt_at = "pending", 0, now or utcnow()
    return d


# --- signatures -----------------------------------------------------------------------


def sign(secret: str, body: bytes, t: int) -> str:
    """The ``X-Claimx-Signature`` value for ``body`` sent at unix time ``t``."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str, header: str | None, body: bytes | str, tolerance: int = 300,
                     *, now: float | None = None) -> None:
    """Check a webhook's ``X-Claimx-Signature`` against the raw body, or raise.

    Use the body exactly as received (before any JSON parsing). Several ``v1`` entries may
    be present; one matching is enough. ``tolerance`` bounds the age of ``t`` in seconds.
    """
    raw = body.encode() if isinstance(body, str) else body
    fields: dict[str, list[str]] = {}
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        t = int(fields["t"][0])
    except (KeyError, ValueError) as exc:
        raise VerificationError("signature header lacks a t=<unix seconds> timestamp",
                                code="bad_signature") from exc
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        raise VerificationError(f"signature timestamp is more than {tolerance} s away from "
                                "now (replayed or clock skew)", code="stale_signature")
    expected = sign(secret, raw, t).rpartition("v1=")[2]
    if not any(hmac.compare_digest(expected, v) for v in fields.get("v1", [])):
        raise VerificationError("webhook signature does not match the body",
                                code="bad_signature")


# --- the worker ------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A claimed delivery, ready to send without touching the database."""

    delivery_id: int
    event_id: int
    event_type: str
    url: str
    secret: str
    body: bytes


def _claim_due(s: Session, now: datetime, limit: int, lease: timedelta) -> list[Job]:
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
        jobs.append(Job(d.id, event.id, event.type, endpoint.url, endpoint.secret, body))
    return jobs


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
                    and aware(ep.created_at) <= aware(e.created_at)):
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

    def __init__(self, db: Database, settings: object, *, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time,
                 on_cycle: Callable[[], object] | None = None) -> None:
        self.db, self.clock, self.on_cycle = db, clock, on_cycle
        self.base = float(getattr(settings, "webhook_backoff_seconds", 1.0))
        self.max_attempts = int(getattr(settings, "webhook_max_attempts", 6))
        self.timeout = float(getattr(settings, "webhook_timeout_seconds", 5.0))
        self.poll = float(getattr(settings, "webhook_poll_seconds", 0.2))
        self._own_client = client is None
        self.client = client or self._new_client()
        self._tail: Tail | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.wake = threading.Event()

    def _new_client(self) -> httpx.Client:
        """Redirects are not followed: a receiver answers 2xx itself or the attempt fails."""
        return httpx.Client(timeout=self.timeout, follow_redirects=False,
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
            jobs = _claim_due(s, self.now(), limit, timedelta(seconds=self.timeout + 30))
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
        """One signed POST; None on 2xx, else what went wrong (no body, no payload)."""
        headers = {"Content-Type": "application/json", "X-Claimx-Event": job.event_type,
                   "X-Claimx-Delivery": str(job.delivery_id),
                   "X-Claimx-Signature": sign(job.secret, job.body, int(self.clock()))}
        try:
            with self.client.stream("POST", job.url, content=job.body, headers=headers) as r:
                status = r.status_code  # the receiver's body is not read
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is one failed attempt
            log.info("webhook delivery %d failed: %s", job.delivery_id, type(exc).__name__)
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

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
