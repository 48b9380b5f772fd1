"""Schemathesis fuzzes the gateway's own OpenAPI schema, every route, as every role: never
a 5xx. Event routes answer plain clients with a JSON page, so none hangs; fuzzed webhook
URLs are registered but never called (delivery is switched off here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import _free_port

ST = shutil.which("st") or str(Path(sys.executable).parent / "st")


def test_no_request_gets_a_server_error(tmp_path: Path) -> None:
    if not Path(ST).exists():
        pytest.skip("schemathesis CLI `st` missing: pip install -e .[dev] installs it")
    port = _free_port()
    # webhooks are never delivered here: fuzzed URLs must not make the server connect anywhere
    env = {**os.environ, "CLAIMX_HOME": str(tmp_path / "home"),
           "CLAIMX_WEBHOOK_POLL_SECONDS": "86400"}
    log = (tmp_path / "serve.log").open("w")  # a file, not a pipe nobody drains
    server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port),
                               "--dev-members", str(tmp_path / "dev")], env=env,
                              stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("claimx serve did not start")
            time.sleep(0.2)
        members = json.loads((tmp_path / "dev" / "members.json").read_text())
        for who in ("hospital.dev", "insurer.dev", "auditor.dev", None):
            auth = ["-H", f"Authorization: Bearer {members[who]['token']}"] if who else []
            run = subprocess.run([ST, "run", f"{base}/openapi.json", *auth, "--checks",
                                  "not_a_server_error", "--max-examples", "15", "--workers",
                                  "1", "--seed", "7", "--request-timeout", "20",
                                  ], capture_output=True, text=True, timeout=240,
                                 cwd=tmp_path)  # its .schemathesis cache stays out of the repo
            assert run.returncode == 0, f"{who}: {run.stdout[-3000:]}"
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    assert "500 Internal Server Error" not in (tmp_path / "serve.log").read_text()
