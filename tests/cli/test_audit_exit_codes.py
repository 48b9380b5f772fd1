"""``claimx audit``'s three outcomes: 1 when a hostile gateway's read is not proven, 2 when the
gateway or the chain cannot be asked (unreachable, token refused, registry given as --log).
The proven case (exit 0) runs against a real gateway in tests/e2e/test_cli.py."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.cli.cli_support import Published, closed_port_url
from tests.support import CLAIMX

pytestmark = pytest.mark.anvil

Routes = dict[str, tuple[int, dict[str, Any]]]


def gateway_answering(routes: Routes) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 playing a gateway that answers ``routes`` (else 404)."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            status, body = routes.get(self.path, (404, {"error": {"code": "not_found",
                                                                   "message": "no such"}}))
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hostile_gateway(published: Published) -> Iterator[str]:
    """Claims the record was read, citing the record's own (valid) receipt as the read entry."""
    digest = published.receipt["digest"]
    issuer = "0x" + "ee" * 32
    yield from gateway_answering({
        f"/v1/records/{digest}": (200, {"digest": digest, "issuer": issuer,
                                        "kind": "hospital.invoice",
                                        "issued_at": "2026-11-20T08:00:00Z"}),
        f"/v1/records/{digest}/access-log": (200, {"reads": [
            {"log_entry": digest, "member": issuer, "claim_id": None}]}),
        f"/v1/records/{digest}/receipt": (200, published.receipt),
    })


@pytest.fixture
def refusing_gateway() -> Iterator[str]:
    yield from gateway_answering({})  # everything 404: as a gateway refusing a bad token does


def audit(p: Published, gateway: str, *args: str, log: str | None = None,
          rpc_url: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLAIMX, "audit", p.receipt["digest"], "--gateway", gateway, "--rpc-url",
         rpc_url or p.rpc_url, "--log", log or p.deployment.log, "--token", "cx1_x", *args],
        capture_output=True, text=True, timeout=60)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_unproven_read_exits_1(published: Published, hostile_gateway: str) -> None:
    proc = audit(published, hostile_gateway)
    assert proc.returncode == 1, proc.stderr
    assert "[FAIL] exchange.access entry: is a hospital.invoice" in proc.stdout
    assert proc.stdout.rstrip().endswith("UNPROVEN READS")
    assert one_line(proc).startswith("INVALID:")
    doc = json.loads(audit(published, hostile_gateway, "--json").stdout)
    assert doc[published.receipt["digest"]][0]["verdict"] == "INVALID"


def test_unreachable_gateway_exits_2(published: Published) -> None:
    proc = audit(published, closed_port_url())
    assert proc.returncode == 2
    line = one_line(proc)
    assert "cannot reach the gateway" in line and "--gateway" in line


def test_refusing_gateway_exits_2(published: Published, refusing_gateway: str) -> None:
    proc = audit(published, refusing_gateway, "--json")
    assert proc.returncode == 2
    assert "the gateway refused" in one_line(proc)
    assert json.loads(proc.stdout)["verdict"] == "UNCHECKED"


def test_registry_as_log_exits_2(published: Published, hostile_gateway: str) -> None:
    proc = audit(published, hostile_gateway, log=published.deployment.registry)
    assert proc.returncode == 2 and "not an EvidenceLog" in one_line(proc)


def test_unreachable_node_exits_2(published: Published, hostile_gateway: str) -> None:
    proc = audit(published, hostile_gateway, rpc_url=closed_port_url())
    assert proc.returncode == 2 and "cannot reach the chain" in one_line(proc)
