"""HTTP routes for push: webhook endpoints and deliveries, and server-sent event streams.

Every route authenticates the caller; a member sees and changes only its own endpoints and
deliveries (anything else is a 404, as if it did not exist). Streams are
``text/event-stream`` (WHATWG HTML server-sent events) and honour ``Last-Event-ID``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from gateway.api.deps import CallerDep, ServicesDep, SessionDep
from gateway.core.errors import NotFoundError
from gateway.core.types import Role
from gateway.services.auth import require_role
from gateway.services.push import endpoints
from gateway.services.push.sse import event_stream, poll_once
from gateway.store.tables import Claim, Delivery, Event, WebhookEndpoint

router = APIRouter(tags=["push"])

MAX_ID = 2**63 - 1
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
LastEventId = Annotated[int, Header(alias="Last-Event-ID", ge=0, le=MAX_ID,
                                    description="resume after this event id")]


class EventOut(BaseModel):
    id: int
    type: str
    claim_id: str | None
    at: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    """Poll mode of the event routes, for clients that cannot hold a stream open."""

    events: list[EventOut]
    resume_after: int = Field(description="pass as `after` (or Last-Event-ID) next time: "
                              "events committed late are not missed; skip ids you have")


SSE_DOC: dict[int | str, dict[str, Any]] = {200: {
    "model": EventPage,
    "description": "with `Accept: text/event-stream`: an endless stream of `id`, `event` and "
                   "JSON `data` fields, `: keepalive` comments every 15 s; otherwise one JSON "
                   "page of events (poll mode)",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


class WebhookIn(BaseModel):
    url: str = Field(max_length=2048, examples=["https://claims.example-insurer.cn/claimx"],
                     description="absolute https URL of a public receiver that accepts "
                     "POSTed JSON (http only for the gateway's allowed hosts)")


class WebhookOut(BaseModel):
    id: str
    url: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="HMAC-SHA256 key for X-Claimx-Signature; shown only now")


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: str
    event_id: int
    event_type: str
    status: Literal["pending", "delivered", "parked"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="set while pending")
    last_error: str | None
    delivered_at: datetime | None


def _webhook(e: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(id=e.id, url=e.url, created_at=e.created_at)


def _delivery(d: Delivery, event_type: str) -> DeliveryOut:
    return DeliveryOut(id=d.id, endpoint_id=d.endpoint_id, event_id=d.event_id,
                       event_type=event_type, status=d.status,
                       attempts=d.attempts, last_error=d.last_error,
                       next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
                       delivered_at=d.delivered_at)


@router.post("/v1/webhooks", status_code=201, response_model=WebhookCreated)
def create_webhook(body: WebhookIn, caller: CallerDep, s: SessionDep,
                   sv: ServicesDep) -> WebhookCreated:
    """Register a receiver for the caller's events (those emitted from now on). Each POST
    carries `X-Claimx-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    The URL must be https to a public address (422 `webhook_destination_forbidden`)."""
    endpoint, secret = endpoints.register_endpoint(s, caller.member_id, body.url,
                                                   destinations=sv.push.destinations,
                                                   vault=sv.vault)
    return WebhookCreated(**_webhook(endpoint).model_dump(), secret=secret)


@router.get("/v1/webhooks", response_model=list[WebhookOut])
def list_webhooks(caller: CallerDep, s: SessionDep) -> list[WebhookOut]:
    """The caller's active webhook endpoints (secrets are never shown again)."""
    return [_webhook(e) for e in endpoints.list_endpoints(s, caller.member_id)]


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204)
def delete_webhook(endpoint_id: Annotated[str, Path(max_length=36)], caller: CallerDep,
                   s: SessionDep) -> None:
    """Remove an endpoint; deliveries still waiting for it are parked."""
    endpoints.remove_endpoint(s, caller.member_id, endpoint_id)


@router.get("/v1/webhooks/deliveries", response_model=list[DeliveryOut])
def list_deliveries(caller: CallerDep, s: SessionDep,
                    status: Literal["pending", "delivered", "parked"] | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeliveryOut]:
    """The caller's webhook deliveries, newest first."""
    return [_delivery(d, t) for d, t in endpoints.list_deliveries(s, caller.member_id, status,
                                                              limit)]


@router.post("/v1/webhooks/deliveries/{delivery_id}/replay", response_model=DeliveryOut)
def replay_delivery(delivery_id: Annotated[int, Path(ge=1, le=MAX_ID)], caller: CallerDep,
                    s: SessionDep) -> DeliveryOut:
    """Send a parked delivery again now, with a fresh round of retries."""
    d = endpoints.replay(s, delivery_id, caller.member_id)
    event = s.get(Event, d.event_id)
    return _delivery(d, event.type if event is not None else "")


After = Annotated[int | None, Query(ge=0, le=MAX_ID, description="poll mode: events after "
                                    "this id (the previous page's resume_after)")]
Limit = Annotated[int, Query(ge=1, le=500, description="poll mode: most events per page")]


@router.get("/v1/events", response_class=StreamingResponse, responses=SSE_DOC)
def stream_events(request: Request, caller: CallerDep, last_event_id: LastEventId = 0,
                  after: After = None, limit: Limit = 100) -> Response:
    """Every event addressed to the caller after `Last-Event-ID` (or `after`): a server-sent
    event stream when the client accepts `text/event-stream`, else one JSON page."""
    return _stream(request, caller.member_id, None, after or last_event_id, limit)


@router.get("/v1/claims/{claim_id}/events", response_class=StreamingResponse,
            responses=SSE_DOC)
def stream_claim_events(request: Request, claim_id: Annotated[str, Path(max_length=36)],
                        caller: CallerDep, last_event_id: LastEventId = 0,
                        after: After = None, limit: Limit = 100) -> Response:
    """One claim's events (its timeline as it happens), streamed or as a JSON page like
    `/v1/events`; the claim's insurer only."""
    require_role(caller, Role.INSURER, action="follow claims")
    # a short session of its own: a SessionDep would stay open for the whole stream
    with request.app.state.services.db.session() as s:
        claim = s.get(Claim, claim_id)
    if claim is None or claim.insurer != caller.member_id:  # another's claim: as if absent
        raise NotFoundError("no claim of yours with this id", code="claim_not_found")
    return _stream(request, caller.member_id, claim_id, after or last_event_id, limit)


def _stream(request: Request, member_id: bytes, claim_id: str | None, after: int,
            limit: int) -> Response:
    """A stream for EventSource clients (they send ``Accept: text/event-stream``); a finite
    JSON page for everyone else, so a plain HTTP client or a fuzzer never hangs."""
    db = request.app.state.services.db
    if "text/event-stream" not in request.headers.get("accept", "").lower():
        events, resume = poll_once(db, member_id, claim_id, after, limit)
        page = EventPage.model_validate({"events": events, "resume_after": resume})
        return JSONResponse(page.model_dump(mode="json"))
    return StreamingResponse(event_stream(db, member_id, claim_id, after),
                             media_type="text/event-stream", headers=SSE_HEADERS)
