"""The MLLP end-to-end line of scripts/bench_adapters.py runs and reports a rate."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


def test_bench_reports_mllp_messages_per_second() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_adapters.py"),
                          "--seconds", "0.01", "--mllp", "20"], capture_output=True, text=True,
                         timeout=300, check=True, cwd=ROOT)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["bench"] == "mllp" and result["messages"] == 20
    assert result["acked_per_s"] > 0 and result["published_per_s"] > 0
