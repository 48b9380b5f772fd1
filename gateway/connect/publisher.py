"""Delivering the outbox to the gateway over HTTP: at least once, idempotent, with backoff.

The gateway treats an envelope it already holds as a duplicate (same digest, no second leaf),
so sending one again after a crash or a lost answer is harmless. Batches go to
``POST /v1/records/batch``; a batch the gateway refuses (all-or-nothing) is split into single
``POST /v1/records`` calls so that one bad envelope fails alone with its error kept.

What is retried and what fails for good: a network error, a 5xx (a 503 above all), 408 and 429
wait and retry, doubling the delay up to :data:`MAX_BACKOFF`; so does a 401, which is the
agent's token, not the item. Any other 4xx is the item's fault and marks it failed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from gateway.connect.outbox import Item, Outbox

log = logging.getLogger("claimx.connect.publisher")
MAX_BACKOFF = 30.0
FIRST_BACKOFF = 0.5
RETRY_STATUSES = frozenset({401, 408, 425, 429})


class Retry(Exception):
    """The gateway cannot take the items now; try again after a backoff."""


def backoff(attempts: int) -> float:
    """Delay before try ``attempts + 1``: 0.5, 1, 2, 4 ... seconds, capped at 30."""
    return float(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** min(attempts, 16)))


class Publisher:
    """Drains the outbox in a thread of its own until :meth:`stop`."""

    def __init__(self, outbox: Outbox, gateway: str, token: str, *, batch: int = 50,
                 timeout: float = 10.0) -> None:
        self.outbox = outbox
        self.batch = batch
        self._http = httpx.Client(base_url=gateway.rstrip("/"), timeout=timeout, headers={
            "Authorization": f"Bearer {token}", "User-Agent": "claimx-connect"})
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.failures = 0
        """Consecutive passes the gateway could not take: the exponent of the backoff."""
        self._resume_at = 0.0

    def wake(self) -> None:
        """New items are in the outbox: publish now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.drain_once()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                log.exception("publisher pass failed; retrying")
                sent = 0
            if sent:
                continue
            nxt = self.outbox.next_due_at()
            wait = 1.0 if nxt is None else max(0.01, min(1.0, nxt - time.time()))
            self._wake.wait(wait)
            self._wake.clear()
        self._http.close()

    def drain_once(self) -> int:
        """Publish one batch of due items; the number settled (sent or failed)."""
        items = self.outbox.due(self.batch)
        if not items:
            return 0
        try:
            self._publish(items)
        except Retry as exc:
            delay = backoff(self.failures)
            self.failures += 1
            self._resume_at = time.time() + delay
            log.warning("gateway unavailable (%s); %d item(s) retried in %.1f s", exc,
                        len(items), delay)
            self.outbox.retry_later([i.id for i in items], delay, str(exc))
            return 0
        self.failures = 0
        return len(items)

    def _publish(self, items: list[Item]) -> None:
        if len(items) == 1:
            self._single(items[0])
            return
        r = self._post("/v1/records/batch", {"envelopes": [i.envelope for i in items]})
        if r.status_code < 300:
            self.outbox.mark_sent([(i.id, a) for i, a in zip(items, r.json(), strict=True)])
            return
        for item in items:  # one bad envelope refused the batch: find it
            self._single(item)

    def _single(self, item: Item) -> None:
        r = self._post("/v1/records", item.envelope)
        if r.status_code < 300:
            self.outbox.mark_sent([(item.id, r.json())])
        else:
            error = _error_body(r)
            log.warning("gateway refused record %s: %s", item.digest[:16], error.get("code"))
            self.outbox.mark_failed(item.id, error)

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST, raising :class:`Retry` for anything that is not the request's own fault."""
        try:
            r = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise Retry(f"{type(exc).__name__}") from exc
        if r.status_code >= 500 or r.status_code in RETRY_STATUSES:
            raise Retry(f"HTTP {r.status_code} {_error_body(r).get('code', '')}".strip())
        return r


def _error_body(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {"code": f"http_{r.status_code}", "message": r.text[:200]}
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return {**err, "status": r.status_code}
    return {"code": f"http_{r.status_code}", "status": r.status_code}
