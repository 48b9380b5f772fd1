"""The outbox and publisher against a real local HTTP server that answers as the gateway does:
a 503 or a dropped connection is retried with capped backoff, a 4xx fails only its item (error
kept), a refused batch is split to find the bad envelope, nothing is sent twice once sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.connect.outbox import Outbox, Record
from gateway.connect.publisher import MAX_BACKOFF, Publisher, backoff


class FakeGateway:
    """Answers POST /v1/records[/batch]: ``outage`` 503s first, envelopes whose payload is
    ``bad`` get a 422, everything else 201 with the digest."""

    def __init__(self) -> None:
        self.outage = 0
        self.bad = "YmFk"
        self.calls: list[tuple[str, int]] = []
        self.auth: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.auth.add(self.headers.get("Authorization", ""))
                envs = body["envelopes"] if self.path.endswith("/batch") else [body]
                if outer.outage > 0:
                    outer.outage -= 1
                    return self._answer(503, {"error": {"code": "database_unavailable",
                                                        "message": "down"}}, len(envs))
                if any(e["payload"] == outer.bad for e in envs):
                    return self._answer(422, {"error": {"code": "invalid_payload",
                                                        "message": "bad"}}, len(envs))
                out = [{"digest": e["signatures"][0]["keyid"], "duplicate": False,
                        "promise": {"digest": e["signatures"][0]["keyid"], "merge_delay": 300}}
                       for e in envs]
                self._answer(201, out if self.path.endswith("/batch") else out[0], len(envs))

            def _answer(self, status: int, obj: Any, n: int) -> None:
                outer.calls.append((self.path, status))
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway()
    t = threading.Thread(target=gw.server.serve_forever, daemon=True)
    t.start()
    yield gw
    gw.server.shutdown()


def _record(n: int, payload: str = "b2s=") -> Record:
    return Record(f"{n:064x}", "hospital.invoice",
                  {"payloadType": "x", "payload": payload,
                   "signatures": [{"keyid": f"{n:064x}", "sig": "c2ln"}]})


def test_backoff_doubles_and_is_capped_at_30_seconds() -> None:
    assert [backoff(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff(10) == backoff(1000) == MAX_BACKOFF == 30.0


def test_an_input_is_stored_once_under_its_key(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    first = box.add("k", "mllp", [_record(1)])
    again = box.add("k", "mllp", [_record(2)])  # re-signed with a new salt: discarded
    assert not first.replayed and again.replayed and again.digests == first.digests
    assert box.status()["queued"] == 1


def test_a_503_is_retried_then_sent_once(tmp_path: Path, gateway: FakeGateway) -> None:
    box = Outbox(tmp_path / "o.db")
    box.add("a", "watch", [_record(1), _record(2)])
    gateway.outage = 1
    pub = Publisher(box, gateway.url, "cx1_token")
    assert pub.drain_once() == 0
    assert box.status()["oldest_waiting"]["last_error"].startswith("HTTP 503")
    assert box.due(10) == []  # backing off
    assert pub.drain_once() == 0
    assert box.due(10, now=9e18) and pub.failures == 1
    for item in box.due(10, now=9e18):  # time passes
        box.retry_later([item.id], -1, "")
    assert pub.drain_once() == 2
    assert box.status()["sent"] == 2 and pub.drain_once() == 0
    assert gateway.auth == {"Bearer cx1_token"}


def test_a_refused_envelope_fails_alone_with_its_error(tmp_path: Path,
                                                       gateway: FakeGateway) -> None:
    box = Outbox(tmp_path / "o.db")
    box.add("a", "fhir", [_record(1), _record(2, payload=gateway.bad), _record(3)])
    pub = Publisher(box, gateway.url, "t")
    assert pub.drain_once() == 3
    status = box.status()
    assert (status["sent"], status["failed"]) == (2, 1)
    assert status["recent_failures"][0]["error"]["code"] == "invalid_payload"
    assert [c for c in gateway.calls if c[0].endswith("/batch")] == [("/v1/records/batch", 422)]


def test_an_unreachable_gateway_keeps_the_items_queued(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.add("a", "mllp", [_record(1)])
    pub = Publisher(box, "http://127.0.0.1:9", "t", timeout=2)
    assert pub.drain_once() == 0
    assert box.status()["queued"] == 1
    assert box.status()["oldest_waiting"]["last_error"] == "ConnectError"


def test_each_sent_record_keeps_its_acceptance_promise(tmp_path: Path,
                                                       gateway: FakeGateway) -> None:
    box = Outbox(tmp_path / "o.db")
    box.add("a", "watch", [_record(1), _record(2)])
    box.add("b", "watch", [_record(3)])
    assert box.promise(f"{1:064x}") is None  # not sent: nothing promised yet
    assert Publisher(box, gateway.url, "t").drain_once() == 3
    for n in (1, 2, 3):
        assert box.promise(f"{n:064x}") == {"digest": f"{n:064x}", "merge_delay": 300}
    box.close()
    assert Outbox(tmp_path / "o.db").promise(f"{3:064x}") is not None  # durable
