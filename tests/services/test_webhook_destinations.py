"""Webhooks cannot reach the exchange's network: a hostile member's URLs in every spelling,
DNS rebinding at delivery, the address actually connected to, and secrets sealed at rest.
No traffic leaves this machine: names are resolved by a stand-in resolver."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select, text

from gateway.config import Settings
from gateway.core.errors import ClaimxError, InputError
from gateway.services.push import endpoints
from gateway.services.push.destinations import (
    FORBIDDEN_CODE,
    DestinationForbidden,
    Destinations,
    parse_ipv4,
)
from gateway.services.push.worker import PushWorker
from gateway.store.db import Database, downgrade, upgrade
from gateway.store.tables import Delivery, WebhookEndpoint, utcnow
from gateway.store.vault import DEV_MASTER_KEY, Vault
from tests.services.test_push import INSURER, VAULT, Clock, Receiver, _handler, event, no_dns


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """test_push's signature-checking receiver, on 127.0.0.1."""
    rec = Receiver()
    rec.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    threading.Thread(target=rec.server.serve_forever, args=(0.05,), daemon=True).start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


PUBLIC = "93.184.215.14"
"""A public address, only ever written into URLs and stand-in DNS answers: never dialled."""

INTERNAL = [
    # IPv4 loopback in every spelling a resolver accepts
    "https://127.0.0.1/", "https://127.0.0.1./", "https://127.1/", "https://127.0.1/",
    "https://2130706433/", "https://0x7f000001/", "https://0X7F000001/", "https://0x7f.1/",
    "https://0177.0.0.1/", "https://0177.0.0.01/", "https://017700000001/",
    "https://127.255.255.254:5432/",
    # private, link-local (cloud metadata), CGNAT, this-network, multicast, reserved
    "https://10.0.0.1/", "https://10.1/", "https://012.0.0.1/", "https://172.16.0.1/",
    "https://172.31.255.255/", "https://192.168.1.1/", "https://3232235777/",
    "https://169.254.169.254/latest/meta-data/", "https://0xa9fea9fe/",
    "https://100.64.0.1/", "https://100.127.255.254/", "https://0.0.0.0/", "https://0/",
    "https://224.0.0.1/", "https://239.255.255.250/", "https://240.0.0.1/",
    "https://255.255.255.255/", "https://192.0.2.10/", "https://198.18.0.1/",
    # IPv6: loopback, unspecified, unique-local, link-local with a zone id, site-local,
    # multicast, and IPv4-mapped / -compatible / 6to4 / NAT64 forms of internal IPv4
    "https://[::1]/", "https://[0:0:0:0:0:0:0:1]/", "https://[::]/", "https://[fc00::1]/",
    "https://[fd12:3456::1]/", "https://[fe80::1]/", "https://[fe80::1%25eth0]/",
    "https://[fec0::1]/", "https://[ff02::1]/", "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/", "https://[::ffff:169.254.169.254]/", "https://[::127.0.0.1]/",
    "https://[::10.0.0.1]/", "https://[2002:7f00:1::]/", "https://[2002:a9fe:a9fe::1]/",
    "https://[64:ff9b::127.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/",
    "https://[64:ff9b:1::a00:1]/",
    # names refused by name, with and without trailing dots and in any case
    "https://localhost/", "https://LOCALHOST./", "https://localhost:8443/",
    "https://api.localhost/", "https://metadata.google.internal/", "https://printer.local/",
    "https://nas.home.arpa/", "https://db.localdomain/", "https://postgres/",
    "https://ip6-localhost/",
    # public addresses over plain http
    f"http://{PUBLIC}/hook", "http://hooks.example.com/hook",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_destinations_are_refused(url: str) -> None:
    with pytest.raises(DestinationForbidden) as err:
        Destinations(resolver=no_dns).check(url)
    assert (err.value.code, err.value.http_status) == (FORBIDDEN_CODE, 422)
    host = urlsplit(url).hostname or ""
    assert host not in err.value.msg.lower()  # names the rule, not the target


def test_registration_refuses_them_and_stores_nothing(db: Database) -> None:
    for url in INTERNAL:
        with db.session() as s, pytest.raises(DestinationForbidden):
            endpoints.register_endpoint(s, INSURER, url, vault=VAULT,
                                        destinations=Destinations(resolver=no_dns))
    with db.session() as s:
        assert s.scalar(select(WebhookEndpoint.id)) is None


def test_spellings_are_parsed_as_the_system_resolver_parses_them() -> None:
    """The legacy forms mean what inet_aton (and so getaddrinfo) makes of them."""
    for spelling in ["127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1",
                     "017700000001", "10.1", "0xa9fea9fe", "0", "1.2.3.4", "3232235777"]:
        assert parse_ipv4(spelling) == ipaddress.IPv4Address(socket.inet_aton(spelling))
    assert parse_ipv4("hooks.example.com") is None
    assert parse_ipv4("1e100.net") is None


@pytest.mark.parametrize("url", ["https://256.0.0.1/", "https://1.2.3.4.5/", "https://08.0.0.1/",
                                 "https://4294967296/", "https://[::1::2]/",
                                 "https://h\u00f6oks.example.com/"])
def test_malformed_hosts_are_bad_urls(url: str) -> None:
    with pytest.raises(InputError) as err:
        Destinations(resolver=no_dns).check(url)
    assert err.value.code == "bad_url"


def resolver(answers: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    """A stand-in DNS: each name's addresses; unknown names do not resolve."""
    def resolve(host: str, _port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return answers[host]
    return resolve


def test_public_destinations_are_accepted(db: Database) -> None:
    v6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
    dns = resolver({"hooks.example-insurer.cn": [PUBLIC, v6]})
    for url in [f"https://{PUBLIC}/hook", f"https://{PUBLIC}:8443/hook",
                f"https://[{v6}]/hook",
                "https://hooks.example-insurer.cn/claimx",
                "https://HOOKS.example-insurer.cn./claimx",
                "https://not-yet-in-dns.example-insurer.cn/claimx"]:  # checked at delivery
        with db.session() as s:
            endpoints.register_endpoint(s, INSURER, url, destinations=Destinations(resolver=dns),
                                        vault=VAULT)


def test_names_resolving_inside_are_refused_at_registration() -> None:
    answers = {"intranet.example.com": ["10.0.0.5"],
               "mixed.example.com": [PUBLIC, "127.0.0.1"],
               "mapped.example.com": ["::ffff:169.254.169.254"]}
    dns = resolver(answers)
    for name in answers:
        with pytest.raises(DestinationForbidden) as err:
            Destinations(resolver=dns).check(f"https://{name}/hook")
        assert "resolves to an address" in err.value.msg and "10.0.0.5" not in err.value.msg


def test_allow_hosts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMX_WEBHOOK_ALLOW_HOSTS", " 127.0.0.1, Hook.Test ,,")
    settings = Settings()
    assert settings.webhook_allow_hosts == ["127.0.0.1", "hook.test"]
    allowed = Destinations(settings.webhook_allow_hosts, resolver=no_dns)
    for url in ["http://127.0.0.1:8080/hook", "http://2130706433:8080/hook",
                "http://hook.test./x", "https://hook.test/x"]:
        allowed.check(url)
    with pytest.raises(DestinationForbidden):
        allowed.check("http://127.0.0.2/hook")  # only the named host, not its neighbours
    with pytest.raises(DestinationForbidden):
        Destinations(Settings(webhook_allow_hosts=[]).webhook_allow_hosts).check(
            "http://127.0.0.1/hook")


# --- at delivery ---------------------------------------------------------------------------


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


# --- TLS: the pinned address, the original name in SNI and in the certificate check ---------


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


# --- secrets at rest -------------------------------------------------------------------------


def test_secret_column_holds_no_plaintext(db: Database, receiver: Receiver) -> None:
    with db.session() as s:
        ep, secret = endpoints.register_endpoint(s, INSURER, receiver.url,
                                                 destinations=Destinations(["127.0.0.1"]),
                                                 vault=VAULT)
        endpoint_id = ep.id
    with db.engine.connect() as conn:
        [row] = conn.execute(text("SELECT * FROM webhook_endpoints")).mappings().all()
    raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
    assert secret.encode() not in raw and secret[len("whsec_"):].encode() not in raw
    assert VAULT.open_secret(row["secret_ct"], endpoint_id) == secret
    with pytest.raises(ClaimxError):
        VAULT.open_secret(row["secret_ct"], "another-endpoint")  # bound to its row

    receiver.secret = secret
    event(db, INSURER)
    other_key = Vault(bytes(32))  # a gateway started with another master key
    w = push_worker(db, Destinations(["127.0.0.1"]), vault=other_key)
    assert deliver_one(w).last_error == "secret_unreadable" and receiver.got == []


def test_migration_0006_seals_existing_secrets_and_downgrades(database_url: str) -> None:
    database = Database(database_url, migrate=False)
    try:
        upgrade(database.engine, "0005")
        with database.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO webhook_endpoints (id, member_id, url, secret, active, created_at) "
                "VALUES ('ep-old', :m, 'https://hooks.example.com/', 'whsec_plain', :t, :n)"),
                {"m": INSURER, "t": True, "n": utcnow()})
        with pytest.raises(RuntimeError, match="master key"):
            upgrade(database.engine)  # rows to seal and no key: refused, nothing changed
        upgrade(database.engine, master_key=DEV_MASTER_KEY)
        with database.engine.connect() as conn:
            [row] = conn.execute(text("SELECT * FROM webhook_endpoints")).mappings().all()
        assert "secret" not in row and b"whsec_plain" not in row["secret_ct"]
        assert Vault(DEV_MASTER_KEY).open_secret(row["secret_ct"], "ep-old") == "whsec_plain"
        downgrade(database.engine, "0005", master_key=DEV_MASTER_KEY)
        with database.engine.connect() as conn:
            [row] = conn.execute(text("SELECT * FROM webhook_endpoints")).mappings().all()
        assert row["secret"] == "whsec_plain" and "secret_ct" not in row
    finally:
        database.engine.dispose()
