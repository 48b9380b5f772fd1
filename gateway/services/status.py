"""The operator's view: readiness as /readyz computes it, plus the latest anchored head with
its transaction. Counts, sizes and hashes only; for the consortium operator's credential."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from gateway.core.types import as_utc
from gateway.services.health import chain_check, database_check, readiness
from gateway.store.tables import Anchor

if TYPE_CHECKING:
    from gateway.services.wiring import Services


def latest_anchor(sv: Services) -> dict[str, Any] | None:
    """The newest confirmed head this gateway anchored (None before the first; an error if the
    database does not answer)."""
    try:
        with sv.db.session() as s:
            a = s.scalar(select(Anchor).where(Anchor.confirmed)
                         .order_by(Anchor.size.desc()).limit(1))
    except SQLAlchemyError as exc:
        return {"error": type(exc).__name__}
    if a is None:
        return None
    return {"head_index": a.head_index, "size": a.size, "root": a.root.hex(),
            "tx_hash": a.tx_hash.hex(), "block_number": a.block_number,
            "block_time": a.block_time, "recorded_at": as_utc(a.recorded_at).isoformat()}


def operator_status(sv: Services) -> dict[str, Any]:
    ok, body = readiness(database_check(sv), chain_check(sv))
    return body | {"ready": ok, "latest_anchor": latest_anchor(sv),
                   "deployment": {"chain_id": sv.deployment.chain_id,
                                  "evidence_log": sv.deployment.log,
                                  "registry": sv.deployment.registry}}
