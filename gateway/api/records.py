"""Routes for records, proofs and the log: publish, metadata, payloads, receipts, erasure.

Who may do what (every route needs `Authorization: Bearer cx1_…`):
publishers (hospital, police, civil) publish their own records and read them; insurers read
payloads of records their claims hold under a live consent; every member reads metadata,
proofs and tree heads; auditors and the operator read the access log of any record.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, TypeAdapter

from gateway.api.deps import CallerDep, ServicesDep, SessionDep
from gateway.api.schemas import (
    AccessLogOut,
    ConsistencyOut,
    EnvelopeOut,
    Erased,
    LeavesOut,
    LogHead,
    ProofOut,
    Published,
    RecordOut,
    SignatureModel,
)
from gateway.core.construct import construct
from gateway.core.errors import InputError
from gateway.core.promise import PromiseBundle
from gateway.core.receipt import Receipt
from gateway.services import records
from gateway.services.access import find_record, read_payload
from gateway.services.auth import PUBLISHERS, require_role
from gateway.services.publish import Accepted
from gateway.services.receipts import build_receipt, inclusion

router = APIRouter()
DIGEST = Path(pattern=r"^(0x)?[0-9a-fA-F]{64}$", description="record digest, 64 hex digits")
DigestPath = Annotated[str, DIGEST]


class EnvelopeModel(BaseModel):
    """A DSSE envelope whose payload is a canonical claim packet."""

    payloadType: str = Field(examples=["application/vnd.claimx.packet+json"])  # noqa: N815
    payload: str = Field(description="base64 of the packet's RFC 8785 bytes")
    signatures: list[SignatureModel]


class BatchModel(BaseModel):
    envelopes: list[EnvelopeModel] = Field(description="all are checked; one bad one rejects "
                                           "the batch and nothing is stored")


def _published(a: Accepted) -> Published:
    return Published(digest=a.digest.hex(), duplicate=a.duplicate, urgent=a.urgent, kind=a.kind,
                     key_status=a.key_status, promise=a.promise)


_PUBLISHED_LIST = TypeAdapter(list[Published])


def _published_unchecked(a: Accepted) -> Published:
    """:func:`_published` without re-validating values the publisher made itself
    (gateway.core.construct: a batch answers thousands)."""
    return construct(Published, {"digest": a.digest.hex(), "duplicate": a.duplicate,
                                 "urgent": a.urgent, "kind": a.kind,
                                 "key_status": a.key_status, "promise": a.promise})


def _hex(digest: str) -> bytes:
    return bytes.fromhex(digest[2:] if digest.startswith("0x") else digest)


@router.post("/v1/records", status_code=201, response_model=Published, tags=["records"])
def publish_one(sv: ServicesDep, caller: CallerDep, envelope: EnvelopeModel) -> Published:
    """Publish one signed envelope of your own. Publishing the same digest again is
    idempotent."""
    require_role(caller, *PUBLISHERS, action="publish evidence")
    return _published(sv.publisher.publish([envelope.model_dump()], caller.member_id)[0])


@router.post("/v1/records/batch", status_code=201, response_model=list[Published],
             tags=["records"], openapi_extra={"requestBody": {
                 "required": True, "content": {"application/json": {
                     "schema": BatchModel.model_json_schema(
                         ref_template="#/components/schemas/{model}")}}}})
async def publish_batch(request: Request, sv: ServicesDep, caller: CallerDep) -> list[Published]:
    """Publish up to ``max_batch`` envelopes in one all-or-nothing request.

    The body is parsed once, straight into the envelope parser (the hot path of bulk
    publication): the schema above documents it, the parser enforces it.
    """
    require_role(caller, *PUBLISHERS, action="publish evidence")
    envelopes = _batch_items(await request.body(), sv.settings.max_batch)
    accepted = await run_in_threadpool(sv.publisher.publish, envelopes, caller.member_id)
    # serialised here in one call rather than validated item by item against the response
    # model: the same JSON, at a fraction of the cost for thousands of records
    body = _PUBLISHED_LIST.dump_json([_published_unchecked(a) for a in accepted])
    return Response(body, status_code=201, media_type="application/json")  # type: ignore[return-value]


@router.get("/v1/records/{digest}", response_model=RecordOut, tags=["records"])
def get_record(s: SessionDep, caller: CallerDep, digest: DigestPath) -> RecordOut:
    """A record's metadata and status (accepted, logged, anchored); no payload."""
    return RecordOut.model_validate(records.metadata(s, find_record(s, _hex(digest))))


@router.get("/v1/records/{digest}/envelope", response_model=EnvelopeOut, tags=["records"])
def get_envelope(s: SessionDep, sv: ServicesDep, caller: CallerDep, digest: DigestPath,
                 claim: Annotated[str | None, Query(description="claim to read under")] = None,
                 ) -> EnvelopeOut:
    """The signed envelope with its payload: for its issuer, or an insurer whose claim holds
    it under a live consent. Every read is logged on the evidence log."""
    rec = find_record(s, _hex(digest))
    return EnvelopeOut.model_validate(read_payload(s, sv.vault, sv.ledger, caller, rec, claim))


