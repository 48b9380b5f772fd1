"""The benchmarks the README quotes run end to end and print the JSON line they promise
(small sizes: what is checked is that every comparison runs and reports, not the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _json_line(args: list[str], tmp_path: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=280, env=None)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert isinstance(result, dict)
    return result


def test_bench_scale_writes_its_curve_and_json(tmp_path: Path) -> None:
    r = _json_line(["scripts/bench_scale.py", "--n", "2000", "--step", "1000", "--batch", "500",
                    "--routine", "600", "--proof-every", "1000", "--side-by-side", "2",
                    "--out", str(tmp_path)],
                   tmp_path)
    assert r["n"] == 2000 and (tmp_path / "scale.csv").exists() and (tmp_path / "scale.png")
    rows = (tmp_path / "scale.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("log_size,records_per_s,bytes_per_record")
    for key in ("late_over_early", "bytes_per_record", "gas_per_record",
                "inclusion_build_ms", "consistency_verify_ms", "fresh_median_records_per_s",
                "grown_median_records_per_s", "grown_over_fresh"):
        value = r[key]
        assert isinstance(value, float) and value > 0, (key, r)
    assert isinstance(r["urgent_samples"], int) and r["side_by_side_rounds"] == 2


@pytest.mark.anvil
@pytest.mark.postgres
def test_bench_anchor_runs_every_comparison(tmp_path: Path) -> None:
    r = _json_line(["scripts/bench_anchor.py", "--n", "600", "--batch", "300",
                    "--naive-sample", "10", "--pipelined-sample", "20", "--routine", "600",
                    "--urgent-rounds", "1", "--rounds", "1"], tmp_path)
    for key in ("n", "naive_records_per_s", "claimx_records_per_s", "ratio", "gas_per_record",
                "anvil_naive_records_per_s", "anvil_claimx_records_per_s", "anvil_ratio",
                "pg_records_per_s", "pg_ceiling_ratio", "verify_ceiling_per_s",
                "ceiling_ratio", "urgent_p95_ms", "bytes_per_record"):
        assert key in r, (key, r)
    assert r["n"] == 600
    assert 0 < r["ceiling_ratio"] < 1  # type: ignore[operator]
    assert r["ceiling_ratio"] == round(r["claimx_records_per_s"]  # type: ignore[operator]
                                       / r["verify_ceiling_per_s"], 3)
