"""The per-stage rates a scale-out model needs, each measured alone on PostgreSQL: checking
an envelope (parse, canonical form, Ed25519) on one core, inserting checked records, and the
single anchor worker's screening and sequencing. The chain's gas per anchor comes from the
HTTP runs (scripts/benchkit/http.py)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from benchkit.common import progress, sign_invoices, verify_ceiling
from benchkit.http import cpu_seconds
from benchkit.inprocess import setup
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.services.logcheck import check_pending
from gateway.services.publish import store_checked
from gateway.services.wiring import Services
from gateway.store.log import EvidenceLogDB

SEQUENCE_BATCH = 5000
"""Records per sequencing transaction: the worker's default ``anchor_batch_max``."""


@dataclass(frozen=True)
class Stages:
    verify_per_core: float
    """Ed25519 verifications/s on one thread."""
    check_per_core: float
    """Envelopes fully checked (parse, canonical packet, key, signature) per second, one thread."""
    insert_per_s: float
    """Checked records inserted per second (payloads sealed, batches of ``batch``, committed)."""
    sequence_per_s: float
    """Records the single worker screens (key re-check) and sequences per second, committed."""
    screen_per_s: float
    """The screening alone: pending rows read, their keys' registry status at chain time."""
    append_per_s: float
    """The appending alone: Merkle nodes written, leaf indexes set, committed."""
    db_cpu_ms_per_record: float
    """PostgreSQL's own CPU (its backend processes, from /proc) per record, inserting and
    sequencing: what a shared database server spends whatever the gateways' number."""


def measure(chain: Chain, database_url: str, n: int, batch: int) -> Stages:
    home = Path(tempfile.mkdtemp(prefix="claimx-bench-stages-"))
    settings = Settings(home=home, database_url=database_url, max_batch=batch,
                        anchor_interval_seconds=3600)
    services, key, hospital, _token = setup(chain, settings)
    progress(f"stages: signing {n} invoices (not timed)")
    envelopes = sign_invoices(key, hospital, n)
    progress("stages: Ed25519 verification on one thread")
    verify = verify_ceiling(envelopes, key, threads=1, seconds=2.0)
    progress(f"stages: checking {n} envelopes on one thread")
    start = time.perf_counter()
    checked = [services.publisher.check(e, hospital) for e in envelopes]
    check = n / (time.perf_counter() - start)
    progress(f"stages: inserting {n} checked records in batches of {batch} (PostgreSQL)")
    backends = {_backend(services)}
    db_cpu = cpu_seconds(sorted(backends))
    start = time.perf_counter()
    for i in range(0, n, batch):
        with services.db.session() as s:
            store_checked(s, services.vault, checked[i:i + batch])
            backends.add(_backend_of(s))
    insert = n / (time.perf_counter() - start)
    progress(f"stages: screening and sequencing {n} records, {SEQUENCE_BATCH} a transaction")
    registry = chain.registry(services.deployment.registry)
    screening = appending = 0.0
    done = 0
    while done < n:
        t0 = time.perf_counter()
        screened = check_pending(services.db, registry, chain.now(), SEQUENCE_BATCH)
        t1 = time.perf_counter()
        with services.db.session() as s:
            seq = EvidenceLogDB(s, services.cache).sequence(SEQUENCE_BATCH,
                                                             screened.valid_ids)
            backends.add(_backend_of(s))
        appending += time.perf_counter() - t1
        screening += t1 - t0
        done += seq.new_size - seq.old_size
    sequence = n / (screening + appending)
    used = cpu_seconds(sorted(backends))
    db_ms = sum(t - db_cpu.get(pid, 0.0) for pid, t in used.items()) / n * 1e3
    services.db.engine.dispose()
    return Stages(verify, check, insert, sequence, n / screening, n / appending, db_ms)


def _backend(services: Services) -> int:
    with services.db.session() as s:
        return _backend_of(s)


def _backend_of(s: Session) -> int:
    """The PID of the PostgreSQL backend serving this session (same machine: its CPU is
    readable in /proc)."""
    return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