@router.get("/v1/records/{digest}/receipt", response_model=Receipt, tags=["proofs"])
def get_receipt(s: SessionDep, sv: ServicesDep, caller: CallerDep, digest: DigestPath,
                claim: Annotated[str | None, Query(description="claim to read under")] = None,
                ) -> Receipt:
    """Portable receipt (envelope, inclusion proof against the latest anchored head, anchoring
    transactions): a payload read, so the same rules and logging as /envelope."""
    rec = find_record(s, _hex(digest))
    envelope = read_payload(s, sv.vault, sv.ledger, caller, rec, claim)
    return build_receipt(s, rec.digest, sv.chain_ref, envelope, sv.cache)


@router.get("/v1/records/{digest}/proof", response_model=ProofOut, tags=["proofs"])
def get_proof(s: SessionDep, sv: ServicesDep, caller: CallerDep,
              digest: DigestPath) -> ProofOut:
    """Inclusion proof and anchoring heads without the payload (what auditors read)."""
    rec = find_record(s, _hex(digest))
    return ProofOut(**inclusion(s, rec, sv.cache).model_dump(), chain=sv.chain_ref)


@router.get("/v1/records/{digest}/promise", response_model=PromiseBundle, tags=["proofs"])
def get_promise(s: SessionDep, sv: ServicesDep, caller: CallerDep,
                digest: DigestPath) -> PromiseBundle:
    """The record's signed acceptance promise, its signed extensions and how it ended: an
    inclusion proof (kept), a signed rejection, or neither yet (open; broken once the
    deadline has passed). Check it without trusting us: `claimx verify-promise FILE`."""
    return sv.promises.bundle(s, _hex(digest), sv.cache)


@router.post("/v1/records/{digest}/erase", response_model=Erased, tags=["records"])
def erase_record(s: SessionDep, caller: CallerDep, digest: DigestPath) -> Erased:
    """Destroy the payload's key (by its issuer or the operator): the digest stays provable."""
    return Erased.model_validate(records.erase_record(s, caller, find_record(s, _hex(digest))))


@router.get("/v1/records/{digest}/access-log", response_model=AccessLogOut, tags=["audit"])
def get_access_log(s: SessionDep, caller: CallerDep, digest: DigestPath) -> AccessLogOut:
    """Every payload read of a record: auditors, the operator, and the record's issuer."""
    rec = find_record(s, _hex(digest))
    return AccessLogOut.model_validate(records.access_log(s, caller, rec))


@router.get("/v1/log/head", response_model=LogHead, tags=["proofs"])
def get_head(s: SessionDep, sv: ServicesDep, caller: CallerDep) -> LogHead:
    """The latest tree head anchored on chain, and the local log size."""
    return LogHead.model_validate(records.log_head(s, sv.cache, sv.chain_ref))


@router.get("/v1/log/consistency", response_model=ConsistencyOut, tags=["proofs"])
def get_consistency(s: SessionDep, sv: ServicesDep, caller: CallerDep,
                    first: Annotated[int, Query(ge=0)],
                    second: Annotated[int, Query(ge=1)]) -> ConsistencyOut:
    """RFC 9162 consistency proof between two sizes of the log."""
    return ConsistencyOut.model_validate(records.consistency(s, sv.cache, first, second))


@router.get("/v1/log/leaves", response_model=LeavesOut, tags=["proofs"])
def get_leaves(s: SessionDep, sv: ServicesDep, caller: CallerDep,
               start: Annotated[int, Query(ge=0)] = 0,
               limit: Annotated[int, Query(ge=1, le=records.LEAVES_MAX)] = records.LEAVES_MAX,
               ) -> LeavesOut:
    """Leaves of the log from ``start``: each one's digest, issuer, key id and kind (no
    personal data), so an institution's `claimx monitor` sees every entry in its name and
    recomputes the anchored roots from the digests."""
    return LeavesOut.model_validate(records.log_leaves(s, sv.cache, start, limit))


def _batch_items(body: bytes, limit: int) -> list[Any]:
    try:
        obj = orjson.loads(body)  # depth already bounded by app.BodyLimit
    except orjson.JSONDecodeError as exc:
        raise InputError(f"request body is not valid JSON: {exc}", code="malformed_json",
                         http_status=400) from exc
    items = obj.get("envelopes") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        raise InputError('body must be {"envelopes": [...]}', code="invalid_request",
                         loc=["envelopes"])
    if not items:
        raise InputError("batch is empty", code="empty_batch")
    if len(items) > limit:
        raise InputError(f"batch holds {len(items)} envelopes, the limit is {limit}",
                         code="batch_too_large")
    return items


