"""The README's API flow: scripts/api_flow.py against a real `claimx serve` over HTTP."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT, Served

pytestmark = pytest.mark.slow  # real processes end to end


def test_scripted_insurer_hospital_and_police_over_http(dev_gateway: Served) -> None:
    assert dev_gateway.members_file is not None
    flow = subprocess.run([sys.executable, str(ROOT / "scripts" / "api_flow.py"), "--url",
                           dev_gateway.url, "--members", str(dev_gateway.members_file)],
                          capture_output=True, text=True, timeout=120)
    assert flow.returncode == 0, flow.stdout + flow.stderr
    assert "claim ready" in flow.stdout and "receipt for" in flow.stdout
    assert dev_gateway.members_file.stat().st_mode & 0o077 == 0
