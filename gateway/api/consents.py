"""Claimant-facing routes: a claimant withdraws consent with a signature, no credential.

The signature by a key bound to the subject authenticates the request, so the claimant's app
(or any member relaying it) can send it and the insurer has no way to refuse it. Auditors look
up a claimant key binding and its revocations here (``claimx audit`` proves them on chain).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from gateway.api.deps import CallerDep, ServicesDep, SessionDep
from gateway.core.binding import WithdrawalArtifact
from gateway.services.bindings import Attesters, binding_view
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


class BindingOut(BaseModel):
    digest: str
    subject: str = Field(description="the claimant's pseudonym")
    claimant_key: str = Field(description="base64 raw Ed25519 public key")
    attester: str = Field(description="0x member id of the institution that bound the key")
    attested_at: str
    expires_at: str | None
    revoked_at: str | None
    revocations: list[str] = Field(description="digests of identity.binding_revoked records "
                                   "naming this binding (fetch their receipts to prove when)")


@router.get("/v1/bindings/{digest}", response_model=BindingOut, tags=["audit"])
def get_binding(s: SessionDep, caller: CallerDep,
                digest: Annotated[str, Path(pattern=r"^(0x)?[0-9a-fA-F]{64}$")]) -> BindingOut:
    """A claimant key binding and its revocations: for its attester, auditors, the operator."""
    raw = bytes.fromhex(digest[2:] if digest.startswith("0x") else digest)
    return BindingOut.model_validate(binding_view(s, caller, raw))
