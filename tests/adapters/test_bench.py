"""The adapter benchmark runs and ends with a JSON line covering every registered format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from adapters.registry import adapters

ROOT = Path(__file__).resolve().parents[2]


def test_bench_reports_every_format() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_adapters.py"),
                          "--seconds", "0.05"], capture_output=True, text=True, timeout=120,
                         check=True, cwd=ROOT)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result["results"]) == set(adapters())
    for name in ("csv_bill", "police", "death_certificate", "attachment"):
        assert result["results"][name]["records_per_s"] > 0
