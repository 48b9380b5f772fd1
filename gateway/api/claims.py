"""Routes for the insurer's side: claims with consent, evidence requests, the timeline.

Insurers open and read their own claims (another insurer's claim is a 404); institutions
list and decline the requests addressed to them. Publishing evidence answers requests.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from gateway.api.deps import CallerDep, ServicesDep, SessionDep
from gateway.api.schemas import ClaimSummary, ClaimView, RequestOut, RequestStatus
from gateway.core.types import Role
from gateway.services import claims_view, requests
from gateway.services.auth import PUBLISHERS, require_role
from gateway.services.claims import ClaimIn, close_claim, get_claim, open_claim, withdraw_consent
from gateway.store.tables import Claim

router = APIRouter(tags=["claims"])


class DeclineIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class CloseIn(BaseModel):
    outcome: Literal["paid", "denied", "withdrawn"] = Field(
        description="the decision: paid, denied, or withdrawn by the claimant")


@router.post("/v1/claims", status_code=201, response_model=ClaimView)
def create_claim(s: SessionDep, sv: ServicesDep, caller: CallerDep,
                 body: ClaimIn) -> ClaimView:
    """Open a claim with the claimant's signed consent. Records already published in the
    consent's scope attach at once; later ones attach as they arrive."""
    require_role(caller, Role.INSURER, action="open claims")
    claim = open_claim(s, sv.ledger, caller, body)
    return _view(s, claim)


@router.get("/v1/claims", response_model=list[ClaimSummary])
def list_claims(s: SessionDep, caller: CallerDep) -> list[ClaimSummary]:
    """Your claims, newest first."""
    require_role(caller, Role.INSURER, action="read claims")
    return [ClaimSummary.model_validate(c) for c in claims_view.list_claims(s, caller)]


@router.get("/v1/claims/{claim_id}", response_model=ClaimView)
def read_claim(s: SessionDep, caller: CallerDep, claim_id: str) -> ClaimView:
    """A claim with its consent, records (duplicates named), requests and timeline."""
    require_role(caller, Role.INSURER, action="read claims")
    return _view(s, get_claim(s, caller, claim_id))


@router.post("/v1/claims/{claim_id}/consent/withdraw", response_model=ClaimView)
def withdraw(s: SessionDep, sv: ServicesDep, caller: CallerDep, claim_id: str) -> ClaimView:
    """Record the claimant's withdrawal: payload reads under this claim stop at once."""
    require_role(caller, Role.INSURER, action="manage consent")
    claim = get_claim(s, caller, claim_id)
    withdraw_consent(s, sv.ledger, caller, claim)
    return _view(s, claim)


@router.post("/v1/claims/{claim_id}/close", response_model=ClaimView)
def close(s: SessionDep, caller: CallerDep, claim_id: str, body: CloseIn) -> ClaimView:
    """Close a decided claim: nothing attaches any more, open requests are cancelled (their
    institutions are told), the claim keeps its records, consent and timeline."""
    require_role(caller, Role.INSURER, action="close claims")
    claim = close_claim(s, get_claim(s, caller, claim_id), body.outcome)
    return _view(s, claim)


@router.post("/v1/claims/{claim_id}/requests", status_code=201, response_model=RequestOut)
def request_evidence(s: SessionDep, sv: ServicesDep, caller: CallerDep, claim_id: str,
                     body: requests.RequestIn) -> RequestOut:
    """Ask an institution for kinds of evidence; green-channel claims get a 30-minute clock."""
    require_role(caller, Role.INSURER, action="request evidence")
    claim = get_claim(s, caller, claim_id)
    er = requests.create(s, sv.members, claim, body, sv.settings.green_channel_minutes)
    return RequestOut.model_validate(requests.view(er))


@router.get("/v1/requests", response_model=list[RequestOut])
def list_requests(s: SessionDep, caller: CallerDep,
                  status: Annotated[RequestStatus | None, Query(
                      description="only requests in this state (as shown: a routine request "
                      "past due shows expired)")] = None,
                  ) -> list[RequestOut]:
    """Institutions: requests addressed to you. Insurers: requests you sent."""
    return [RequestOut.model_validate(v) for v in requests.list_for(s, caller, status)]


@router.post("/v1/requests/{request_id}/decline", response_model=RequestOut)
def decline_request(s: SessionDep, caller: CallerDep, request_id: str,
                    body: DeclineIn) -> RequestOut:
    """Decline a request addressed to you, with a reason the insurer sees."""
    require_role(caller, *PUBLISHERS, action="decline evidence requests")
    return RequestOut.model_validate(requests.view(requests.decline(s, caller, request_id,
                                                                    body.reason)))


def _view(s: Session, claim: Claim) -> ClaimView:
    return ClaimView.model_validate(claims_view.claim_view(s, claim))
