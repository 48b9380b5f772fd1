"""Benchmark: publish rate and storage per record as the log grows (toward 1M records).

Grows one log on the in-process EVM and SQLite (or ``--database-url``) in steps of
``--step`` records: each step's invoices are signed first (untimed: the institutions'
work), then published through the publisher in batches and anchored; the step's rate is
records per second until anchored. After each step the database's size per record is
taken (SQLite: its pages, WAL included; no checkpoint is forced, so the timed steps pay
for every checkpoint, as a gateway does), and the step's gas per record (its anchors' gas
over the records they sequenced: every step after the first is a steady-state anchor, with
its consistency proof). Every ``--proof-every`` records, inclusion and consistency proofs over
the whole log are built as the API builds them (cold node cache) and verified as a client
does (benchkit.proofs), and their p95 times recorded. On the grown log, the green channel is
measured as bench_anchor measures it: urgent records while ``--routine`` routine ones
arrive, the anchor worker in the background. Because a shared machine's speed drifts
during a long run, the flatness is also measured side by side: after growing, a step on a
new, empty log and a step on the grown log in turn (``--side-by-side`` rounds). Writes
docs/scale.csv and docs/scale.png and ends with one JSON line: the early and late rates and
their ratio (the curve's flatness), the side-by-side medians and their ratio
(``grown_over_fresh``), bytes per record, the steady gas per record (the last step's, and
the highest of any step after the first), the last proof times and the urgent p95 at full
size.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings("ignore")

from benchkit.common import progress, sign_invoices  # noqa: E402
from benchkit.inprocess import (  # noqa: E402
    UrgentSample,
    _sqlite_bytes,
    p95,
    setup,
    urgent_while_routine,
)
from benchkit.plot import line_chart  # noqa: E402
from benchkit.proofs import ProofTimes, proof_times  # noqa: E402

from gateway.api.server import tune_interpreter  # noqa: E402
from gateway.chain.client import Chain  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.core.keys import SigningKey  # noqa: E402
from gateway.services.wiring import Services, build_services  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="log size to grow to")
    parser.add_argument("--step", type=int, default=10_000, help="records per measured step")
    parser.add_argument("--batch", type=int, default=1000, help="envelopes per publish call")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for scale.csv/.png")
    parser.add_argument("--proof-every", type=int, default=100_000,
                        help="time proofs every this many records (and at the end)")
    parser.add_argument("--side-by-side", type=int, default=5, metavar="ROUNDS",
                        help="after growing, time a step on an empty log and one on the "
                        "grown log in turn, ROUNDS times (SQLite only; 0: skip)")
    parser.add_argument("--routine", type=int, default=10_000,
                        help="routine records arriving during the green-channel test run on "
                        "the grown log at the end (0: skip it)")
    a = parser.parse_args()
    tune_interpreter()
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="claimx-scale-")),
                        database_url=a.database_url, anchor_batch_max=a.step,
                        anchor_interval_seconds=3600)
    chain = Chain.embedded()
    services, key, hospital, _token = setup(chain, settings)
    _checkpoints(services, True)
    rows: list[tuple[int, float, float | None, float]] = []
    a.out.mkdir(parents=True, exist_ok=True)
    csv_file = (a.out / "scale.csv").open("w", newline="")
    w = csv.writer(csv_file)  # a row per step as it is measured: a long run shows progress
    w.writerow(["log_size", "records_per_s", "bytes_per_record", "gas_per_record",
                "publish_s", "anchor_s", *ProofTimes.__dataclass_fields__])
    proofs: ProofTimes | None = None
    for done in range(0, a.n, a.step):
        step = _step(services, sign_invoices(key, hospital, a.step, start=done), hospital,
                     a.batch)
        start, published, end, gas, sequenced = step
        rate = a.step / (end - start)
        size = done + a.step
        on_disk = _sqlite_bytes(services)
        rows.append((size, rate, None if on_disk is None else on_disk / size,
                     gas / max(sequenced, 1)))
        timed = size % a.proof_every < a.step or size + a.step > a.n
        proofs = proof_times(services, size) if timed else None
        progress(f"log size {size:,}: {rate:,.0f} records/s (publish {published - start:.2f} s,"
                 f" anchor {end - published:.2f} s), {rows[-1][3]:.2f} gas/record"
                 + ("" if on_disk is None else f", {on_disk / size:,.0f} bytes/record")
                 + ("" if proofs is None else f"; proofs p95 {proofs}"))
        s, r, b, g = rows[-1]
        w.writerow((s, round(r, 1), "" if b is None else round(b, 1), round(g, 2),
                    round(published - start, 3), round(end - published, 3),
                    *(vars(proofs).values() if proofs else ("",) * 4)))
        csv_file.flush()
    csv_file.close()
    fresh, grown = (_side_by_side(services, chain, key, hospital, a)
                    if a.side_by_side and a.database_url is None else ([], []))
    _checkpoints(services, False)  # the green channel's gateway runs its own
    grown_size = a.n + len(grown) * a.step  # the side-by-side steps added records
    urgent = (_green_channel(services, chain, key, hospital, a.routine, grown_size)
              if a.routine else [])
    line_chart(a.out / "scale.png", [r[0] for r in rows],
               {"records/s": [r[1] for r in rows],
                "bytes/record": [r[2] or 0.0 for r in rows]},
               title=f"claimx publish rate and storage as the log grows (step {a.step:,})")
    first, last = rows[0][1], rows[-1][1]
    # the first step also starts the verifying processes: the flatness compares the median
    # of the next five steps with the median of the last five
    early = statistics.median([r[1] for r in rows[1:6]] or [first])
    late = statistics.median([r[1] for r in rows[-5:]])
    steady = [r[3] for r in rows[1:]] or [rows[0][3]]  # the first anchor has no proof
    print(json.dumps({"n": rows[-1][0], "step": a.step, "first_records_per_s": round(first, 1),
                      "last_records_per_s": round(last, 1),
                      "last_over_first": round(last / first, 3),
                      "early_median_records_per_s": round(early, 1),
                      "late_median_records_per_s": round(late, 1),
                      "late_over_early": round(late / early, 3),
                      **({"fresh_median_records_per_s": round(statistics.median(fresh), 1),
                          "grown_median_records_per_s": round(statistics.median(grown), 1),
                          "grown_over_fresh": round(statistics.median(grown)
                                                    / statistics.median(fresh), 3),
                          "side_by_side_rounds": len(fresh)} if fresh else {}),
                      "bytes_per_record": rows[-1][2] and round(rows[-1][2], 1),
                      "gas_per_record": round(steady[-1], 2),
                      "max_steady_gas_per_record": round(max(steady), 2),
                      **(vars(proofs) if proofs else {}),
                      "urgent_p95_ms": round(p95([u.total_ms for u in urgent]), 1)
                      if urgent else None,
                      "urgent_publish_p95_ms": round(p95([u.publish_ms for u in urgent]), 1)
                      if urgent else None,
                      "urgent_samples": len(urgent),
                      "csv": str(a.out / "scale.csv"), "png": str(a.out / "scale.png")}))


def _checkpoints(services: Services, run: bool) -> None:
    """Start or stop the gateway's background WAL checkpoints (gateway.store.checkpoint):
    `claimx serve` runs them with its anchor worker's thread, which this bench replaces by
    calling the worker's cycles itself."""
    if services.worker.checkpointer is not None:
        if run:
            services.worker.checkpointer.start()
        else:
            services.worker.checkpointer.stop(wait=5)


