"""Readiness: can this gateway do its work now, and how far behind is it?

``/healthz`` only says the process answers; ``/readyz`` asks the database and the chain and
reports the backlogs an operator watches (anchor lag, webhook deliveries). Counts, ages and
states only: no member, subject or record appears here, so it needs no authentication.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from gateway.core.errors import ClaimxError
from gateway.core.types import as_utc
from gateway.services.anchor import LEASE_NAME
from gateway.store.log import EvidenceLogDB
from gateway.store.tables import Anchor, Delivery, Lease, Record

if TYPE_CHECKING:
    from gateway.services.wiring import Services


def database_check(sv: Services) -> dict[str, Any]:
    """The database answers; with it the worker lease, the anchor lag and the push backlog."""
    now = datetime.now(UTC)
    try:
        with sv.db.session() as s:
            size = EvidenceLogDB(s, sv.cache).size()
            anchored = s.scalar(select(func.max(Anchor.size)).where(Anchor.confirmed)) or 0
            oldest = s.scalar(select(func.min(Record.accepted_at)).where(
                or_(Record.leaf_index.is_(None), Record.leaf_index >= anchored)))
            lease = s.get(Lease, LEASE_NAME)
            counts = {status: n for status, n in s.execute(
                select(Delivery.status, func.count())
                .where(Delivery.status.in_(("pending", "parked")))
                .group_by(Delivery.status))}  # rows unpack as tuples (SQLAlchemy 2.1)
    except SQLAlchemyError as exc:
        return {"database": {"ok": False, "error": type(exc).__name__}}
    worker: dict[str, Any] = {"lease_holder": None}
    if lease is not None:
        left = (as_utc(lease.expires_at) - now).total_seconds()
        worker = {"lease_holder": lease.holder if left > 0 else None,
                  "this_process": lease.holder == sv.worker.holder and left > 0,
                  "lease_expires_in_seconds": round(left, 1), "epoch": lease.epoch}
    age = None if oldest is None else round((now - as_utc(oldest)).total_seconds(), 1)
    return {"database": {"ok": True}, "worker": worker,
            "anchor": {"log_size": size, "anchored_size": anchored, "lag": size - anchored,
                       "oldest_unanchored_age_seconds": age},
            "push": {"pending": counts.get("pending", 0), "parked": counts.get("parked", 0)}}


def chain_check(sv: Services) -> dict[str, Any]:
    """The chain node answers (this call is also the breaker's probe while it is open)."""
    try:
        block_time = sv.chain.now()
    except ClaimxError as exc:
        return {"ok": False, "error": exc.code, "breaker": sv.chain.breaker.state,
                "last_transport_error": sv.chain.breaker.last_error}
    return {"ok": True, "breaker": sv.chain.breaker.state, "chain_id": sv.chain.chain_id,
            "latest_block_time": block_time}


def readiness(db: dict[str, Any], chain: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Ready when both the database and the chain answer; the body names what does not."""
    checks = {**db, "chain": chain}
    failing = [name for name in ("database", "chain") if not checks[name]["ok"]]
    return not failing, {"status": "not_ready" if failing else "ready", "failing": failing,
                         "checks": checks}
