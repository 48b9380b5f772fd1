"""`claimx serve` exits within a few seconds of SIGTERM even while SSE streams are open
(uvicorn's graceful shutdown is bounded by CLAIMX_HTTP_SHUTDOWN_SECONDS)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support import serve_gateway

pytestmark = pytest.mark.slow


def test_sigterm_with_open_event_streams_exits_within_the_shutdown_bound(
        tmp_path: Path) -> None:
    env = {"CLAIMX_HTTP_SHUTDOWN_SECONDS": "2"}
    with serve_gateway(tmp_path, env=env) as served:
        insurer = next(slug for slug in served.members if slug.startswith("insurer"))
        opened = threading.Barrier(4)

        def stream() -> None:
            try:
                with httpx.stream("GET", f"{served.url}/v1/events", timeout=30, headers={
                        **served.auth(insurer), "Accept": "text/event-stream"}) as r:
                    assert r.status_code == 200
                    opened.wait(10)
                    for _ in r.iter_bytes():
                        pass
            except httpx.HTTPError:
                pass  # the server closed the stream: what we want

        threads = [threading.Thread(target=stream, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        opened.wait(20)  # three streams are open
        start = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(15)
        took = time.monotonic() - start
        assert took < 6, f"serve took {took:.1f} s to exit on SIGTERM"
        assert "Finished server process" in served.log_text()
