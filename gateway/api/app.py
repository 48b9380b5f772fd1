"""The HTTP gateway (FastAPI): publish envelopes, fetch records, proofs, receipts and tree heads.

Routes live in gateway.api.records, .claims, .members and .push and are thin: they parse,
authorise, call the services and return the response models of gateway.api.schemas.
Every domain error becomes its HTTP status with a machine-readable body
``{"error": {"code": ..., "message": ..., ...}}`` in one handler; bodies over the size limit
are refused before they are read whole.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import __version__
from gateway.api.claims import router as claims_router
from gateway.api.members import router as members_router
from gateway.api.push import router as push_router
from gateway.api.records import router as records_router
from gateway.api.schemas import Health
from gateway.core.envelope import MAX_DEPTH
from gateway.core.errors import ClaimxError
from gateway.core.jsondepth import json_depth
from gateway.services.wiring import Services

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


def create_app(services: Services, *, run_worker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            services.worker.start()
            services.push.start()
        yield
        services.worker.stop()
        services.push.stop()

    app = FastAPI(title="claimx gateway", version=__version__, lifespan=lifespan,
                  description="Publish institution-signed claim evidence; open claims with "
                  "consent and receive evidence as it arrives; fetch records with inclusion "
                  "proofs against tree heads anchored on chain. Authenticate with "
                  "`Authorization: Bearer cx1_…` (`claimx credentials issue`).")
    app.state.services = services
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=services.settings.max_body_bytes)
    app.include_router(records_router)
    app.include_router(claims_router)
    app.include_router(push_router, tags=["push"])
    app.include_router(members_router)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def health() -> Health:
        """Liveness; the only route without authentication."""
        return Health(status="ok", version=__version__, chain_id=services.deployment.chain_id)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClaimxError)
    async def claimx_error(_request: Request, exc: ClaimxError) -> JSONResponse:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """The framework's own 404/405 in the same body as every other error."""
        code = {404: "no_such_route", 405: "method_not_allowed"}.get(exc.status_code,
                                                                    "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}},
                            status_code=exc.status_code, headers=exc.headers)

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
    """Refuse bodies larger than ``limit`` bytes (413) before reading them whole, and JSON
    nested deeper than ``MAX_DEPTH`` (400 ``too_deep``) before any parser sees it (see
    gateway.core.jsondepth: the recursion limit web3's dependencies set lets json.loads overflow
    the C stack). The body, at most ``limit`` bytes, is buffered and replayed to the app."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _refuse(send, 413, "too_large", f"request body exceeds {self.limit} bytes")
            return
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _refuse(send, 413, "too_large", f"request body exceeds {self.limit} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and json_depth(body) > MAX_DEPTH:
            await _refuse(send, 400, "too_deep", f"request body nests deeper than {MAX_DEPTH} "
                          "levels")
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Callable[[Any], Awaitable[None]], status: int, code: str,
                  message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

