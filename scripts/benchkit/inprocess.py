"""claimx in one process: the batch API (FastAPI TestClient), then the anchor worker, on the
in-process EVM with SQLite or PostgreSQL; and the green channel under routine load."""

from __future__ import annotations

import gc
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from benchkit.common import progress, sign_invoices
from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.keys import SigningKey
from gateway.core.types import Role, member_id
from gateway.services.auth import issue_credential
from gateway.services.wiring import Services, build_services
from gateway.store.tables import Anchor, Record

WARMUP = 1000
"""Records published and anchored before the timed run, so its anchor is a steady-state one
(a consistency proof from an earlier head, not the first anchor)."""


@dataclass(frozen=True)
class ClaimxRun:
    records_per_s: float
    publish_s: float
    anchor_s: float
    gas_per_record: float
    bytes_per_record: float | None


def setup(chain: Chain, settings: Settings) -> tuple[Services, SigningKey, bytes, str]:
    """Fresh contracts and database, one hospital with an Ed25519 key and an API token."""
    services = build_services(settings, chain=chain, deployment=chain.deploy())
    key, hospital = SigningKey.generate(), member_id(f"hospital.bench{time.time_ns()}")
    registry = chain.registry(services.deployment.registry)
    operator = chain.new_funded_account()  # the member's own operator registers its key
    registry.admit_member(hospital, Role.HOSPITAL, "Bench Hospital", [operator])
    registry.register_key(hospital, key, sender=operator)
    with services.db.session() as s:
        token = issue_credential(s, hospital, "bench")
    return services, key, hospital, token


def _publish(client: TestClient, envelopes: list[dict[str, Any]], batch: int,
             clients: int = 1) -> None:
    """POST the envelopes in batches, from ``clients`` concurrent callers (institutions
    publish independently of each other)."""
    def post(i: int) -> None:
        part = envelopes[i:i + batch]
        r = client.post("/v1/records/batch", content=orjson.dumps({"envelopes": part}),
                        headers={"Content-Type": "application/json"})
        if r.status_code != 201 or len(orjson.loads(r.content)) != len(part):
            raise SystemExit(f"batch publish failed: {r.status_code} {r.text[:300]}")

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, range(0, len(envelopes), batch)))


def _drain(services: Services) -> None:
    """Run anchor cycles until nothing is pending."""
    while services.worker.cycle().sequenced:
        pass


def _wait_head(services: Services, size: int, timeout: float = 300.0) -> None:
    """Until the background worker has a confirmed anchor of ``size``."""
    deadline = time.monotonic() + timeout
    while services.worker.anchored_size() < size:
        if time.monotonic() > deadline:
            raise SystemExit(f"no anchored head of size {size} within {timeout:.0f} s")
        time.sleep(0.002)


def _last_anchor_gas(services: Services) -> float:
    """Gas per record of the latest anchor (a steady-state one: an earlier head exists)."""
    with services.db.session() as s:
        last, before = s.execute(select(Anchor.size, Anchor.gas_used)
                                 .order_by(Anchor.size.desc()).limit(2)).all()
    return float(last.gas_used / (last.size - before.size))


def _sqlite_bytes(services: Services) -> int | None:
    """The database's size in bytes (SQLite only): its page count as a reader sees it, WAL
    included, so no checkpoint is forced here (one per step would hide the checkpoints'
    cost from the timed publishing)."""
    if services.db.engine.dialect.name != "sqlite":
        return None
    with services.db.engine.connect() as conn:
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
        size = conn.execute(text("PRAGMA page_size")).scalar_one()
    return int(pages) * int(size)


