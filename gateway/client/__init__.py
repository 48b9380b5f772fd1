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

Answers with a fixed shape are typed (:class:`Published`, :class:`Event`, :class:`Webhook`,
:class:`Delivery`); views the gateway may extend (a claim, a record, a receipt) are the JSON
objects docs/api.md describes. Consents, withdrawals and bindings are made with
:mod:`gateway.core.claimant`, envelopes with :func:`gateway.core.envelope.sign_packet`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from gateway.client.models import (
    ApiError,
    Delivery,
    Event,
    EventPage,
    JsonObject,
    Published,
    Webhook,
    retry_after,
)
from gateway.core.envelope import Envelope
from gateway.core.promise import PromiseBundle
from gateway.core.webhook import verify_signature

__all__ = ["ApiError", "Client", "Delivery", "Event", "EventPage", "Published", "Webhook",
           "verify_signature"]

EnvelopeLike = Envelope | Mapping[str, Any]


class Client:
    """One member's connection to a gateway (``token``: a ``cx1_…`` credential)."""

    anchored_poll = 0.1
    """Seconds between status checks in :meth:`wait_anchored`."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 10.0,
                 retries: int = 5, max_wait: float = 30.0,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str, float], None] | None = None) -> None:
        """``on_retry(why, seconds)`` hears of each retry (a progress line, a log). Without
        ``token`` only the open routes answer (a claimant's :meth:`withdraw_by_claimant`)."""
        self.base_url = base_url.rstrip("/")
        self.retries, self.max_wait, self._sleep = retries, max_wait, sleep
        self._on_retry = on_retry or (lambda _why, _wait: None)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"} if token else {})

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

    def wait_anchored(self, digest: str, timeout: float = 60.0) -> JsonObject:
        """The record's metadata once a tree head on chain covers it (polls ``record``, which
        reads no payload, so nothing is logged); ApiError ``record_rejected`` if its key
        was no longer valid when it was to be logged, ``not_anchored`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            meta = self.record(digest)
            if meta["status"] == "anchored":
                return meta
            if meta["status"] == "rejected":
                raise ApiError(409, "record_rejected", f"record {digest} was rejected: "
                               f"{meta.get('reject_code')}")
            if time.monotonic() >= deadline:
                raise ApiError(0, "not_anchored", f"record {digest} not anchored within "
                               f"{timeout:g} s (status {meta['status']})")
            self._sleep(self.anchored_poll)

    def envelope(self, digest: str, claim: str | None = None) -> JsonObject:
        """The signed envelope with its payload: your own record, or (insurers) one that
        ``claim`` holds under a live consent. A payload read, logged on the evidence log."""
        return self._json("GET", f"/v1/records/{digest}/envelope",  # type: ignore[no-any-return]
                          params=_claim_param(claim))

    def receipt(self, digest: str, claim: str | None = None) -> JsonObject:
        """The portable receipt (``claimx verify`` checks it against the chain alone); 404
        ``not_yet_anchored`` until the record's tree head is on chain. A payload read like
        :meth:`envelope` (insurers name the ``claim`` they read under)."""
        return self._json("GET", f"/v1/records/{digest}/receipt",  # type: ignore[no-any-return]
                          params=_claim_param(claim))

    def access_log(self, digest: str) -> JsonObject:
        """Every payload read of the record (auditors, the operator, its issuer)."""
        return self._json("GET",  # type: ignore[no-any-return]
                          f"/v1/records/{digest}/access-log")

    def erase(self, digest: str) -> JsonObject:
        """Destroy your record's payload key: the payload is gone, the digest stays provable."""
        return self._json("POST", f"/v1/records/{digest}/erase")  # type: ignore[no-any-return]

    def proof(self, digest: str) -> JsonObject:
        """Inclusion proof and anchoring heads, without the payload (what auditors read)."""
        return self._json("GET", f"/v1/records/{digest}/proof")  # type: ignore[no-any-return]

    def promise(self, digest: str) -> PromiseBundle:
        """The record's acceptance promise, its extensions and how it ended (inclusion proof
        or signed rejection): what ``claimx verify-promise`` checks against the chain."""
        return PromiseBundle.model_validate(self._json("GET", f"/v1/records/{digest}/promise"))

    def log_head(self) -> JsonObject:
        return self._json("GET", "/v1/log/head")  # type: ignore[no-any-return]

    def consistency(self, first: int, second: int) -> JsonObject:
        """RFC 9162 consistency proof between two sizes of the log."""
        return self._json("GET", "/v1/log/consistency",  # type: ignore[no-any-return]
                          params={"first": first, "second": second})

    def members(self) -> list[JsonObject]:
        """The member directory as the registry on chain states it (keys with their status)."""
        return self._json("GET", "/v1/members")  # type: ignore[no-any-return]

    def member(self, member: str) -> JsonObject:
        return self._json("GET", f"/v1/members/{member}")  # type: ignore[no-any-return]

    def binding(self, digest: str) -> JsonObject:
        """A claimant key binding and the digests of its revocations."""
        return self._json("GET", f"/v1/bindings/{digest}")  # type: ignore[no-any-return]

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Any GET route of docs/api.md by its path, with this client's retries and errors:
        for routes without a method here, and as the ``fetch`` of
        :func:`gateway.verify.audit.audit_reads`."""
        return self._json("GET", path, params=params)

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

    def withdraw_by_claimant(self, withdrawal: Mapping[str, Any]) -> JsonObject:
        """The claimant's own signed withdrawal (:func:`gateway.core.claimant.sign_withdrawal`):
        every consent of that claimant to that insurer stops; needs no member token."""
        return self._json("POST", "/v1/consents/withdraw",  # type: ignore[no-any-return]
                          body=dict(withdrawal))

    def share_claim(self, claim_id: str, days: int | None = None) -> JsonObject:
        """A progress link for the claimant (``url`` holds its token, shown only now)."""
        body = {"days": days} if days is not None else {}
        return self._json("POST", f"/v1/claims/{claim_id}/share",  # type: ignore[no-any-return]
                          body=body)

    def revoke_share(self, claim_id: str, share_id: str) -> JsonObject:
        return self._json("DELETE",  # type: ignore[no-any-return]
                          f"/v1/claims/{claim_id}/share/{share_id}")

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

    # -- webhooks ----------------------------------------------------------------------

    def create_webhook(self, url: str) -> Webhook:
        """Register a receiver for your events from now on (https to a public address unless
        the gateway allows the host); keep the returned ``secret``: it is shown only once."""
        return Webhook.from_json(self._json("POST", "/v1/webhooks", body={"url": url}))

    def webhooks(self) -> list[Webhook]:
        return [Webhook.from_json(o) for o in self._json("GET", "/v1/webhooks")]

    def delete_webhook(self, webhook_id: str) -> None:
        self._json("DELETE", f"/v1/webhooks/{webhook_id}")

    def deliveries(self, status: str | None = None, limit: int = 100) -> list[Delivery]:
        """Your webhook deliveries, newest first (``status``: pending, delivered, parked)."""
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return [Delivery.from_json(o) for o in self._json("GET", "/v1/webhooks/deliveries",
                                                          params=params)]

    def replay_delivery(self, delivery_id: int) -> Delivery:
        """Send a parked delivery again now, with a fresh round of retries."""
        return Delivery.from_json(self._json(
            "POST", f"/v1/webhooks/deliveries/{delivery_id}/replay"))

    # -- events ------------------------------------------------------------------------

    def events(self, after: int = 0, *, claim_id: str | None = None,
               limit: int = 100) -> EventPage:
        """One page of events after ``after`` (poll mode, for clients that cannot stream)."""
        page = self._json("GET", _events_path(claim_id), params={"after": after,
                                                                 "limit": limit})
        return EventPage([Event.from_json(e) for e in page["events"]],
                         int(page["resume_after"]))

    def stream_events(self, last_event_id: int = 0, *, claim_id: str | None = None,
                      reconnect: bool = True, read_timeout: float = 60.0,
                      ) -> Generator[Event, None, None]:
        """Server-sent events after ``last_event_id``; a dropped stream is resumed with
        ``Last-Event-ID`` set to the highest id seen, so none is repeated. (On PostgreSQL an
        event committed out of id order while the stream was down can be missed: clients
        that must see every event reconcile with :meth:`events`, whose ``resume_after``
        misses none.)"""
        last, failures = last_event_id, 0
        while True:
            try:
                for event in self._stream_once(_events_path(claim_id), last, read_timeout):
                    last, failures = max(last, event.id), 0  # a late event has a lower id
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
                wait = retry_after(r) or 0.5 * 2 ** attempt
                why = f"503 {ApiError.from_response(r).code}"
            attempt += 1
            wait = min(self.max_wait, wait)
            self._on_retry(why, wait)
            self._sleep(wait)


def _envelope(e: EnvelopeLike) -> Any:
    return e.to_json() if isinstance(e, Envelope) else dict(e)


def _claim_param(claim: str | None) -> dict[str, str] | None:
    return {"claim": claim} if claim else None


def _events_path(claim_id: str | None) -> str:
    return f"/v1/claims/{claim_id}/events" if claim_id else "/v1/events"
