"""Push test kit: member ids, a stand-in resolver, a real signature-checking webhook
receiver, a settable clock, the push routes served by uvicorn, and small helpers that
register endpoints, emit events and run one delivery."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from gateway.api.push import router
from gateway.config import Settings
from gateway.core.errors import ClaimxError, VerificationError
from gateway.core.types import Role, member_id
from gateway.core.webhook import verify_signature
from gateway.services.auth import Caller, issue_credential
from gateway.services.push import endpoints
from gateway.services.push.destinations import (
    Destinations,
)
from gateway.services.push.worker import PushWorker
from gateway.store.db import Database
from gateway.store.events import emit
from gateway.store.tables import Delivery, Event
from gateway.store.vault import DEV_MASTER_KEY, Vault

INSURER = member_id("insurer-a")
OTHER = member_id("insurer-b")
HOSPITAL = member_id("hospital-c")
BASE = 2.0
"""Backoff base in (fake-clock) seconds: the clock is advanced, never waited for (and stays
within the receiver's 300 s signature tolerance)."""


def no_dns(host: str, port: int) -> list[str]:
    """A resolver that knows no names: tests never send a DNS query off this machine."""
    raise OSError(f"tests resolve no names ({host})")


LOCAL = Destinations(["127.0.0.1"], resolver=no_dns)
"""The receivers here listen on 127.0.0.1, allowed as a gateway allows its dev receivers."""


VAULT = Vault(DEV_MASTER_KEY)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """An HTTP server that checks signatures like an insurer's system would, and can be told
    to answer 500 a number of times."""

    secret: str = ""
    fail: int = 0
    got: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/claimx-hook"


def _handler(rec: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                verify_signature(rec.secret, self.headers.get("X-Claimx-Signature"), body)
                ok = True
            except VerificationError:
                ok = False
            rec.got.append(Received(dict(self.headers.items()), body, ok))
            code = 401 if not ok else 500 if rec.fail > 0 else 204
            rec.fail -= code == 500
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    rec.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    thread = threading.Thread(target=rec.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


class Clock:
    """A settable unix clock, so backoff is checked by moving time rather than waiting."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.engine.dispose()


def worker(db: Database, clock: Callable[[], float], max_attempts: int = 3) -> PushWorker:
    settings = Settings(webhook_backoff_seconds=BASE, webhook_max_attempts=max_attempts,
                        webhook_timeout_seconds=5.0, webhook_allow_hosts=["127.0.0.1"])
    return PushWorker(db, settings, clock=clock, destinations=LOCAL)


def endpoint(db: Database, member: bytes, url: str) -> tuple[str, str]:
    with db.session() as s:
        ep, secret = endpoints.register_endpoint(s, member, url, destinations=LOCAL,
                                                 vault=VAULT)
        return ep.id, secret


def event(db: Database, member: bytes, type_: str = "record.received",
          claim_id: str | None = None, **data: Any) -> int:
    with db.session() as s:
        emit(s, member, type_, data or {"n": 1}, claim_id=claim_id)
        s.flush()
        return int(s.scalars(select(Event.id).order_by(Event.id.desc()).limit(1)).one())


def deliveries(db: Database) -> list[Delivery]:
    with db.session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def at(clock: Clock, seconds: float = 0.0) -> datetime:
    return datetime.fromtimestamp(clock.t + seconds, UTC)


def aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Directory:
    """Stands in for the chain-backed member directory: role and standing by member id."""

    def __init__(self, *callers: Caller) -> None:
        self.callers = {c.member_id: c for c in callers}

    def lookup(self, member: bytes) -> Caller | None:
        return self.callers.get(member)


@dataclass
class Gateway:
    url: str
    db: Database
    tokens: dict[bytes, str]

    def auth(self, member: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[member]}"}


def _app(db: Database) -> FastAPI:
    app = FastAPI()
    app.state.services = SimpleNamespace(db=db, vault=VAULT,
                                         push=SimpleNamespace(destinations=LOCAL),
                                         members=Directory(
        Caller(INSURER, Role.INSURER, "insurer-a"), Caller(OTHER, Role.INSURER, "insurer-b"),
        Caller(HOSPITAL, Role.HOSPITAL, "hospital-c")))

    @app.exception_handler(ClaimxError)
    async def _error(_request: Request, exc: ClaimxError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    app.include_router(router)
    return app


@pytest.fixture
def gateway(db: Database) -> Iterator[Gateway]:
    """The push routes served by uvicorn on a free port (a real HTTP server, so streams
    arrive as they are written)."""
    with db.session() as s:
        tokens: dict[bytes, str] = {m: issue_credential(s, m) for m in (INSURER, OTHER,
                                                                         HOSPITAL)}
    config = uvicorn.Config(_app(db), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Gateway(f"http://127.0.0.1:{port}", db, tokens)
    server.should_exit = True
    thread.join(10)


PUBLIC = "93.184.215.14"
"""A public address, only ever written into URLs and stand-in DNS answers: never dialled."""


def resolver(answers: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    """A stand-in DNS: each name's addresses; unknown names do not resolve."""
    def resolve(host: str, _port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return answers[host]
    return resolve


def push_worker(db: Database, destinations: Destinations, **kw: Any) -> PushWorker:
    settings = Settings(webhook_backoff_seconds=2.0, webhook_max_attempts=1,
                        webhook_timeout_seconds=5.0)
    return PushWorker(db, settings, clock=Clock(), destinations=destinations, **kw)


def deliver_one(w: PushWorker) -> Delivery:
    w.fan_out()
    w.deliver_due()
    with w.db.session() as s:
        [d] = s.scalars(select(Delivery)).all()
        return d
