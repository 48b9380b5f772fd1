"""Webhook delivery cannot reach the exchange's network: DNS rebinding at delivery, the
address actually connected to, port states not told apart, and TLS checked against the
registered name (SNI). Names are resolved by a stand-in resolver."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.services.push import endpoints
from gateway.services.push.destinations import (
    Destinations,
)
from gateway.store.db import Database
from gateway.store.tables import Delivery, WebhookEndpoint, utcnow
from tests.services.push_support import (
    INSURER,
    PUBLIC,
    VAULT,
    Receiver,
    deliver_one,
    event,
    no_dns,
    push_worker,
    resolver,
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A bare TCP listener on 127.0.0.1: any connection attempt shows up in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def connected(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def test_dns_rebinding_to_loopback_is_refused_at_delivery(db: Database,
                                                          listener: socket.socket) -> None:
    """Public when registered, 127.0.0.1 when delivered: refused, and nothing dials it."""
    port = listener.getsockname()[1]
    answers = {"rebind.example.com": [PUBLIC]}
    dns = Destinations(resolver=resolver(answers))
    with db.session() as s:
        endpoints.register_endpoint(s, INSURER, f"https://rebind.example.com:{port}/hook",
                                    destinations=dns, vault=VAULT)
    answers["rebind.example.com"] = ["127.0.0.1"]
    event(db, INSURER)
    d = deliver_one(push_worker(db, dns))
    assert (d.status, d.last_error) == ("parked", "destination_forbidden")
    assert not connected(listener)


def test_an_endpoint_stored_before_the_rules_is_refused_at_delivery(
        db: Database, listener: socket.socket) -> None:
    """A row written without the registration check (an older gateway) is still caught."""
    port = listener.getsockname()[1]
    for url in [f"http://127.0.0.1:{port}/", f"https://localhost.:{port}/",
                f"https://0x7f000001:{port}/", "https://unknown.example.com/"]:
        with db.session() as s:
            s.query(Delivery).delete()
            s.query(WebhookEndpoint).delete()
            s.add(WebhookEndpoint(id="ep-1", member_id=INSURER, url=url, active=True,
                                  secret_ct=VAULT.seal_secret("whsec_x", "ep-1"),
                                  created_at=utcnow()))
        event(db, INSURER)
        d = deliver_one(push_worker(db, Destinations(resolver=no_dns)))
        assert (d.status, d.last_error) == ("parked", "destination_forbidden"), url
    assert not connected(listener)


def test_delivery_connects_to_the_address_it_checked(db: Database, receiver: Receiver) -> None:
    """The name is looked up once, by the gateway; httpx never resolves it (the stand-in
    name exists nowhere else), and the receiver still sees the name in Host."""
    port = receiver.server.server_address[1]
    calls: list[str] = []
    dns = Destinations(["hook.test"], resolver=resolver({"hook.test": ["127.0.0.1"]}, calls))
    with db.session() as s:
        _, receiver.secret = endpoints.register_endpoint(
            s, INSURER, f"http://hook.test:{port}/claimx-hook", destinations=dns, vault=VAULT)
    event(db, INSURER)
    d = deliver_one(push_worker(db, dns))
    assert (d.status, d.last_error) == ("delivered", None)
    [got] = receiver.got
    assert got.verified and got.headers["Host"] == f"hook.test:{port}"
    assert calls == ["hook.test"]  # registration skips allowed hosts; one lookup to deliver


def test_failures_do_not_tell_port_states_apart(db: Database, listener: socket.socket) -> None:
    """A closed port and a service that is not HTTP (as PostgreSQL is) read the same."""
    def drop() -> None:
        listener.setblocking(True)
        conn, _ = listener.accept()
        conn.close()

    threading.Thread(target=drop, daemon=True).start()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    errors = []
    for port in [closed, listener.getsockname()[1]]:
        with db.session() as s:
            s.query(Delivery).delete()
            s.query(WebhookEndpoint).delete()
        with db.session() as s:
            endpoints.register_endpoint(s, INSURER, f"http://127.0.0.1:{port}/",
                                        destinations=Destinations(["127.0.0.1"]), vault=VAULT)
        event(db, INSURER)
        errors.append(deliver_one(push_worker(db, Destinations(["127.0.0.1"]))).last_error)
    assert errors == ["connect_failed", "connect_failed"]


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[ThreadingHTTPServer, list[str], Path]]:
    """An HTTPS receiver on 127.0.0.1 serving a certificate for ``hook.test``; records the
    SNI name of each handshake."""
    cert_file, key_file = _certificate(tmp_path, "hook.test")
    sni: list[str] = []
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name or "")

    ctx.sni_callback = record_sni

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server, sni, cert_file
    server.shutdown()
    server.server_close()


def test_https_delivery_sends_the_name_in_sni_and_checks_the_certificate_against_it(
        db: Database, tls_receiver: tuple[ThreadingHTTPServer, list[str], Path],
        tmp_path: Path) -> None:
    server, sni, ca = tls_receiver
    port = server.server_address[1]
    dns = Destinations(["hook.test", "other.test"], resolver=resolver(
        {"hook.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}))
    trust = ssl.create_default_context(cafile=str(ca))
    client = httpx.Client(verify=trust, follow_redirects=False, trust_env=False,
                          limits=httpx.Limits(max_keepalive_connections=0))
    errors = []
    for name in ["hook.test", "other.test"]:  # other.test: same address, wrong certificate
        with db.session() as s:
            s.query(Delivery).delete()
            s.query(WebhookEndpoint).delete()
        with db.session() as s:
            endpoints.register_endpoint(s, INSURER, f"https://{name}:{port}/claimx",
                                        destinations=dns, vault=VAULT)
        event(db, INSURER)
        errors.append(deliver_one(push_worker(db, dns, client=client)).last_error)
    client.close()
    assert errors == [None, "connect_failed"]
    assert sni[:2] == ["hook.test", "other.test"]
