"""The demo's loopback servers: the gateway on real HTTP in a thread, and a webhook receiver.

``claimx demo`` runs its members' systems as :class:`gateway.client.Client` instances over
real sockets, as members' integrations run (a test client in process cannot hold a
server-sent event stream open, and would not exercise the HTTP framing the SDK parses).
Both servers listen on 127.0.0.1 on a free port and stop with their ``with`` block.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from fastapi import FastAPI

from gateway.client import verify_signature
from gateway.core.errors import ClaimxError


class ThreadedGateway:
    """``app`` served by uvicorn on a loopback port in a daemon thread (its lifespan runs,
    so the anchor worker and the push sender start and stop with it)."""

    def __init__(self, app: FastAPI, start_timeout: float = 30.0) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run,  # no signals off main
                                        kwargs={"sockets": [self._sock]}, daemon=True,
                                        name="claimx-demo-gateway")
        self._start_timeout = start_timeout

    def __enter__(self) -> ThreadedGateway:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ClaimxError("the demo's gateway did not start", code="demo_failed")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


class WebhookReceiver:
    """The insurer's webhook receiver: each POST's signature is checked with the SDK's
    :func:`gateway.client.verify_signature`; a bad one is answered 401 and remembered."""

    def __init__(self) -> None:
        self.secret = ""
        self.events: list[tuple[str, bool]] = []
        """(event type, signature valid) for each POST, in arrival order."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    verify_signature(receiver.secret, self.headers.get("X-Claimx-Signature"),
                                     body)
                    ok = True
                except ClaimxError:
                    ok = False
                receiver.events.append((json.loads(body)["event"]["type"], ok))
                self.send_response(204 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/claimx"

    def wait_for(self, count: int, timeout: float = 15.0) -> None:
        """Until ``count`` POSTs arrived, or ``timeout`` (the caller reports what came)."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
