"""The pages' committed bundle is what its sources build to, it is in the package, and the
gateway serves it with a CSP that allows exactly its own code."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.pages import WEB_DIST
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.services.wiring import build_services
from gateway.store.db import Database
from tests.support import ROOT


@pytest.fixture
def client(embedded_chain: Chain, tmp_path: Path) -> Iterator[TestClient]:
    sv = build_services(Settings(home=tmp_path, anchor_interval_seconds=3600),
                        chain=embedded_chain, deployment=embedded_chain.deploy(),
                        db=Database(f"sqlite:///{tmp_path / 'pages.db'}"))
    with TestClient(create_app(sv, run_worker=False)) as c:
        yield c


def _sums() -> dict[str, str]:
    lines = (WEB_DIST / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ") for line in lines)}


@pytest.mark.slow  # a vite build, several seconds
def test_committed_bundle_is_what_the_sources_build(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed to rebuild the pages (scripts/setup.sh installs the toolchain)"
    done = subprocess.run([node, str(ROOT / "gateway/web/build.mjs"), str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for built in sorted(tmp_path.iterdir()):
        committed = WEB_DIST / built.name
        assert committed.read_bytes() == built.read_bytes(), (
            f"{committed} differs from a fresh build: run `npm run build:web` and commit it")


def test_page_shows_the_hash_of_its_code_and_the_readme_publishes_it() -> None:
    sums = _sums()
    html = (WEB_DIST / "verify.html").read_text()
    code = re.search(r'<script type="module"[^>]*>(.*?)</script>', html, re.S)
    assert code is not None
    assert hashlib.sha256(code.group(1).encode()).hexdigest() == sums["verify.html#code"]
    assert f'<code id="bundle-sha256">{sums["verify.html#code"]}</code>' in html
    assert hashlib.sha256(html.encode()).hexdigest() == sums["verify.html"]
    readme = (ROOT / "README.md").read_text()
    assert sums["verify.html"] in readme and sums["verify.html#code"] in readme


def test_gateway_serves_the_page_with_a_csp_for_its_own_code(client: TestClient) -> None:
    r = client.get("/verify")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    code = re.search(r'<script type="module"[^>]*>(.*?)</script>', r.text, re.S)
    assert code is not None
    digest = base64.b64encode(hashlib.sha256(code.group(1).encode()).digest()).decode()
    csp = r.headers["content-security-policy"]
    assert f"script-src 'sha256-{digest}';" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
