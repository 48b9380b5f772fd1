"""The HTTP gateway (FastAPI): publish envelopes, fetch records, proofs, receipts and tree heads.

Routes are thin: they parse, call the publisher / log / receipt modules and shape JSON.
Every domain error becomes its HTTP status with a machine-readable body
``{"error": {"code": ..., "message": ..., ...}}`` in one handler; bodies over the size limit
are refused before they are read whole.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import __version__
from gateway.errors import ClaimxError, InputError, NotFoundError
from gateway.log import EvidenceLogDB
from gateway.publish import Accepted
from gateway.receipt import build_receipt
from gateway.services import Services
from gateway.store import Anchor, Record

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]
DIGEST = Path(pattern=r"^(0x)?[0-9a-fA-F]{64}$", description="record digest, 64 hex digits")


class SignatureModel(BaseModel):
    keyid: str = Field(description="0x-hex SHA-256 of the signing key's SubjectPublicKeyInfo")
    sig: str = Field(description="base64 signature over the DSSE PAE")


class EnvelopeModel(BaseModel):
    """A DSSE envelope whose payload is a canonical claim packet."""

    payloadType: str = Field(examples=["application/vnd.claimx.packet+json"])  # noqa: N815
    payload: str = Field(description="base64 of the packet's RFC 8785 bytes")
    signatures: list[SignatureModel]


class BatchModel(BaseModel):
    envelopes: list[EnvelopeModel] = Field(description="all are checked; one bad one rejects "
                                           "the batch and nothing is stored")


class Published(BaseModel):
    digest: str
    duplicate: bool = Field(description="already stored: not a second leaf")
    urgent: bool
    kind: str


def _published(a: Accepted) -> Published:
    return Published(digest=a.digest.hex(), duplicate=a.duplicate, urgent=a.urgent, kind=a.kind)


def create_app(services: Services, *, run_worker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            services.worker.start()
        yield
        services.worker.stop()

    app = FastAPI(title="claimx gateway", version=__version__, lifespan=lifespan,
                  description="Publish institution-signed claim evidence; fetch records with "
                  "inclusion proofs against tree heads anchored on chain.")
    app.state.services = services
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=services.settings.max_body_bytes)
    _routes(app, services)
    return app


def _session(request: Request) -> Any:
    with request.app.state.services.db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(_session)]


def _routes(app: FastAPI, sv: Services) -> None:
    @app.post("/v1/records", status_code=201, response_model=Published, tags=["records"])
    def publish_one(envelope: EnvelopeModel) -> Published:
        """Publish one signed envelope. Publishing the same digest again is idempotent."""
        return _published(sv.publisher.publish([envelope.model_dump()])[0])

    @app.post("/v1/records/batch", status_code=201, response_model=list[Published],
              tags=["records"], openapi_extra={"requestBody": {
                  "required": True, "content": {"application/json": {
                      "schema": BatchModel.model_json_schema(
                          ref_template="#/components/schemas/{model}")}}}})
    async def publish_batch(request: Request) -> list[Published]:
        """Publish up to ``max_batch`` envelopes in one all-or-nothing request.

        The body is parsed once, straight into the envelope parser (the hot path of bulk
        publication): the schema above documents it, the parser enforces it.
        """
        envelopes = _batch_items(await request.body(), sv.settings.max_batch)
        accepted = await run_in_threadpool(sv.publisher.publish, envelopes)
        return [_published(a) for a in accepted]

    @app.get("/v1/records/{digest}", tags=["records"])
    def get_record(s: SessionDep, digest: Annotated[str, DIGEST]) -> dict[str, Any]:
        """A record, its envelope and its status: accepted, logged or anchored."""
        rec = s.scalar(select(Record).where(Record.digest == _hex(digest)))
        if rec is None:
            raise NotFoundError("no record with this digest", code="record_not_found")
        anchor = None if rec.leaf_index is None else s.scalar(
            select(Anchor).where(Anchor.size > rec.leaf_index).order_by(Anchor.size).limit(1))
        status = "accepted" if rec.leaf_index is None else "anchored" if anchor else "logged"
        return {
            "digest": rec.digest.hex(), "status": status, "kind": rec.kind,
            "issuer": "0x" + rec.issuer.hex(), "issued_at": rec.issued_at,
            "accepted_at": rec.accepted_at.isoformat(), "urgent": rec.urgent,
            "leaf_index": rec.leaf_index,
            "anchored_in": None if anchor is None else {
                "head_index": anchor.head_index, "size": anchor.size,
                "tx_hash": anchor.tx_hash.hex(), "block_number": anchor.block_number},
            "envelope": _json(rec.envelope),
        }

    @app.get("/v1/records/{digest}/receipt", tags=["proofs"])
    def get_receipt(s: SessionDep, digest: Annotated[str, DIGEST]) -> dict[str, Any]:
        """Portable receipt: envelope, inclusion proof against the latest anchored head, and
        the anchoring transactions. Check it with `claimx verify`."""
        return build_receipt(s, _hex(digest), sv.chain_ref, sv.cache).model_dump(mode="json")

    @app.get("/v1/log/head", tags=["proofs"])
    def get_head(s: SessionDep) -> dict[str, Any]:
        """The latest tree head anchored on chain, and the local log size."""
        latest = s.scalar(select(Anchor).order_by(Anchor.size.desc()).limit(1))
        return {
            "log_size": EvidenceLogDB(s, sv.cache).size(),
            "anchored": None if latest is None else {
                "head_index": latest.head_index, "size": latest.size, "root": latest.root.hex(),
                "tx_hash": latest.tx_hash.hex(), "block_number": latest.block_number,
                "block_time": latest.block_time},
            "chain": sv.chain_ref.model_dump(),
        }

    @app.get("/v1/log/consistency", tags=["proofs"])
    def get_consistency(s: SessionDep, first: Annotated[int, Query(ge=0)],
                        second: Annotated[int, Query(ge=1)]) -> dict[str, Any]:
        """RFC 9162 consistency proof between two anchored-or-logged sizes."""
        logdb = EvidenceLogDB(s, sv.cache)
        if not first <= second <= logdb.size():
            raise InputError(f"need 0 <= first <= second <= log size {logdb.size()}",
                             code="bad_sizes")
        return {"first": first, "second": second,
                "root1": logdb.root(first).hex(), "root2": logdb.root(second).hex(),
                "proof": [p.hex() for p in logdb.consistency_proof(first, second)]}

    @app.get("/healthz", tags=["ops"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "chain_id": sv.deployment.chain_id}


def _batch_items(body: bytes, limit: int) -> list[Any]:
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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


def _hex(digest: str) -> bytes:
    return bytes.fromhex(digest[2:] if digest.startswith("0x") else digest)


def _json(text: str) -> Any:
    return json.loads(text)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClaimxError)
    async def claimx_error(_request: Request, exc: ClaimxError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()[:20]]
        malformed = any(e["type"] == "json_invalid" for e in errors)
        body = {"code": "malformed_json" if malformed else "invalid_request",
                "message": "request body is not valid JSON" if malformed
                else "request does not match the API schema", "errors": errors}
        return JSONResponse({"error": body}, status_code=400 if malformed else 422)


class BodyLimit:
    """Refuse bodies larger than ``limit`` bytes with 413 before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        # no declared length (chunked): buffer up to the limit, then replay it to the app
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _too_large(send, self.limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Callable[[Any], Awaitable[None]], limit: int) -> None:
    body = json.dumps({"error": {"code": "too_large", "message":
                                 f"request body exceeds {limit} bytes"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
