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
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

RUN_WORKER_ENV = "CLAIMX_SERVE_RUN_WORKER"
"""Set by `claimx serve --workers N` for its processes: ``1`` runs an anchor worker in each
(the lease elects the one that works), ``0`` none (``--no-worker``)."""
FACTORY = "gateway.api.server:app_from_environment"
"""What each `serve --workers N` process imports and calls to build its app."""


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


def log_to_stderr() -> None:
    """INFO lines with time and source; Alembic's plugin set-up (a dozen lines at every
    start that say nothing to an operator) only from WARNING up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def uvicorn_options(settings: Settings, *, workers: int = 1) -> dict[str, Any]:
    """The keyword arguments ``uvicorn.run`` gets from ``settings``. With ``workers`` > 1
    uvicorn starts that many processes on one listening socket; they get the protocol by
    name (a class made here would not reach a freshly started interpreter)."""
    common = {"timeout_keep_alive": settings.http_keep_alive_seconds,
              "limit_concurrency": settings.http_max_connections,
              # without it SIGTERM waits for every open SSE stream, which never ends by itself
              "timeout_graceful_shutdown": settings.http_shutdown_seconds}
    if workers > 1:
        return common | {"http": f"{__name__}:BoundedH11Protocol", "workers": workers,
                         "factory": True}
    protocol = type("ClaimxH11Protocol", (BoundedH11Protocol,),
                    {"header_timeout": settings.http_header_timeout_seconds})
    return common | {"http": protocol}


def app_from_environment() -> FastAPI:
    """The app of one `claimx serve --workers N` process, built inside that process.

    uvicorn starts its workers with ``spawn`` (a fresh interpreter, nothing inherited), so
    each builds its own database engine, chain client, caches and anchor worker here, from
    the CLAIMX_* environment the parent set (its URLs, deployment file and home). The
    parent has already migrated the database, deployed and registered the operator key.
    Every process runs an anchor worker under the one database lease: the holder anchors,
    the others stand by and take over if it dies."""
    from gateway.api.app import create_app
    from gateway.services.wiring import build_services

    log_to_stderr()
    tune_interpreter()
    settings = Settings()
    run_worker = os.environ.get(RUN_WORKER_ENV, "1") == "1"
    if run_worker:
        settings = settings.model_copy(update={"worker_id": _worker_id(settings)})
    BoundedH11Protocol.header_timeout = settings.http_header_timeout_seconds  # this process's
    return create_app(build_services(settings), run_worker=run_worker)


def _worker_id(settings: Settings) -> str:
    """This process's lease holder id: CLAIMX_WORKER_ID, or CLAIMX_HOME/worker.id, for the
    first process that locks it (a restart takes the lease back at once); the other
    processes of the same home get fresh ids and stand by."""
    from gateway.core.errors import ClaimxError
    from gateway.services.lease import claim_worker_id

    try:
        return claim_worker_id(settings.home, settings.worker_id)
    except ClaimxError as exc:
        if exc.code != "worker_id_in_use":
            raise
        return claim_worker_id(settings.home)
