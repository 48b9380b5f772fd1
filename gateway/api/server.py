"""Serving the app with bounded clients: header, body and idle timeouts, a connection cap and
a bounded shutdown (SIGTERM closes open SSE streams after ``http_shutdown_seconds``).

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and the number of
connections (``limit_concurrency``: past it a request gets 503), but has no deadline for a
request's headers, so a client that sends them a byte at a time holds its socket forever
(slowloris). :class:`BoundedH11Protocol` adds that deadline to uvicorn's own h11 protocol;
the body deadline is enforced where the body is read (``gateway.api.app.BodyLimit``).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.config import Settings


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers do not arrive
    within ``header_timeout`` seconds (from connect, or from the end of the last response)."""

    header_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_header_deadline()  # a request's headers are in: the app has it now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()  # the next request's headers get the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        handle = getattr(self, "_header_deadline", None)
        if handle is not None:
            handle.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:
                pass  # half a request was read: just drop the connection
            self.transport.close()


SWITCH_INTERVAL_SECONDS = 0.0005
"""How long a thread holds the GIL while another waits (CPython's default is 5 ms). The
gateway's threads mostly wait on SQLite, the chain or a signature check, each of which
gives up the GIL; at 5 ms a thread coming back from one waits for a batch-parsing thread's
whole slice, many times per anchor cycle (urgent anchor p95 under load: ~830 -> ~450 ms)."""


GC_THRESHOLD = (50_000, 20, 20)
"""Young-generation collections every 50,000 allocations rather than 700: a batch of a
thousand records allocates hundreds of thousands of short-lived objects, and CPython's
default collected them (and, every hundred collections, the whole heap) ~14% of the time."""


def tune_interpreter() -> None:
    """Process-wide settings for serving: shorter GIL slices (see SWITCH_INTERVAL_SECONDS),
    and a garbage collector that leaves what start-up built alone: it is moved out of the
    collected generations (``gc.freeze``), and young collections are rarer (GC_THRESHOLD)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments ``uvicorn.run`` gets from ``settings``."""
    protocol = type("ClaimxH11Protocol", (BoundedH11Protocol,),
                    {"header_timeout": settings.http_header_timeout_seconds})
    return {"http": protocol, "timeout_keep_alive": settings.http_keep_alive_seconds,
            "limit_concurrency": settings.http_max_connections,
            # without it SIGTERM waits for every open SSE stream, which never ends by itself
            "timeout_graceful_shutdown": settings.http_shutdown_seconds}
