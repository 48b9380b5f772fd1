"""A circuit breaker for the chain node: fail fast while it is down, find out soon when it is back.

Without it every request during an outage waits a full RPC timeout, and a few dozen of them
fill the server's thread pool. After ``threshold`` consecutive transport failures the breaker
opens and calls fail at once; every ``probe_after`` seconds it lets one call through (half
open) and closes again as soon as that call is answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from gateway.core.errors import ChainUnavailableError

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures of one dependency; thread-safe."""

    def __init__(self, *, threshold: int = 3, probe_after: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.probe_after, self.clock = threshold, probe_after, clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.failures_total = 0
        """Every transport failure since start (a metrics counter)."""
        self.last_error: str | None = None
        """Type name of the last transport failure (never its text: it may hold a URL)."""

    @property
    def state(self) -> State:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._probing or self.clock() - self._opened_at >= self.probe_after:
                return "half_open"
            return "open"

    def retry_after(self) -> int:
        """Whole seconds until the next probe (at least 1), for a ``Retry-After`` header."""
        with self._lock:
            if self._opened_at is None:
                return 1
            left = self.probe_after - (self.clock() - self._opened_at)
        return max(1, int(left + 0.999))

    def before(self) -> None:
        """Let a call through, or raise :class:`ChainUnavailableError` while open."""
        with self._lock:
            if self._opened_at is None:
                return
            if not self._probing and self.clock() - self._opened_at >= self.probe_after:
                self._probing = True  # this call is the probe; the others still fail fast
                return
        raise ChainUnavailableError("the chain node is not answering; requests that need it "
                                    "fail fast until it does", retry_after=self.retry_after())

    def success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False

    def failure(self, exc: BaseException | None = None, *, timed_out: bool = False) -> None:
        with self._lock:
            self._failures += 1
            self.failures_total += 1
            if exc is not None:
                self.last_error = type(exc).__name__
            if timed_out or self._probing or self._failures >= self.threshold:
                self._opened_at = self.clock()
            self._probing = False
