"""Routes for the insurer's side: claims with consent, evidence requests, the timeline.

Insurers open and read their own claims (another insurer's claim is a 404); institutions
list and decline the requests addressed to them. Publishing evidence answers requests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gateway.api.deps import CallerDep, ServicesDep, SessionDep
from gateway.core.types import Role
from gateway.services import claims_view, requests
from gateway.services.auth import PUBLISHERS, require_role
from gateway.services.claims import (
    ClaimIn,
    close_claim,
    get_claim,
    open_claim,
    withdraw_consent,
)

router = APIRouter(tags=["claims"])


class DeclineIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post("/v1/claims", status_code=201)
def create_claim(s: SessionDep, sv: ServicesDep, caller: CallerDep,
                 body: ClaimIn) -> dict[str, Any]:
    """Open a claim with the claimant's signed consent. Records already published in the
    consent's scope attach at once; later ones attach as they arrive."""
    require_role(caller, Role.INSURER, action="open claims")
    claim = open_claim(s, sv.ledger, caller, body)
    return claims_view.claim_view(s, claim)


@router.get("/v1/claims")
def list_claims(s: SessionDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Your claims, newest first."""
    require_role(caller, Role.INSURER, action="read claims")
    return claims_view.list_claims(s, caller)


@router.get("/v1/claims/{claim_id}")
def read_claim(s: SessionDep, caller: CallerDep, claim_id: str) -> dict[str, Any]:
    """A claim with its consent, records (duplicates named), requests and timeline."""
    require_role(caller, Role.INSURER, action="read claims")
    return claims_view.claim_view(s, get_claim(s, caller, claim_id))


@router.post("/v1/claims/{claim_id}/consent/withdraw")
def withdraw(s: SessionDep, sv: ServicesDep, caller: CallerDep,
             claim_id: str) -> dict[str, Any]:
    """Record the claimant's withdrawal: payload reads under this claim stop at once."""
    require_role(caller, Role.INSURER, action="manage consent")
    claim = get_claim(s, caller, claim_id)
    withdraw_consent(s, sv.ledger, caller, claim)
    return claims_view.claim_view(s, claim)


class CloseIn(BaseModel):
    outcome: Literal["paid", "denied", "withdrawn"] = Field(
        description="the decision: paid, denied, or withdrawn by the claimant")


@router.post("/v1/claims/{claim_id}/close")
def close(s: SessionDep, caller: CallerDep, claim_id: str, body: CloseIn) -> dict[str, Any]:
    """Close a decided claim: nothing attaches any more, open requests are cancelled (their
    institutions are told), the claim keeps its records, consent and timeline."""
    require_role(caller, Role.INSURER, action="close claims")
    claim = close_claim(s, get_claim(s, caller, claim_id), body.outcome)
    return claims_view.claim_view(s, claim)


@router.post("/v1/claims/{claim_id}/requests", status_code=201)
def request_evidence(s: SessionDep, sv: ServicesDep, caller: CallerDep, claim_id: str,
                     body: requests.RequestIn) -> dict[str, Any]:
    """Ask an institution for kinds of evidence; green-channel claims get a 30-minute clock."""
    require_role(caller, Role.INSURER, action="request evidence")
    claim = get_claim(s, caller, claim_id)
    er = requests.create(s, sv.members, claim, body, sv.settings.green_channel_minutes)
    return requests.view(er)


@router.get("/v1/requests")
def list_requests(s: SessionDep, caller: CallerDep,
                  status: Annotated[Literal["open", "partly_fulfilled", "fulfilled",
                                            "declined", "expired", "cancelled"] | None, Query(
                      description="only requests in this state (as shown: a routine request "
                      "past due shows expired)")] = None,
                  ) -> list[dict[str, Any]]:
    """Institutions: requests addressed to you. Insurers: requests you sent."""
    return requests.list_for(s, caller, status)


@router.post("/v1/requests/{request_id}/decline")
def decline_request(s: SessionDep, caller: CallerDep, request_id: str,
                    body: DeclineIn) -> dict[str, Any]:
    """Decline a request addressed to you, with a reason the insurer sees."""
    require_role(caller, *PUBLISHERS, action="decline evidence requests")
    return requests.view(requests.decline(s, caller, request_id, body.reason))
