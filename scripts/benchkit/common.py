"""What every comparison shares: the realistic invoice packet, signing, PostgreSQL and the
2-thread Ed25519 verification ceiling (anvil comes from gateway.dev.node.start)."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import create_engine, text

from gateway.core.canonical import canonical_bytes
from gateway.core.envelope import Envelope, pae, sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.core.types import hex32

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get(
    "CLAIMX_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CONSOLE = Console(stderr=True)

_ITEMS = [("ward bed, general, per night", "3", "120.00"),
          ("CT scan, head, without contrast", "1", "310.50"),
          ("blood panel, full, with lipids", "2", "45.25"),
          ("physiotherapy session, 45 minutes", "4", "62.00"),
          ("emergency department triage level 2", "1", "210.00"),
          ("X-ray, left wrist, two views", "1", "88.40")]


def invoice_body(i: int) -> dict[str, Any]:
    """An itemised hospital invoice: about 1 KB of canonical JSON once in its packet."""
    items = [{"code": f"HX-{k:03d}", "description": d, "quantity": q, "unit_price": p,
              "amount": f"{int(q) * float(p):.2f}"} for k, (d, q, p) in enumerate(_ITEMS)]
    total = sum(float(it["amount"]) for it in items)
    return {"invoice_no": f"INV-2026-{i:08d}", "currency": "EUR", "items": items,
            "total": f"{total:.2f}", "ward": "orthopaedics"}


def sign_invoices(key: SigningKey, issuer: bytes, n: int, start: int = 0,
                  urgent: bool = False) -> list[dict[str, Any]]:
    """N signed invoice envelopes as JSON objects (institution-side work, never timed)."""
    return [sign_packet(new_packet(kind="hospital.invoice", issuer=hex32(issuer),
                                   subject=f"{i:064x}", body=invoice_body(i), urgent=urgent),
                        key).to_json() for i in range(start, start + n)]


def packet_bytes(envelope: dict[str, Any]) -> int:
    """Size of one envelope's canonical packet (the payload the signature covers)."""
    env = Envelope.from_json(envelope)
    return len(canonical_bytes(env.packet().to_obj()))


def verify_ceiling(envelopes: list[dict[str, Any]], key: SigningKey, *, threads: int = 2,
                   seconds: float = 3.0) -> float:
    """Ed25519 verifications/s with ``threads`` threads over the same realistic envelopes
    (cryptography releases the GIL while verifying): what the machine can do at most."""
    public = key.public
    messages = [(pae(e.payload_type, e.payload), e.signatures[0].sig)
                for e in (Envelope.from_json(x) for x in envelopes[:2000])]

    def worker(_: int) -> int:
        done, deadline = 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for msg, sig in messages[:200]:
                public.verify(sig, msg)
            done += 200
        return done

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(worker, range(threads)))
    return total / (time.perf_counter() - start)


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on CLAIMX_TEST_PG's server, dropped afterwards."""
    name = f"claimx_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def progress(msg: str) -> None:
    CONSOLE.print(f"  [dim]{time.strftime('%H:%M:%S')}[/] {msg}")
