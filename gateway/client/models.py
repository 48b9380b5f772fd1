"""The typed answers of the members' client (:mod:`gateway.client`) and its one error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gateway.core.errors import ClaimxError
from gateway.core.promise import Promise

JsonObject = dict[str, Any]


class ApiError(ClaimxError):
    """An error answer (or no answer after the retries) from the gateway."""

    def __init__(self, status: int, code: str, message: str, *,
                 retry_after: float | None = None, detail: Mapping[str, Any] | None = None):
        super().__init__(message, code=code, http_status=status, **dict(detail or {}))
        self.status, self.retry_after = status, retry_after

    @classmethod
    def from_response(cls, r: httpx.Response) -> ApiError:
        try:
            err = r.json()["error"]
            code, message = str(err["code"]), str(err["message"])
            detail = {k: v for k, v in err.items() if k not in ("code", "message")}
        except (ValueError, KeyError, TypeError):
            code, message, detail = f"http_{r.status_code}", r.text[:200], {}
        return cls(r.status_code, code, message, retry_after=retry_after(r), detail=detail)


@dataclass(frozen=True)
class Published:
    """The gateway's answer for one envelope: its digest and acceptance promises."""

    digest: str
    duplicate: bool
    urgent: bool
    kind: str
    key_status: str
    """"fresh", or "stale": the chain was down and the key was checked against the registry's
    last answer."""
    promise: Promise | None = None
    """The exchange's signed acceptance promise (keep it: ``claimx verify-promise`` proves
    with it whether the exchange included the record in time); None from older gateways."""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Published:
        raw = obj.get("promise")
        return cls(str(obj["digest"]), bool(obj["duplicate"]), bool(obj["urgent"]),
                   str(obj["kind"]), str(obj.get("key_status", "fresh")),
                   Promise.model_validate(raw) if raw is not None else None)


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    claim_id: str | None
    at: datetime
    data: JsonObject

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Event:
        return cls(int(obj["id"]), str(obj["type"]), obj.get("claim_id"),
                   datetime.fromisoformat(str(obj["at"])), dict(obj.get("data") or {}))


@dataclass(frozen=True)
class EventPage:
    """Poll mode: ask again with ``after=resume_after``."""

    events: list[Event]
    resume_after: int


@dataclass(frozen=True)
class Webhook:
    """A receiver of the member's events; ``secret`` (the HMAC key to check each POST with
    :func:`verify_signature`) only in the answer that registered it."""

    id: str
    url: str
    created_at: datetime
    secret: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Webhook:
        return cls(str(obj["id"]), str(obj["url"]),
                   datetime.fromisoformat(str(obj["created_at"])), obj.get("secret"))


@dataclass(frozen=True)
class Delivery:
    """One event's delivery to one webhook: pending (retried with backoff), delivered, or
    parked after the last attempt (replay it with :meth:`Client.replay_delivery`)."""

    id: int
    endpoint_id: str
    event_id: int
    event_type: str
    status: str
    attempts: int
    last_error: str | None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Delivery:
        return cls(int(obj["id"]), str(obj["endpoint_id"]), int(obj["event_id"]),
                   str(obj["event_type"]), str(obj["status"]), int(obj["attempts"]),
                   obj.get("last_error"))


def retry_after(r: httpx.Response) -> float | None:
    try:
        return max(0.0, float(r.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None
