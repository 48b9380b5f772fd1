"""Claimant-facing routes: a claimant withdraws consent with a signature, no credential.

The signature by a key bound to the subject authenticates the request, so the claimant's app
(or any member relaying it) can send it and the insurer has no way to refuse it.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.api.deps import ServicesDep, SessionDep
from gateway.core.binding import WithdrawalArtifact
from gateway.services.bindings import Attesters
from gateway.services.withdrawals import withdraw_by_claimant

router = APIRouter(tags=["consents"])


class WithdrawalOut(BaseModel):
    subject: str
    insurer: str = Field(description="0x member id")
    withdrawn_at: str
    log_entry: str = Field(description="digest of the withdrawal's evidence-log entry")


@router.post("/v1/consents/withdraw", status_code=201, response_model=WithdrawalOut)
def withdraw(s: SessionDep, sv: ServicesDep, body: WithdrawalArtifact) -> WithdrawalOut:
    """Withdraw every consent of the claimant to the insurer the statement names; signed by
    the claimant's bound key (see docs/api.md). Reads under those consents stop at once."""
    w = withdraw_by_claimant(s, sv.ledger, Attesters(sv.members.registry, sv.chain.now), body)
    return WithdrawalOut(subject=w.subject, insurer="0x" + w.insurer.hex(),
                         withdrawn_at=w.at.isoformat(), log_entry=w.digest.hex())
