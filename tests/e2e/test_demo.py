"""`claimx demo`, the README's main job, runs its whole story and exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes end to end


def test_demo_exits_zero_and_writes_verifiable_receipts(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "demo", "--out",
                           str(tmp_path / "demo")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "tampered receipt rejected" in proc.stdout and "ready" in proc.stdout
    receipts = sorted((tmp_path / "demo" / "receipts").glob("*.receipt.json"))
    assert len(receipts) == 4  # three genuine, one tampered
    assert all(json.loads(p.read_text())["version"] == "claimx.receipt/1" for p in receipts)
    assert "Traceback" not in proc.stderr
