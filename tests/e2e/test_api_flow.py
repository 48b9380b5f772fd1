"""The README's API flow: scripts/api_flow.py against a real `claimx serve` over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, _free_port


def test_scripted_insurer_hospital_and_police_over_http(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "CLAIMX_HOME": str(tmp_path / "home"),
           "CLAIMX_URGENT_POLL_SECONDS": "0.05", "CLAIMX_ANCHOR_INTERVAL_SECONDS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port",
                               str(port), "--dev-members", str(tmp_path / "dev")], env=env,
                              stdout=(tmp_path / "serve.log").open("w"),
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("claimx serve did not start: " + (tmp_path / "serve.log").read_text())
            time.sleep(0.2)
        flow = subprocess.run([sys.executable, str(ROOT / "scripts" / "api_flow.py"), "--url",
                               f"http://127.0.0.1:{port}", "--members",
                               str(tmp_path / "dev" / "members.json")],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(10)
    assert flow.returncode == 0, flow.stdout + flow.stderr
    assert "claim ready" in flow.stdout and "receipt for" in flow.stdout
    assert (tmp_path / "dev" / "members.json").stat().st_mode & 0o077 == 0
