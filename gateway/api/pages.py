"""The pages people look at: the auditor's verifier, the claimant's progress board, the
operator's status view. Each is one self-contained HTML file shipped in the package
(gateway/web/dist, built by `npm run build:web`), so serving them needs no Node.

Every page is sent with a Content-Security-Policy that allows exactly its own inline script
(by hash) and no other script, sends no Referer, and may not be framed.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gateway.core.errors import NotFoundError

router = APIRouter(tags=["pages"])

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
_SCRIPT = re.compile(r"<script(?: [^>]*)?>(.*?)</script>", re.S)

CONNECT = {"verify": "*", "progress": "'self'", "status": "'self'"}
"""Where each page's code may connect: the verifier to any JSON-RPC node the auditor names
(and never needs the gateway), the others only to this gateway."""


@cache
def page(name: str) -> tuple[str, dict[str, str]]:
    """The page's HTML and its headers (CSP with the hashes of its inline scripts)."""
    try:
        html = (WEB_DIST / f"{name}.html").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(f"page {name!r} is not in this build", code="no_such_page") from exc
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _SCRIPT.findall(html))
    csp = (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
           f"connect-src {CONNECT[name]}; img-src data:; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    return html, {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer",
                  "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


def _html(name: str) -> HTMLResponse:
    html, headers = page(name)
    return HTMLResponse(html, headers=headers)


@router.get("/verify", response_class=HTMLResponse, include_in_schema=False)
def verify_page() -> HTMLResponse:
    """The auditor's in-browser verifier; it calls the chain node only, never the gateway."""
    return _html("verify")


@router.get("/progress", response_class=HTMLResponse, include_in_schema=False)
def progress_page() -> HTMLResponse:
    """The claimant's progress board; the share token stays in the URL fragment."""
    return _html("progress")


@router.get("/status", response_class=HTMLResponse, include_in_schema=False)
def status_page() -> HTMLResponse:
    """The operator's status view; its data (/v1/status) needs an operator credential."""
    return _html("status")
