"""OpenAPI that tells the truth, and API docs that work offline.

The schema declares the bearer scheme (Swagger UI's Authorize button) on every route that
authenticates, and each route's error answers, all shaped ``{"error": {"code", "message"}}``
(gateway/api/app.py's one handler). Swagger UI and ReDoc are served from files shipped in a
Python package (fastapi-offline's copies), never from a CDN: a consortium network without
internet still gets its /docs.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

STATIC = "/static/docs"
SCHEME = "bearer"
ERRORS = {
    400: "malformed JSON, or nested deeper than the limit (`malformed_json`, `too_deep`)",
    401: "missing, malformed, unknown or revoked credential (`missing_credentials`, "
         "`bad_credentials`)",
    403: "the caller's role or membership does not allow this (`role_forbidden`, "
         "`member_inactive`, ...)",
    404: "no such record, claim, request or endpoint of yours (also `not_yet_logged`, "
         "`not_yet_anchored` for a record still on its way to the chain)",
    409: "the state forbids it (`claim_closed`, `consent_withdrawn`, `request_closed`, ...)",
    413: "request body larger than CLAIMX_MAX_BODY_BYTES (`body_too_large`)",
    422: "the request does not match the schema, or a rule refused it (`invalid_request`, "
         "signature, key and issuer checks, ...)",
    503: "the chain node or the database is down: retry after `Retry-After` seconds",
}
_CONFLICTS = ("/v1/claims", "/v1/requests", "/v1/webhooks")


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str = Field(description="stable, machine-readable")
    message: str = Field(description="for people; carries no personal data")


class ErrorBody(BaseModel):
    """Every error answer of the gateway."""

    error: ErrorDetail


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from packaged assets and describe errors and auth in /openapi.json
    (create the app with ``docs_url=None, redoc_url=None``)."""
    assets = files("fastapi_offline") / "static"
    app.mount(STATIC, StaticFiles(directory=str(assets)), name="docs-static")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=title,
                                   swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{STATIC}/swagger-ui.css",
                                   swagger_favicon_url=f"{STATIC}/favicon.png",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   # no badge fetched from the public validator either
                                   swagger_ui_parameters={"validatorUrl": None})

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=title,
                              redoc_js_url=f"{STATIC}/redoc.standalone.js",
                              redoc_favicon_url=f"{STATIC}/favicon.png",
                              with_google_fonts=False)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _schema(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _schema(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(title=app.title, version=app.version, description=app.description,
                       routes=app.routes)
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "cx1_…",
        "description": "a member's API credential (`claimx credentials issue`)"}
    schemas = components.setdefault("schemas", {})
    for name, schema in ErrorBody.model_json_schema(
            ref_template="#/components/schemas/{model}").pop("$defs", {}).items():
        schemas[name] = schema
    schemas["ErrorBody"] = {k: v for k, v in ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}").items() if k != "$defs"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            _document(path, method.upper(), op)
    return spec


def _document(path: str, method: str, op: dict[str, Any]) -> None:
    """Add the bearer scheme and the errors this operation can answer, read from what it
    takes: a credential, path parameters, other parameters, a body."""
    params = op.get("parameters", [])
    authed = any(p["in"] == "header" and p["name"].lower() == "authorization" for p in params)
    if authed:  # the Authorize button sends it; a header field of its own would not
        op["security"] = [{SCHEME: []}]
        op["parameters"] = params = [p for p in params
                                     if not (p["in"] == "header"
                                             and p["name"].lower() == "authorization")]
        if not params:
            del op["parameters"]
    codes = {503} if path != "/healthz" else set()
    if authed:
        codes |= {401, 403}
    if method in ("POST", "PUT", "PATCH"):
        codes |= {400, 413, 422}
    elif params:
        codes.add(422)
    if any(p["in"] == "path" for p in params):
        codes.add(404)
    if method in ("POST", "DELETE") and path.startswith(_CONFLICTS):
        codes.add(409)
    responses = op.setdefault("responses", {})
    if "422" in responses and 422 not in codes:
        del responses["422"]  # FastAPI's default for routes whose only input was the header
    for code in sorted(codes):
        responses[str(code)] = {
            "description": ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/"
                                                                  "ErrorBody"}}}}
