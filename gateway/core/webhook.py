"""Webhook body signatures: HMAC-SHA256 (RFC 2104) in the timestamped form

``X-Claimx-Signature: t=<unix seconds>,v1=<hex HMAC(secret, "<t>.<body>")>``.

A receiver checks a delivery with :func:`verify_signature`, which also refuses stale
timestamps (replays). Pure standard library: a receiver that imports this loads no
database, HTTP client or web framework.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from gateway.core.errors import VerificationError


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
