"""Benchmark: one chain transaction per record (naive) vs claimx's batched, anchored log.

Both sides run in this one process on the in-process EVM (eth-tester + py-evm):

(a) naive: each record is its own transaction (``NaiveDigestStore.record(digest)``, the
    cheapest honest per-record write); a sample of the N records is timed (all 10,000
    would take minutes) and the sample size is printed.
(b) claimx: N envelopes, signed beforehand by the institution (signing is not the
    gateway's work), are published through ``POST /v1/records/batch`` (FastAPI, signature
    checks against the on-chain registry, SQLite inserts), then sequenced into the Merkle
    log and anchored by the anchor worker.

Prints a table and ends with one JSON line for machines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

warnings.filterwarnings("ignore", category=DeprecationWarning)

from fastapi.testclient import TestClient  # noqa: E402

from gateway.api.app import create_app  # noqa: E402
from gateway.chain.client import Chain, artifact  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.core.envelope import sign_packet  # noqa: E402
from gateway.core.keys import SigningKey  # noqa: E402
from gateway.core.packet import new_packet  # noqa: E402
from gateway.core.types import Role, hex32, member_id  # noqa: E402
from gateway.services.auth import issue_credential  # noqa: E402
from gateway.services.wiring import build_services  # noqa: E402


def naive(chain: Chain, sample: int) -> tuple[float, int]:
    """Records/s and gas per record when every record is its own transaction."""
    art = artifact("NaiveDigestStore")
    sender = chain.default_sender
    factory = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        factory.constructor().transact({"from": sender}))
    store = chain.w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])
    gas = 0
    start = time.perf_counter()
    for i in range(sample):  # the plainest path: send, wait for the receipt
        tx = store.functions.record(hashlib.sha256(i.to_bytes(8, "big")).digest()).transact(
            {"from": sender})
        gas += chain.w3.eth.wait_for_transaction_receipt(tx)["gasUsed"]
    return sample / (time.perf_counter() - start), gas // sample


def claimx(chain: Chain, n: int, batch: int, console: Console) -> dict[str, float]:
    """Publish N signed records through the batch API and anchor them."""
    home = Path(tempfile.mkdtemp(prefix="claimx-bench-"))
    settings = Settings(home=home, anchor_batch_max=n, max_batch=batch,
                        max_body_bytes=64 << 20, anchor_interval_seconds=3600)
    deployment = chain.deploy()
    services = build_services(settings, chain=chain, deployment=deployment)
    key = SigningKey.generate()
    hospital = member_id("hospital.bench")
    registry = chain.registry(deployment.registry)
    operator = chain.new_funded_account()
    registry.admit_member(hospital, Role.HOSPITAL, "Bench Hospital", [operator])
    registry.register_key(hospital, key, sender=operator)

    t0 = time.perf_counter()
    envelopes = [sign_packet(new_packet(
        kind="hospital.invoice", issuer=hex32(hospital), subject=f"{i:064x}",
        body={"items": [{"name": "ward bed", "amount": "120.00"}], "total": "120.00"},
    ), key).to_json() for i in range(n)]
    sign_s = time.perf_counter() - t0
    console.print(f"  signed {n} envelopes beforehand in {sign_s:.1f} s (institution side, "
                  "not timed)")
    with services.db.session() as s:
        token = issue_credential(s, hospital, "bench")
    with TestClient(create_app(services, run_worker=False),
                    headers={"Authorization": f"Bearer {token}"}) as client:
        start = time.perf_counter()
        for i in range(0, n, batch):
            r = client.post("/v1/records/batch", json={"envelopes": envelopes[i:i + batch]})
            if r.status_code != 201:
                raise SystemExit(f"batch publish failed: {r.status_code} {r.text[:300]}")
        published = time.perf_counter() - start
        gas = 0
        while True:
            result = services.worker.cycle()
            gas += result.gas_used
            if not result.sequenced:
                break
        total = time.perf_counter() - start
        head = client.get("/v1/log/head").json()["anchored"]
    if head is None or head["size"] != n:
        raise SystemExit(f"expected an anchored head of size {n}, got {head}")
    return {"records_per_s": n / total, "publish_s": published, "total_s": total,
            "anchor_s": total - published, "gas": gas, "gas_per_record": gas / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="records on the claimx side")
    parser.add_argument("--naive-sample", type=int, default=200,
                        help="records timed on the naive side")
    parser.add_argument("--batch", type=int, default=1000, help="envelopes per batch request")
    args = parser.parse_args()
    console = Console(stderr=True)
    chain = Chain.embedded()
    console.print(f"[bold]naive[/]: one transaction per record, {args.naive_sample} records "
                  "timed")
    naive_rate, naive_gas = naive(chain, args.naive_sample)
    console.print(f"[bold]claimx[/]: {args.n} records through /v1/records/batch "
                  f"({args.batch} per request), then anchored")
    c = claimx(chain, args.n, args.batch, console)
    ratio = c["records_per_s"] / naive_rate
    table = Table("design", "records", "records/s", "gas/record", "notes",
                  title="anchoring throughput on the in-process EVM")
    table.add_row("naive: 1 tx per record", str(args.naive_sample), f"{naive_rate:,.1f}",
                  f"{naive_gas:,}", "sampled")
    table.add_row("claimx: batch + Merkle anchor", str(args.n), f"{c['records_per_s']:,.0f}",
                  f"{c['gas_per_record']:,.1f}",
                  f"publish {c['publish_s']:.1f} s + anchor {c['anchor_s']:.2f} s")
    table.add_row("ratio", "", f"{ratio:,.0f}x", f"{naive_gas / c['gas_per_record']:,.0f}x less",
                  "")
    Console().print(table)
    print(json.dumps({"n": args.n, "naive_records_per_s": round(naive_rate, 2),
                      "claimx_records_per_s": round(c["records_per_s"], 1),
                      "ratio": round(ratio, 1), "gas_per_record": round(c["gas_per_record"], 2)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