def run(chain: Chain, n: int, batch: int, database_url: str | None, label: str,
        clients: int = 2) -> ClaimxRun:
    """Publish N signed invoices through /v1/records/batch from ``clients`` concurrent
    callers while the anchor worker runs as in ``claimx serve`` (sequencing as batches
    arrive, one anchor for the N); records/s counts until that anchor is recorded. A
    warm-up batch is anchored first, so the anchor measured is a steady-state one."""
    home = Path(tempfile.mkdtemp(prefix="claimx-bench-"))
    settings = Settings(home=home, database_url=database_url, anchor_batch_max=n,
                        max_batch=batch, max_body_bytes=64 << 20, anchor_interval_seconds=3600)
    services, key, hospital, token = setup(chain, settings)
    warm = sign_invoices(key, hospital, WARMUP)
    progress(f"{label}: signing {n} invoices (institution side, not timed)")
    envelopes = sign_invoices(key, hospital, n, start=WARMUP)
    with TestClient(create_app(services, run_worker=False),
                    headers={"Authorization": f"Bearer {token}"}) as client:
        _publish(client, warm, batch)
        _drain(services)
        before = _sqlite_bytes(services)
        gc.collect()
        gc.freeze()  # as `claimx serve` does after start-up
        services.worker.start()
        try:
            progress(f"{label}: publishing {n} records in batches of {batch} from {clients} "
                     "clients; the worker sequences and anchors")
            start = time.perf_counter()
            _publish(client, envelopes, batch, clients)
            published = time.perf_counter() - start
            _wait_head(services, n + WARMUP)
            total = time.perf_counter() - start
        finally:
            services.worker.stop()
        head = client.get("/v1/log/head").json()["anchored"]
    if head is None or head["size"] != n + WARMUP:
        raise SystemExit(f"expected an anchored head of size {n + WARMUP}, got {head}")
    gas = _last_anchor_gas(services)
    after = _sqlite_bytes(services)
    per = None if before is None or after is None else (after - before) / n
    services.db.engine.dispose()
    return ClaimxRun(n / total, published, total - published, gas, per)


@dataclass(frozen=True)
class UrgentSample:
    """One urgent record: ms until its publish call returned, and until it was anchored."""

    publish_ms: float
    total_ms: float


def urgent_under_load(chain: Chain, routine: int = 10_000, batch: int = 500,
                      rounds: int = 1) -> list[UrgentSample]:
    """Urgent records published one after another while ``routine`` records arrive in
    batches, ``rounds`` times on fresh gateways (one round yields a dozen samples: too few
    for a p95 on their own)."""
    samples: list[UrgentSample] = []
    for r in range(rounds):
        samples += _urgent_round(chain, routine, batch, f"round {r + 1}/{rounds}")
    return samples


def _urgent_round(chain: Chain, routine: int, batch: int, label: str) -> list[UrgentSample]:
    home = Path(tempfile.mkdtemp(prefix="claimx-bench-urgent-"))
    settings = Settings(home=home, max_body_bytes=64 << 20, urgent_poll_seconds=0.05)
    services, key, hospital, _token = setup(chain, settings)
    try:
        return urgent_while_routine(services, key, hospital, routine, batch, label)
    finally:
        services.db.engine.dispose()


def urgent_while_routine(services: Services, key: SigningKey, hospital: bytes, routine: int,
                         batch: int = 500, label: str = "", start: int = 0,
                         ) -> list[UrgentSample]:
    """With ``services``' anchor worker running in the background: urgent records published
    one after another (50 ms apart) while ``routine`` records arrive in batches of
    ``batch`` from another thread, until the routine ones are all in. Invoice numbers start
    at ``start`` (a grown log holds the earlier ones)."""
    progress(f"green channel {label}: signing {routine} routine and 200 urgent invoices")
    routine_envs = sign_invoices(key, hospital, routine, start=start)
    urgent_envs = sign_invoices(key, hospital, 200, start=start + routine, urgent=True)
    services.worker.start()
    done = threading.Event()

    def arrive() -> None:
        for i in range(0, routine, batch):
            services.publisher.publish(routine_envs[i:i + batch], hospital)
        done.set()

    samples: list[UrgentSample] = []
    feeder = threading.Thread(target=arrive, daemon=True)
    progress(f"green channel {label}: urgent records while {routine} routine ones arrive")
    feeder.start()
    try:
        for env in urgent_envs:
            if done.is_set():
                break
            began = time.perf_counter()
            digest = services.publisher.publish([env], hospital)[0].digest
            published = time.perf_counter()
            _wait_anchored(services, digest)
            samples.append(UrgentSample((published - began) * 1000,
                                        (time.perf_counter() - began) * 1000))
            time.sleep(0.05)
        feeder.join()
    finally:
        services.worker.stop()
    return samples


def _wait_anchored(services: Services, digest: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db.session() as s:
            leaf = s.scalar(select(Record.leaf_index).where(Record.digest == digest))
            anchored = s.scalar(select(func.max(Anchor.size))) or 0
        if leaf is not None and anchored > leaf:
            return
        time.sleep(0.01)
    raise SystemExit("an urgent record was not anchored within 30 s")


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]
