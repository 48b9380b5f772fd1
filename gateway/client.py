"""A typed Python client for members' systems: the gateway's HTTP API (docs/api.md) as calls.

Imports only gateway.core and httpx (import-linter holds it to that), so a hospital's or an
insurer's integration loads no database, chain or web framework. Reads, and publishing
(records are content-addressed: sending one twice stores it once), are retried on 503
(honouring ``Retry-After``) and on network errors; other writes are sent once. Every error
answer becomes an :class:`ApiError` carrying the gateway's ``{"error": {"code", ...}}``.

    with Client("http://127.0.0.1:8000", token) as cx:
        published = cx.publish_batch(envelopes)
        for event in cx.stream_events(last_event_id=0):  # resumes after a dropped stream
            ...
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gateway.core.envelope import Envelope
from gateway.core.errors import ClaimxError
from gateway.core.promise import Promise, PromiseBundle
from gateway.core.webhook import verify_signature

__all__ = ["ApiError", "Client", "Event", "EventPage", "Published", "verify_signature"]

JsonObject = dict[str, Any]
EnvelopeLike = Envelope | Mapping[str, Any]


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
        return cls(r.status_code, code, message, retry_after=_retry_after(r), detail=detail)


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


class Client:
    """One member's connection to a gateway (``token``: a ``cx1_…`` credential)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, retries: int = 5,
                 max_wait: float = 30.0, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, float], None] | None = None) -> None:
        """``on_retry(why, seconds)`` hears of each retry (a progress line, a log)."""
        self.base_url = base_url.rstrip("/")
        self.retries, self.max_wait, self._sleep = retries, max_wait, sleep
        self._on_retry = on_retry or (lambda _why, _wait: None)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- records and proofs ------------------------------------------------------------

    def publish(self, envelope: EnvelopeLike) -> Published:
        """Publish one signed envelope (``POST /v1/records``)."""
        return Published.from_json(self._json("POST", "/v1/records", body=_envelope(envelope),
                                              retry=True))

    def publish_batch(self, envelopes: Sequence[EnvelopeLike]) -> list[Published]:
        """Publish envelopes at once (``POST /v1/records/batch``): all or none accepted."""
        body = {"envelopes": [_envelope(e) for e in envelopes]}
        answer = self._json("POST", "/v1/records/batch", body=body, retry=True)
        return [Published.from_json(o) for o in answer]

    def record(self, digest: str) -> JsonObject:
        return self._json("GET", f"/v1/records/{digest}")  # type: ignore[no-any-return]

    def receipt(self, digest: str) -> JsonObject:
        """The portable receipt (``claimx verify`` checks it against the chain alone); 404
        ``not_yet_anchored`` until the record's tree head is on chain."""
        return self._json("GET", f"/v1/records/{digest}/receipt")  # type: ignore[no-any-return]

    def proof(self, digest: str) -> JsonObject:
        """Inclusion proof and anchoring heads, without the payload (what auditors read)."""
        return self._json("GET", f"/v1/records/{digest}/proof")  # type: ignore[no-any-return]

    def promise(self, digest: str) -> PromiseBundle:
        """The record's acceptance promise, its extensions and how it ended (inclusion proof
        or signed rejection): what ``claimx verify-promise`` checks against the chain."""
        return PromiseBundle.model_validate(self._json("GET", f"/v1/records/{digest}/promise"))

    def log_head(self) -> JsonObject:
        return self._json("GET", "/v1/log/head")  # type: ignore[no-any-return]

    # -- claims and evidence requests (insurers) ---------------------------------------

    def open_claim(self, claim: Mapping[str, Any]) -> JsonObject:
        """``claim``: reference, subject, policy, incident_date, kind and the signed consent."""
        return self._json("POST", "/v1/claims", body=dict(claim))  # type: ignore[no-any-return]

    def claim(self, claim_id: str) -> JsonObject:
        return self._json("GET", f"/v1/claims/{claim_id}")  # type: ignore[no-any-return]

    def claims(self) -> list[JsonObject]:
        return self._json("GET", "/v1/claims")  # type: ignore[no-any-return]

    def withdraw_consent(self, claim_id: str) -> JsonObject:
        return self._json("POST",  # type: ignore[no-any-return]
                          f"/v1/claims/{claim_id}/consent/withdraw")

    def close_claim(self, claim_id: str, outcome: str) -> JsonObject:
        """``outcome``: paid, denied or withdrawn."""
        return self._json("POST", f"/v1/claims/{claim_id}/close",  # type: ignore[no-any-return]
                          body={"outcome": outcome})

    def request_evidence(self, claim_id: str, institution: str, kinds: Sequence[str],
                         note: str = "") -> JsonObject:
        body = {"institution": institution, "kinds": list(kinds), "note": note}
        return self._json("POST",  # type: ignore[no-any-return]
                          f"/v1/claims/{claim_id}/requests", body=body)

    def requests(self, status: str | None = None) -> list[JsonObject]:
        """Evidence requests addressed to you (institutions) or made by you (insurers)."""
        params = {"status": status} if status else None
        return self._json("GET", "/v1/requests", params=params)  # type: ignore[no-any-return]

    def decline_request(self, request_id: str, reason: str) -> JsonObject:
        return self._json("POST",  # type: ignore[no-any-return]
                          f"/v1/requests/{request_id}/decline", body={"reason": reason})

    # -- events ------------------------------------------------------------------------

    def events(self, after: int = 0, *, claim_id: str | None = None,
               limit: int = 100) -> EventPage:
        """One page of events after ``after`` (poll mode, for clients that cannot stream)."""
        page = self._json("GET", _events_path(claim_id), params={"after": after,
                                                                 "limit": limit})
        return EventPage([Event.from_json(e) for e in page["events"]],
                         int(page["resume_after"]))

    def stream_events(self, last_event_id: int = 0, *, claim_id: str | None = None,
                      reconnect: bool = True, read_timeout: float = 60.0) -> Iterator[Event]:
        """Server-sent events after ``last_event_id``; a dropped stream is resumed with
        ``Last-Event-ID`` from the last event seen, so none is missed or repeated."""
        last, failures = last_event_id, 0
        while True:
            try:
                for event in self._stream_once(_events_path(claim_id), last, read_timeout):
                    last, failures = event.id, 0
                    yield event
            except httpx.TransportError as exc:
                if not reconnect or failures >= self.retries:
                    raise ApiError(0, "unreachable", f"event stream lost: "
                                   f"{type(exc).__name__}") from exc
                failures += 1
            if not reconnect:
                return
            self._sleep(min(self.max_wait, 0.5 * 2 ** failures))

    def _stream_once(self, path: str, last: int, read_timeout: float) -> Iterator[Event]:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        with self._http.stream("GET", path, headers=headers, timeout=timeout) as r:
            if r.status_code != 200:
                r.read()
                raise ApiError.from_response(r)
            fields: dict[str, str] = {}
            for line in r.iter_lines():
                if line.startswith(":"):  # keepalive comment
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    yield Event.from_json(json.loads(fields["data"]))
                fields = {}

    # -- transport ---------------------------------------------------------------------

    def _json(self, method: str, path: str, *, body: Any = None,
              params: Mapping[str, Any] | None = None, retry: bool | None = None) -> Any:
        r = self._send(method, path, body, params, method == "GET" if retry is None else retry)
        if r.status_code >= 400:
            raise ApiError.from_response(r)
        return r.json() if r.content else None

    def _send(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None,
              retry: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                r = self._http.request(method, path, json=body, params=params)
            except httpx.TransportError as exc:
                if not retry or attempt >= self.retries:
                    raise ApiError(0, "unreachable", f"no answer from {self.base_url} "
                                   f"({type(exc).__name__})") from exc
                wait, why = 0.5 * 2 ** attempt, type(exc).__name__
            else:
                if r.status_code != 503 or not retry or attempt >= self.retries:
                    return r
                wait = _retry_after(r) or 0.5 * 2 ** attempt
                why = f"503 {ApiError.from_response(r).code}"
            attempt += 1
            wait = min(self.max_wait, wait)
            self._on_retry(why, wait)
            self._sleep(wait)


def _envelope(e: EnvelopeLike) -> Any:
    return e.to_json() if isinstance(e, Envelope) else dict(e)


def _events_path(claim_id: str | None) -> str:
    return f"/v1/claims/{claim_id}/events" if claim_id else "/v1/events"


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return max(0.0, float(r.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None
