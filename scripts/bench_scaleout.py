"""Benchmark: one `claimx serve` process against two behind one address, and the per-stage
rates that model N machines.

* end to end: `claimx serve --workers W` (W = 1, then 2, in alternating order each round) on
  anvil and a fresh PostgreSQL database, with C client processes posting pre-signed invoice
  batches at once (signing is the institutions' work and is not timed), a fresh connection
  per batch so the kernel hands each request to whichever process accepts first; timed until
  the last record is anchored. The gateway's CPU seconds per record (all its processes, from
  /proc) and each process's share of them are reported too.
* stages, each alone, on PostgreSQL: Ed25519 verification on one thread, a full envelope
  check on one thread, inserting checked records, the single anchor worker's screening and
  sequencing; the chain's gas per anchor from the end-to-end runs' later anchors.
* the model: N gateway machines of K cores each against one database, one anchor worker and
  a QBFT chain of a stated block gas limit and block time; which stage limits first.

On a 2-core machine the two processes, the clients, anvil and PostgreSQL all share the same
two cores: the 1-vs-2 figure shows that the second process works correctly and what it costs
or gains here, not what a second machine would add (the model does that from the stages).

Prints tables and ends with one JSON line. PostgreSQL comes from CLAIMX_TEST_PG (default the
server on 127.0.0.1:5432), in databases created and dropped here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
warnings.filterwarnings("ignore")

from benchkit import http, stages  # noqa: E402
from benchkit.common import CONSOLE, pg_database, progress, sign_invoices, verify_ceiling  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gateway.api.server import tune_interpreter  # noqa: E402
from gateway.chain.client import Chain  # noqa: E402
from gateway.core.keys import SigningKey  # noqa: E402
from gateway.dev import node  # noqa: E402

ANCHOR_BATCH_MAX = 5000
"""The worker's default ``anchor_batch_max``: records sequenced per cycle, at most."""


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="records per end-to-end run")
    parser.add_argument("--batch", type=int, default=1000, help="envelopes per request")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--rounds", type=int, default=2,
                        help="1-vs-2 rounds (order alternates; medians reported)")
    parser.add_argument("--stage-n", type=int, default=10_000, help="records per stage test")
    parser.add_argument("--cores", type=int, default=2, help="cores per modelled machine")
    parser.add_argument("--db-cores", type=int, default=8,
                        help="cores of the modelled PostgreSQL server")
    parser.add_argument("--block-gas-limit", type=int, default=50_000_000,
                        help="modelled QBFT block gas limit")
    parser.add_argument("--block-seconds", type=float, default=2.0,
                        help="modelled QBFT block time")
    parser.add_argument("--qbft-tx-per-s", type=float, default=1000,
                        help="modelled QBFT transaction rate (Besu: roughly 750-1,200)")
    parser.add_argument("--naive-gas", type=int, default=45_700,
                        help="gas of one naive per-record transaction (bench_anchor.py)")
    return parser.parse_args()


def main() -> None:
    a = _args()
    tune_interpreter()
    key = SigningKey.generate()
    ceiling = verify_ceiling(sign_invoices(key, b"\x01" * 32, 2000), key, seconds=2.0)
    settings = {"CLAIMX_ANCHOR_BATCH_MAX": str(ANCHOR_BATCH_MAX),
                "CLAIMX_ANCHOR_INTERVAL_SECONDS": "1"}  # anchoring while records arrive
    runs: dict[int, list[http.ScaleRun]] = {1: [], 2: []}
    with node.start() as anvil:
        for r in range(a.rounds):
            for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
                with pg_database() as pg:
                    runs[workers].append(http.run_clients(
                        anvil.url, pg, a.n, a.batch, workers=workers, clients=a.clients,
                        settings=settings))
    with pg_database() as pg:
        st = stages.measure(Chain.embedded(), pg, a.stage_n, a.batch)
    result = _result(a, runs, st, ceiling)
    _tables(a, runs, result)
    print(json.dumps(result))
    sys.stdout.flush()


def _median(runs: list[http.ScaleRun], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in runs))


def _result(a: argparse.Namespace, runs: dict[int, list[http.ScaleRun]], st: stages.Stages,
            ceiling: float) -> dict[str, Any]:
    later = [anchor for r in runs[1] + runs[2] for anchor in r.anchors[1:]]  # with a proof
    gas = statistics.median(g for _, g in later) if later else float("nan")
    per_anchor = statistics.median(n for n, _ in later) if later else float("nan")
    one, two = _median(runs[1], "records_per_s"), _median(runs[2], "records_per_s")
    cpu = _median(runs[2], "cpu_s_per_record")
    chain_gas_per_s = a.block_gas_limit / a.block_seconds
    model = _model(a, cpu, st, gas)
    return {
        "n": a.n, "clients": a.clients, "rounds": a.rounds,
        "one_process_records_per_s": round(one, 1), "two_process_records_per_s": round(two, 1),
        "scaleout_ratio": round(two / one, 3),
        "one_process_publish_per_s": round(_median(runs[1], "publish_per_s"), 1),
        "two_process_publish_per_s": round(_median(runs[2], "publish_per_s"), 1),
        "one_process_cpu_ms_per_record": round(_median(runs[1], "cpu_s_per_record") * 1e3, 3),
        "two_process_cpu_ms_per_record": round(cpu * 1e3, 3),
        "two_process_cpu_shares": [r.cpu_share for r in runs[2]],
        "verify_per_core": round(st.verify_per_core, 1),
        "verify_ceiling_per_s": round(ceiling, 1),
        "check_per_core": round(st.check_per_core, 1),
        "db_insert_per_s": round(st.insert_per_s, 1),
        "sequence_per_s": round(st.sequence_per_s, 1),
        "screen_per_s": round(st.screen_per_s, 1), "append_per_s": round(st.append_per_s, 1),
        "db_cpu_ms_per_record": round(st.db_cpu_ms_per_record, 3),
        "gas_per_anchor": round(gas), "records_per_anchor": round(per_anchor),
        "anchor_batch_max": ANCHOR_BATCH_MAX,
        "model_block_gas_limit": a.block_gas_limit, "model_block_seconds": a.block_seconds,
        "model_chain_gas_per_s": round(chain_gas_per_s),
        "model_anchor_gas_share": round(gas / a.block_seconds / chain_gas_per_s, 5),
        "model_naive_records_per_s": round(min(a.qbft_tx_per_s, chain_gas_per_s / a.naive_gas)),
        "model": model,
    }


