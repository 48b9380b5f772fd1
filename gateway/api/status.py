"""HTTP route for the operator's status view (the page at /status reads it)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from gateway.api.deps import CallerDep, ServicesDep
from gateway.core.types import Role
from gateway.services.auth import require_role
from gateway.services.status import operator_status

router = APIRouter(tags=["ops"])


@router.get("/v1/status")
async def status(sv: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    """Readiness, log size, the latest anchored head and its transaction, anchor lag, webhook
    backlog and parked deliveries: the consortium operator's credential only. Always 200 when
    authorised: what is down is in the body, bounded by the chain timeout."""
    require_role(caller, Role.OPERATOR, action="read the operator's status")
    limit = sv.settings.chain_timeout_seconds * 2 + 2
    try:
        return await asyncio.wait_for(run_in_threadpool(operator_status, sv), limit)
    except TimeoutError:
        return {"status": "not_ready", "ready": False, "failing": ["timeout"], "checks": {},
                "latest_anchor": None}
