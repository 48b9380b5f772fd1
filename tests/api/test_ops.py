"""Operating the gateway: Prometheus metrics, bounded clients (header, body and idle
timeouts, a connection cap), and `claimx worker` running every background job."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gateway.chain.client import Chain
from gateway.core.types import member_id
from gateway.core.webhook import verify_signature
from gateway.services.push.destinations import Destinations
from gateway.services.push.endpoints import register_endpoint
from gateway.store.db import Database
from gateway.store.events import emit
from gateway.store.vault import DEV_MASTER_KEY, Vault
from tests.support import CLAIMX, Served, serve_env, serve_gateway


def _metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text exposition."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{wanted} not in metrics:\n{text[:2000]}")


@pytest.mark.slow
def test_metrics_count_requests_records_and_backlog(dev_gateway: Served) -> None:
    http = httpx.Client(base_url=dev_gateway.url, timeout=10)
    for _ in range(3):
        assert http.get("/v1/log/head", headers=dev_gateway.auth("auditor.dev")).status_code == 200
    assert http.get("/v1/log/head").status_code == 401
    text = http.get("/metrics").text
    assert _metric(text, "claimx_http_requests_total",
                   'method="GET",route="/v1/log/head",status="200"') == 3
    assert _metric(text, "claimx_http_requests_total",
                   'method="GET",route="/v1/log/head",status="401"') == 1
    assert _metric(text, "claimx_database_up") == 1
    assert _metric(text, "claimx_chain_circuit_state", 'state="closed"') == 1
    for name in ("claimx_log_size", "claimx_anchor_lag", "claimx_webhook_backlog",
                 "claimx_webhook_parked", "claimx_records_accepted_total",
                 "claimx_chain_errors_total"):
        assert _metric(text, name) >= 0
    # raw paths never become labels: a digest in a path is counted under its route template
    http.get("/v1/records/" + "ab" * 32, headers=dev_gateway.auth("auditor.dev"))
    text = http.get("/metrics").text
    assert "ab" * 32 not in text
    assert 'route="/v1/records/{digest}"' in text


def _recv_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def _recv_all(sock: socket.socket, limit: float) -> bytes:
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError as exc:
        raise AssertionError(f"connection still open after {limit} s; got {data[:200]!r}") from exc
    return data


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[Served]:
    env = {"CLAIMX_HTTP_HEADER_TIMEOUT_SECONDS": "1", "CLAIMX_HTTP_BODY_TIMEOUT_SECONDS": "1",
           "CLAIMX_HTTP_KEEP_ALIVE_SECONDS": "1", "CLAIMX_HTTP_MAX_CONNECTIONS": "8"}
    with serve_gateway(tmp_path, env=env) as served:
        yield served


def _connect(served: Served) -> socket.socket:
    host, port = served.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


@pytest.mark.slow
def test_slow_headers_are_cut_off(bounded: Served) -> None:
    start = time.monotonic()
    with _connect(bounded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert _recv_all(sock, 5) == b""  # closed by the server, no answer
    assert time.monotonic() - start < 4


@pytest.mark.slow
def test_every_process_of_serve_workers_cuts_slow_headers_off(tmp_path: Path) -> None:
    """`serve --workers 2`: each process builds its protocol from the settings too (its
    connections land on either process; none stays open past the 1 s header deadline)."""
    env = {"CLAIMX_HTTP_HEADER_TIMEOUT_SECONDS": "1"}
    with serve_gateway(tmp_path, ["--workers", "2"], env=env) as served:
        socks = [_connect(served) for _ in range(6)]
        try:
            for sock in socks:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            # closed by the server: well before the default deadline (10 s) would have
            assert [_recv_all(sock, 8) for sock in socks] == [b""] * len(socks)
        finally:
            for sock in socks:
                sock.close()
        assert served.log_text().count("Started server process") == 2


@pytest.mark.slow
def test_slow_headers_after_a_first_request_are_cut_off_too(bounded: Served) -> None:
    with _connect(bounded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _recv_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a second request, dribbled
        assert _recv_all(sock, 5) == b""


@pytest.mark.slow
def test_a_stalled_body_is_a_408(bounded: Served) -> None:
    with _connect(bounded) as sock:
        sock.sendall(b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{\"pay")
        answer = _recv_all(sock, 6)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"body_timeout"' in answer


@pytest.mark.slow
def test_idle_connections_are_closed(bounded: Served) -> None:
    with _connect(bounded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _recv_response(sock).startswith(b"HTTP/1.1 200")
        assert _recv_all(sock, 5) == b""  # keep-alive idle past 1 s: closed


@pytest.mark.slow
def test_connections_past_the_cap_get_503(bounded: Served) -> None:
    held = [_connect(bounded) for _ in range(8)]
    try:
        with _connect(bounded) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 503")
    finally:
        for s in held:
            s.close()
    assert httpx.get(bounded.url + "/healthz", timeout=5).status_code == 200


class _Hooks(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
@pytest.mark.anvil
def test_claimx_worker_delivers_webhooks_without_a_gateway(anvil_url: str,
                                                           tmp_path: Path) -> None:
    """The split deployment: `serve --no-worker` gateways plus `claimx worker`; the worker
    alone must send webhooks (and so run the request-clock sweep riding on the push loop)."""
    deployment = tmp_path / "deployment.json"
    deployment.write_text(Chain.connect(anvil_url).deploy().to_json())
    db_url = f"sqlite:///{tmp_path / 'claimx.db'}"
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=receiver.serve_forever, args=(0.05,), daemon=True).start()
    member = member_id("insurer.worker")
    db = Database(db_url, master_key=DEV_MASTER_KEY)
    with db.session() as s:
        _, secret = register_endpoint(
            s, member, f"http://127.0.0.1:{receiver.server_port}/hook",
            destinations=Destinations(["127.0.0.1"]), vault=Vault(DEV_MASTER_KEY))
    with db.session() as s:
        emit(s, member, "claim.opened", {"reference": "W-1"})
    env = serve_env(tmp_path, {"CLAIMX_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"})
    proc = subprocess.Popen([*CLAIMX, "worker", "--rpc-url", anvil_url, "--database-url", db_url,
                             "--deployment", str(deployment)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _Hooks.received and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
        receiver.shutdown()
        receiver.server_close()
    assert _Hooks.received, "claimx worker delivered no webhook within 30 s"
    headers, body = _Hooks.received[0]
    verify_signature(secret, headers["X-Claimx-Signature"], body)
    assert json.loads(body)["event"]["type"] == "claim.opened"
