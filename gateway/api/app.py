"""The HTTP gateway (FastAPI): publish envelopes, fetch records, proofs, receipts and tree heads.

Routes live in gateway.api.records, .claims, .members and .push and are thin: they parse,
authorise, call the services and return the response models of gateway.api.schemas.
Every domain error becomes its HTTP status with a machine-readable body
``{"error": {"code": ..., "message": ..., ...}}`` in one handler; bodies over the size limit
are refused before they are read whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import __version__
from gateway.api.claims import router as claims_router
from gateway.api.consents import router as consents_router
from gateway.api.docs import install_docs
from gateway.api.members import router as members_router
from gateway.api.metrics import CONTENT_TYPE, Metrics, RequestMetrics
from gateway.api.pages import router as pages_router
from gateway.api.push import router as push_router
from gateway.api.records import router as records_router
from gateway.api.schemas import Health
from gateway.api.share import router as share_router
from gateway.api.status import router as status_router
from gateway.core.envelope import MAX_DEPTH
from gateway.core.errors import ClaimxError, DatabaseUnavailableError, UnavailableError
from gateway.core.jsondepth import json_depth
from gateway.services.health import chain_check, database_check, readiness
from gateway.services.wiring import Services

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


DB_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
           sa_exc.DisconnectionError)
"""SQLAlchemy's errors for a database that refuses, drops or cannot hand out connections."""


def create_app(services: Services, *, run_worker: bool = True) -> FastAPI:
    checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="claimx-readyz")
    """Readiness checks run here, not in the request pool a stuck dependency may have filled."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            services.worker.start()
            services.push.start()
        yield
        services.worker.stop()
        services.push.stop()
        checks.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="claimx gateway", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # served offline by install_docs
                  description="Publish institution-signed claim evidence; open claims with "
                  "consent and receive evidence as it arrives; fetch records with inclusion "
                  "proofs against tree heads anchored on chain. Authenticate with "
                  "`Authorization: Bearer cx1_…` (`claimx credentials issue`).")
    app.state.services = services
    metrics = app.state.metrics = Metrics(services)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=services.settings.max_body_bytes,
                       timeout=services.settings.http_body_timeout_seconds)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.include_router(records_router)
    app.include_router(claims_router)
    app.include_router(consents_router)
    app.include_router(push_router, tags=["push"])
    app.include_router(members_router)
    app.include_router(pages_router)
    app.include_router(share_router)
    app.include_router(status_router)
    install_docs(app)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def health() -> Health:
        """Liveness: the process answers (on the event loop, whatever the thread pool holds).
        No authentication; it asks no dependency, so it says nothing about them: see /readyz."""
        return Health(status="ok", version=__version__, chain_id=services.deployment.chain_id)

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    async def ready() -> JSONResponse:
        """Readiness: database and chain answer (200) or not (503, ``failing`` names them);
        with the breaker state, worker lease, anchor lag and push backlog. No authentication,
        and nothing in it about members or records."""
        limit = services.settings.chain_timeout_seconds + 2
        db, chain = await asyncio.gather(
            _bounded(checks, database_check, services, limit,
                     {"database": {"ok": False, "error": "timeout"}}),
            _bounded(checks, chain_check, services, limit,
                     {"ok": False, "error": "timeout", "breaker": services.chain.breaker.state}))
        ok, body = readiness(db, chain)
        return JSONResponse(body | {"version": __version__}, status_code=200 if ok else 503,
                            headers=None if ok else {"Retry-After": "5"})

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}}})
    async def prometheus() -> Response:
        """Prometheus metrics (counts and states only, no member or record data); no
        authentication, like /readyz: expose it to the operator's network only."""
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(checks, metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    return app


async def _bounded(pool: ThreadPoolExecutor, check: Callable[[Services], dict[str, Any]],
                   services: Services, limit: float,
                   on_timeout: dict[str, Any]) -> dict[str, Any]:
    """Run a blocking check in ``pool``; past ``limit`` seconds report a timeout instead."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(pool, check, services), limit)
    except TimeoutError:
        return on_timeout


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClaimxError)
    async def claimx_error(_request: Request, exc: ClaimxError) -> JSONResponse:
        headers = None
        if isinstance(exc, UnavailableError):  # a dependency is down: 503, try again later
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status,
                            headers=headers)

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        """The database is unreachable: 503 ``database_unavailable``, not a 500. The driver's
        text is not shown (it may name hosts or hold statement parameters)."""
        request.app.state.metrics.database_errors.inc()
        return await claimx_error(request, DatabaseUnavailableError(
            f"the database is not answering ({type(exc).__name__}); try again shortly"))

    for error in DB_DOWN:
        app.add_exception_handler(error, database_down)

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

    def __init__(self, app: ASGIApp, limit: int, timeout: float = 30.0) -> None:
        self.app, self.limit, self.timeout = app, limit, timeout

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
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:  # a client that stops sending must not hold a worker
                await _refuse(send, 408, "body_timeout", f"no part of the request body for "
                              f"{self.timeout:g} s")
                return
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

