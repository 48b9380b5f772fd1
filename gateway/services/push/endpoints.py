"""Members' webhook endpoints and their deliveries: register, list, remove, replay."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.errors import ConflictError, InputError, NotFoundError
from gateway.services.push.destinations import Destinations
from gateway.store.tables import Delivery, Event, WebhookEndpoint, utcnow
from gateway.store.vault import Vault

SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS = 10
"""Webhook endpoints one member may hold at a time."""


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


def register_endpoint(s: Session, member_id: bytes, url: str, *, destinations: Destinations,
                      vault: Vault) -> tuple[WebhookEndpoint, str]:
    """Add a receiver for the member's events; returns it and its signing secret (stored
    only encrypted). ``destinations`` refuses URLs into the exchange's own network."""
    check_url(url)
    destinations.check(url)
    held = len(list_endpoints(s, member_id))
    if held >= MAX_ENDPOINTS:
        raise ConflictError(f"a member may hold at most {MAX_ENDPOINTS} webhook endpoints; "
                            "delete one first", code="too_many_endpoints")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint_id = str(uuid.uuid4())
    endpoint = WebhookEndpoint(id=endpoint_id, member_id=member_id, url=url,
                               secret_ct=vault.seal_secret(secret, endpoint_id), active=True,
                               created_at=utcnow())
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