Step = tuple[float, float, float, int, int]
"""perf_counter at the start, when published, when anchored; gas used; records sequenced."""


def _step(services: Services, envelopes: list[dict[str, object]], hospital: bytes,
          batch: int) -> Step:
    """Publish ``envelopes`` in calls of ``batch`` and anchor them all (one measured step)."""
    start = time.perf_counter()
    for i in range(0, len(envelopes), batch):
        services.publisher.publish(envelopes[i:i + batch], hospital)
    published = time.perf_counter()
    gas = sequenced = 0
    while (cycle := services.worker.cycle()).sequenced:
        gas, sequenced = gas + cycle.gas_used, sequenced + cycle.sequenced
    return start, published, time.perf_counter(), gas, sequenced


def _side_by_side(grown: Services, chain: Chain, key: SigningKey, hospital: bytes,
                  a: argparse.Namespace) -> tuple[list[float], list[float]]:
    """The rate on an empty log and on the grown one, a step on each in turn: a shared
    machine's speed drifts over a long run (by a third here, within minutes), which the
    curve's first and last steps, taken far apart, would read as the log's doing. Returns
    the fresh log's rates and the grown log's, round by round."""
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="claimx-scale-fresh-")),
                        anchor_batch_max=a.step, anchor_interval_seconds=3600)
    fresh, fresh_key, fresh_hospital, _token = setup(chain, settings)
    _checkpoints(fresh, True)
    rates: tuple[list[float], list[float]] = ([], [])
    for r in range(a.side_by_side):
        for side, (services, k, member, start) in enumerate(
                ((fresh, fresh_key, fresh_hospital, r * a.step),
                 (grown, key, hospital, a.n + r * a.step))):
            began, _published, end, _gas, _sequenced = _step(
                services, sign_invoices(k, member, a.step, start=start), member, a.batch)
            rates[side].append(a.step / (end - began))
        progress(f"side by side, round {r + 1}: empty log {rates[0][-1]:,.0f} records/s, "
                 f"{a.n:,}-record log {rates[1][-1]:,.0f} records/s")
    _checkpoints(fresh, False)
    fresh.db.engine.dispose()
    return rates


def _green_channel(grown: Services, chain: Chain, key: SigningKey, hospital: bytes,
                   routine: int, size: int) -> list[UrgentSample]:
    """The green channel on the grown log: a gateway with the default batching (as
    bench_anchor's green-channel test) over the same database, its worker in the
    background, urgent records while ``routine`` records arrive."""
    grown.worker.lease.release()  # the stepping worker's lease: the new worker takes it
    url = grown.db.engine.url.render_as_string(hide_password=False)  # named: an embedded
    grown.db.engine.dispose()  # gateway would start a new database file
    settings = Settings(home=grown.settings.home, database_url=url, urgent_poll_seconds=0.05)
    services = build_services(settings, chain=chain, deployment=grown.deployment)
    samples = urgent_while_routine(services, key, hospital, routine,
                                   label=f"at {size:,} records", start=size)
    if samples:
        progress(f"green channel at {size:,} records: urgent p95 "
                 f"{p95([u.total_ms for u in samples]):,.0f} ms over {len(samples)} samples")
    return samples


if __name__ == "__main__":
    main()
