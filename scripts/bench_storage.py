"""Benchmark: bytes per record by table and index (SQLite's dbstat), and the publish time.

Publishes ``--n`` signed invoices through the publisher in calls of ``--batch`` (as
scripts/benchkit/inprocess.py does, on the in-process EVM and SQLite), anchors them, and
prints each table's and index's bytes per record from ``dbstat`` (pages in use, after a
WAL checkpoint), then one JSON line with the totals.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings("ignore")

from benchkit.common import progress, sign_invoices  # noqa: E402
from benchkit.inprocess import setup  # noqa: E402
from sqlalchemy import text  # noqa: E402

from gateway.api.server import tune_interpreter  # noqa: E402
from gateway.chain.client import Chain  # noqa: E402
from gateway.config import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000, help="envelopes per publish call")
    a = parser.parse_args()
    tune_interpreter()
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="claimx-storage-")),
                        anchor_batch_max=a.n, anchor_interval_seconds=3600,
                        max_batch=max(a.batch, 1000))
    services, key, hospital, _token = setup(Chain.embedded(), settings)
    progress(f"signing {a.n} invoices (not timed)")
    envelopes = sign_invoices(key, hospital, a.n)
    start = time.perf_counter()
    for i in range(0, a.n, a.batch):
        services.publisher.publish(envelopes[i:i + a.batch], hospital)
    publish_s = time.perf_counter() - start
    while services.worker.cycle().sequenced:
        pass
    with services.db.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        rows = conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name "
                                 "ORDER BY sum(pgsize) DESC")).all()
    total = sum(int(b) for _, b in rows)
    print(f"{'table or index':<40} {'bytes/record':>12}")
    for name, size in rows:
        if int(size) >= a.n:  # at least 1 B a record
            print(f"{name:<40} {int(size) / a.n:>12.1f}")
    promise = sum(int(b) for name, b in rows if "promise" in name)
    print(f"{'total':<40} {total / a.n:>12.1f}")
    print(f"publish: {a.n / publish_s:,.0f} records/s ({publish_s:.2f} s, batches of {a.batch})")
    print(json.dumps({"n": a.n, "batch": a.batch, "bytes_per_record": round(total / a.n, 1),
                      "promise_bytes_per_record": round(promise / a.n, 1),
                      "publish_records_per_s": round(a.n / publish_s)}))
    services.db.engine.dispose()


if __name__ == "__main__":
    main()
