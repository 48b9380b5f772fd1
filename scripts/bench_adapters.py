"""Adapter throughput per format, in records (input documents) per second.

Every registered adapter is measured on the sample files under tests/assets/ that its own
``detect`` recognises and that adapt without error. Each format runs for ``--seconds`` on one
core, cycling through its samples. OCR is off unless ``--ocr`` is given: Tesseract costs
about a second per page and would only measure Tesseract. Prints a table, then one JSON line.

    python scripts/bench_adapters.py --seconds 2
    python scripts/bench_adapters.py --mllp 500   # also MLLP end to end (scripts/_bench_mllp.py)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters import default_context  # noqa: E402
from adapters.registry import Adapter, adapters  # noqa: E402
from gateway.core.errors import AdapterError  # noqa: E402


def samples_for(adapter: Adapter, files: list[Path]) -> list[bytes]:
    """Assets this adapter both recognises and maps without error."""
    ctx = default_context()
    found = []
    for path in files:
        raw = path.read_bytes()
        try:
            if adapter.detect(raw) and adapter.adapt(raw, ctx):
                found.append(raw)
        except AdapterError:
            continue
    return found


def measure(adapter: Adapter, samples: list[bytes], seconds: float) -> dict[str, float]:
    ctx = default_context()
    records = packets = 0
    size = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        raw = samples[records % len(samples)]
        packets += len(adapter.adapt(raw, ctx))
        size += len(raw)
        records += 1
    elapsed = time.perf_counter() - start
    return {"samples": len(samples), "records": records,
            "records_per_s": round(records / elapsed, 1),
            "packets_per_s": round(packets / elapsed, 1),
            "mb_per_s": round(size / elapsed / 1e6, 2)}


def print_table(results: dict[str, dict[str, float]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain fallback
        for name, row in results.items():
            print(name, row)
        return
    table = Table(title="adapter throughput (one core)")
    for column in ("format", "samples", "records/s", "packets/s", "MB/s"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for name, row in results.items():
        if "skipped" in row:
            table.add_row(name, "0", "-", "-", str(row["skipped"]))
            continue
        table.add_row(name, str(row["samples"]), f"{row['records_per_s']:,.1f}",
                      f"{row['packets_per_s']:,.1f}", f"{row['mb_per_s']:.2f}")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per format")
    parser.add_argument("--ocr", action="store_true", help="let attachments run Tesseract")
    parser.add_argument("--assets", type=Path, default=ROOT / "tests" / "assets")
    parser.add_argument("--mllp", type=int, default=0, metavar="N",
                        help="also send N HL7 messages over MLLP through a real claimx connect "
                        "and claimx serve, and print messages per second end to end")
    args = parser.parse_args()
    if not args.ocr:
        os.environ["CLAIMX_OCR"] = "off"
    files = sorted(p for p in args.assets.rglob("*") if p.is_file())
    results: dict[str, dict[str, float]] = {}
    for name, adapter in adapters().items():
        samples = samples_for(adapter, files)
        if not samples:
            results[name] = {"skipped": "no sample adapts"}  # type: ignore[dict-item]
            continue
        results[name] = measure(adapter, samples, args.seconds)
    print_table(results)
    print(json.dumps({"bench": "adapters", "seconds_per_format": args.seconds,
                      "ocr": bool(args.ocr), "results": results}, ensure_ascii=False))
    if args.mllp:
        sys.path.insert(0, str(ROOT / "scripts"))
        from _bench_mllp import bench_mllp

        mllp = bench_mllp(args.mllp)
        print(f"MLLP end to end: {mllp['acked_per_s']} messages/s acknowledged, "
              f"{mllp['published_per_s']} messages/s published")
        print(json.dumps(mllp))


if __name__ == "__main__":
    main()
