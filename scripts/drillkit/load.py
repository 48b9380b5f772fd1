"""A steady stream of signed envelopes, one request each, with short client timeouts.

Each request is sent once (the SDK's retries are off), so every answer is counted as the
gateway gave it: 201 accepted, a 503 (the honest answer while a dependency is down), any other
status, no answer (``unreachable``) or no answer in time (``timeout``: a hang). Requests are
started on a fixed schedule from a pool, so one that hangs does not slow the rate down.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from gateway.client import ApiError, Client
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet

HANG_SECONDS = 5.0
"""An answer slower than this (or none within the client timeout) is a hang."""

TIMEOUT, UNREACHABLE = -1, 0
"""Pseudo statuses: no answer within the client timeout; no connection or a reset."""


@dataclass(frozen=True)
class Member:
    """Who the load publishes as: an API token, the member's signing key and its 0x id."""

    token: str
    key: SigningKey
    issuer: str
    kind: str = "hospital.invoice"


@dataclass(frozen=True)
class Outcome:
    started: float
    """time.monotonic() when the request was sent."""
    latency: float
    status: int
    code: str
    digest: str | None


@dataclass
class Tally:
    """What the load saw, in the figures the report prints."""

    requests: int = 0
    accepted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    other_5xx: int = 0
    hangs: int = 0
    worst_latency: float = 0.0


class Load:
    """Publish ``rate`` envelopes a second to ``url`` until :meth:`stop`."""

    def __init__(self, url: str, member: Member, *, rate: float, timeout: float) -> None:
        self.member, self.rate = member, rate
        self._client = Client(url, member.token, timeout=timeout, retries=0)
        self._pool = ThreadPoolExecutor(max_workers=int(rate * (timeout + 1)) + 4,
                                        thread_name_prefix="drill-load")
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._futures: list[Future[None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._schedule, name="drill-rate", daemon=True)
        self._n = 0

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight (each ends by its timeout)."""
        self._stop.set()
        self._thread.join()
        for f in list(self._futures):
            f.result()
        self._pool.shutdown(wait=True)
        self._client.close()

    def _schedule(self) -> None:
        period, next_at = 1.0 / self.rate, time.monotonic()
        while not self._stop.is_set():
            self._n += 1
            self._futures.append(self._pool.submit(self._one, self._n))
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _envelope(self, n: int) -> dict[str, object]:
        packet = new_packet(kind=self.member.kind, issuer=self.member.issuer,
                            subject=secrets.token_hex(32),
                            body={"invoice_no": f"DRILL-{n:08d}", "total": "1.00"})
        return sign_packet(packet, self.member.key).to_json()

    def _one(self, n: int) -> None:
        envelope = self._envelope(n)
        start = time.monotonic()
        try:
            published = self._client.publish(envelope)
            outcome = Outcome(start, time.monotonic() - start, 201, published.key_status,
                              published.digest)
        except ApiError as exc:
            status = exc.status
            if status == 0:
                status = TIMEOUT if isinstance(exc.__cause__, httpx.TimeoutException) \
                    else UNREACHABLE
            outcome = Outcome(start, time.monotonic() - start, status, exc.code, None)
        with self._lock:
            self._outcomes.append(outcome)

    # -- what it saw -------------------------------------------------------------------

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def accepted(self, before: float | None = None) -> list[str]:
        """Digests of accepted envelopes (sent before ``before``, a monotonic time)."""
        return [o.digest for o in self.outcomes()
                if o.digest is not None and (before is None or o.started < before)]

    def tally(self) -> Tally:
        t = Tally()
        for o in self.outcomes():
            t.requests += 1
            t.accepted += o.status == 201
            t.statuses[_label(o)] += 1
            t.other_5xx += o.status >= 500 and o.status != 503
            t.hangs += o.status == TIMEOUT or o.latency > HANG_SECONDS
            t.worst_latency = max(t.worst_latency, o.latency)
        return t


def _label(o: Outcome) -> str:
    if o.status == TIMEOUT:
        return "timeout"
    if o.status == UNREACHABLE:
        return "unreachable"
    if o.status == 201:
        return "201 stale" if o.code == "stale" else "201"
    return f"{o.status} {o.code}"