def _model(a: argparse.Namespace, cpu_s_per_record: float, st: stages.Stages,
           gas_per_anchor: float) -> list[dict[str, Any]]:
    """Records/s for N machines: the least of the gateways' CPU (N x cores / CPU per
    record), the single worker's sequencing, the database server's CPU, and one anchor per
    block of up to ``anchor_batch_max`` records (the worker waits for each anchor's block).
    Ed25519 alone is shown as the bound no gateway code could pass."""
    out = []
    chain_records = ANCHOR_BATCH_MAX / a.block_seconds
    for machines in (1, 2, 4, 8, 16):
        limits = {"gateway CPU": machines * a.cores / cpu_s_per_record,
                  "Ed25519 alone": machines * a.cores * st.verify_per_core,
                  "sequencing (one worker)": st.sequence_per_s,
                  f"PostgreSQL CPU ({a.db_cores} cores)":
                      a.db_cores / (st.db_cpu_ms_per_record / 1e3),
                  f"one anchor per block of <= {ANCHOR_BATCH_MAX}": chain_records}
        binding = {k: v for k, v in limits.items() if k != "Ed25519 alone"}
        stage = min(binding, key=lambda k: binding[k])
        out.append({"machines": machines, "records_per_s": round(binding[stage]),
                    "limit": stage, **{k: round(v) for k, v in limits.items()},
                    "anchor_gas_per_s": round(gas_per_anchor / a.block_seconds)})
    return out


def _tables(a: argparse.Namespace, runs: dict[int, list[http.ScaleRun]],
            r: dict[str, Any]) -> None:
    t = Table("gateway", "records/s until anchored", "publish/s", "CPU ms/record",
              "CPU share per process", title=f"{a.n} records from {a.clients} client "
              "processes, anvil + PostgreSQL, one machine of 2 cores")
    for workers in (1, 2):
        for run in runs[workers]:
            t.add_row(f"{workers} process{'es' if workers > 1 else ''}",
                      f"{run.records_per_s:,.0f}", f"{run.publish_per_s:,.0f}",
                      f"{run.cpu_s_per_record * 1e3:.3f}",
                      ", ".join(f"{s:.0%}" for s in run.cpu_share))
    Console().print(t)
    s = Table("stage", "rate", "how", title="per-stage rates, each measured alone")
    s.add_row("Ed25519 verify", f"{r['verify_per_core']:,.0f}/s per core", "one thread")
    s.add_row("Ed25519 verify", f"{r['verify_ceiling_per_s']:,.0f}/s", "two threads")
    s.add_row("envelope check", f"{r['check_per_core']:,.0f}/s per core",
              "parse, canonical packet, key, signature; one thread")
    s.add_row("database insert", f"{r['db_insert_per_s']:,.0f} records/s",
              f"PostgreSQL, batches of {a.batch}, payloads sealed, one connection")
    s.add_row("sequencing", f"{r['sequence_per_s']:,.0f} records/s",
              f"the single anchor worker: key re-check ({r['screen_per_s']:,.0f}/s alone), "
              f"Merkle leaves and commit ({r['append_per_s']:,.0f}/s alone)")
    s.add_row("PostgreSQL server", f"{r['db_cpu_ms_per_record']:.3f} CPU ms/record",
              "its backends' CPU, inserting and sequencing (from /proc)")
    s.add_row("chain", f"{r['gas_per_anchor']:,} gas/anchor",
              f"median of later anchors ({r['records_per_anchor']:,} records each)")
    Console().print(s)
    m = Table("machines", "records/s", "limited by", "gateway CPU", "Ed25519 alone",
              "sequencing", "PostgreSQL", "anchors",
              title=f"model: {a.cores}-core machines, one PostgreSQL, QBFT "
              f"{a.block_gas_limit:,} gas per {a.block_seconds:g} s block "
              f"({r['model_chain_gas_per_s']:,} gas/s; claimx uses "
              f"{r['model_anchor_gas_share']:.3%} of it)")
    for row in r["model"]:
        m.add_row(str(row["machines"]), f"{row['records_per_s']:,}", row["limit"],
                  f"{row['gateway CPU']:,}", f"{row['Ed25519 alone']:,}",
                  f"{row['sequencing (one worker)']:,}",
                  f"{row[f'PostgreSQL CPU ({a.db_cores} cores)']:,}",
                  f"{row[f'one anchor per block of <= {ANCHOR_BATCH_MAX}']:,}")
    Console().print(m)
    CONSOLE.print(f"naive design on that chain: {r['model_naive_records_per_s']:,} records/s "
                  f"(the least of {a.qbft_tx_per_s:,.0f} tx/s and gas/s / {a.naive_gas:,})")
    progress(f"1 -> 2 processes on this machine: {r['scaleout_ratio']}x")


if __name__ == "__main__":
    main()
