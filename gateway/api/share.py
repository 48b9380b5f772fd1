"""HTTP routes for the claimant's progress board: share links (the insurer's, for its own
claims) and the progress they open (`Authorization: Share cxs_…`, JSON or server-sent events).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from gateway.api.deps import CallerDep, ServicesDep, SessionDep
from gateway.core.types import Role
from gateway.services.auth import require_role
from gateway.services.claims import get_claim
from gateway.services.progress import names_from, progress_stream, snapshot
from gateway.services.share import create_link, link_view, links_of, revoke_link

router = APIRouter(tags=["progress"])
ClaimId = Annotated[str, Path(max_length=36)]
ShareHeader = Annotated[str | None, Header(alias="Authorization", description="`Share cxs_…`, "
                                           "the token from the link's fragment (`#t=`)")]


class ShareIn(BaseModel):
    days: int | None = Field(None, ge=1, le=366, description="life of the link; default "
                             "CLAIMX_SHARE_LINK_DAYS (30)")


class ShareOut(BaseModel):
    id: str
    claim_id: str
    created_at: str
    expires_at: str
    revoked_at: str | None


class ShareCreated(ShareOut):
    url: str = Field(description="the progress page with the token in its fragment (sent to "
                     "no server); give it to the claimant")
    token: str = Field(description="shown once; stored only hashed")


@router.post("/v1/claims/{claim_id}/share", status_code=status.HTTP_201_CREATED)
def share_claim(request: Request, claim_id: ClaimId, s: SessionDep, sv: ServicesDep,
                caller: CallerDep, body: ShareIn | None = None) -> ShareCreated:
    """A link for the claimant to follow this claim's progress (the claim's insurer only)."""
    require_role(caller, Role.INSURER, action="share claim progress")
    claim = get_claim(s, caller, claim_id)
    days = body.days if body and body.days else sv.settings.share_link_days
    link, token = create_link(s, claim, days)
    s.flush()
    url = f"{str(request.base_url).rstrip('/')}/progress#t={token}"
    return ShareCreated(**link_view(link), url=url, token=token)


@router.get("/v1/claims/{claim_id}/share")
def list_shares(claim_id: ClaimId, s: SessionDep, caller: CallerDep) -> list[ShareOut]:
    """The claim's share links (without tokens)."""
    require_role(caller, Role.INSURER, action="share claim progress")
    return [ShareOut(**link_view(x)) for x in links_of(s, get_claim(s, caller, claim_id))]


@router.delete("/v1/claims/{claim_id}/share/{share_id}")
def revoke_share(claim_id: ClaimId, share_id: Annotated[str, Path(max_length=36)],
                 s: SessionDep, caller: CallerDep) -> ShareOut:
    """Revoke a link at once: its page and open streams are refused from now on."""
    require_role(caller, Role.INSURER, action="share claim progress")
    return ShareOut(**link_view(revoke_link(s, get_claim(s, caller, claim_id), share_id)))


@router.get("/v1/progress", response_class=JSONResponse,
            responses={401: {"description": "unknown, expired or revoked link"}})
def claim_progress(request: Request, sv: ServicesDep, authorization: ShareHeader = None,
                   ) -> Response:
    """The progress a share link opens: its steps and the typical time to ready, nothing else.
    With `Accept: text/event-stream`, the board as an `event: progress` each time it changes."""
    name_of = names_from(sv.members.lookup)
    board = snapshot(sv.db, authorization, name_of)  # refuses a bad token before any stream
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    if "text/event-stream" in request.headers.get("accept", "").lower():
        return StreamingResponse(progress_stream(sv.db, authorization, name_of),
                                 media_type="text/event-stream",
                                 headers=headers | {"X-Accel-Buffering": "no"})
    return JSONResponse(board, headers=headers)
