"""Helpers for the pages' browser tests: a gateway on anvil with dev members, a claim with
records from the hospital (Ed25519) and the police (P-256), and headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests import flow_support
from tests.support import CLAIMX, ROOT, Served, serve_gateway

CHROMIUM = Path(os.environ.get("CLAIMX_CHROMIUM", "/usr/bin/chromium"))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = os.environ.get("CLAIMX_SCREENSHOT_DIR")
"""When set, the browser tests also save their screenshots there (docs/ in the README's)."""


flow = flow_support
"""The claim, binding and records scripts/api_flow.py makes, as JSON bodies."""


@dataclass
class Exchange:
    served: Served
    rpc_url: str
    log: str
    registry: str

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.served.url, timeout=30)

    def as_(self, slug: str) -> dict[str, str]:
        return self.served.auth(slug)


@contextmanager
def exchange_on_anvil(anvil_url: str, tmp_path: Path,
                      env: dict[str, str] | None = None) -> Iterator[Exchange]:
    """Fresh contracts on anvil and `claimx serve` with dev members against them."""
    dep = tmp_path / "deployment.json"
    done = subprocess.run([*CLAIMX, "deploy", "--rpc-url", anvil_url, "--out", str(dep)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    d = json.loads(dep.read_text())
    args = ["--rpc-url", anvil_url, "--deployment", str(dep)]
    with serve_gateway(tmp_path, args, env={"CLAIMX_ANCHOR_INTERVAL_SECONDS": "0.3",
                                            **(env or {})}) as served:
        yield Exchange(served, anvil_url, d["log"], d["registry"])


def open_claim(ex: Exchange, kind: str = "accident") -> dict[str, Any]:
    """The insurer opens a claim under a consent whose key the hospital bound first."""
    claimant = ed25519.Ed25519PrivateKey.generate()
    members = ex.served.members
    body = flow._claim(members, claimant)
    body["kind"] = kind
    body["reference"] = f"PAGES-{time.monotonic_ns()}"
    with ex.http() as http:
        bound = http.post("/v1/records", headers=ex.as_("hospital.dev"),
                          json=flow._binding(members, "hospital.dev", claimant))
        assert bound.status_code == 201, bound.text
        r = http.post("/v1/claims", headers=ex.as_("insurer.dev"), json=body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


def publish(ex: Exchange, who: str, kind: str) -> str:
    envelope = flow._signed(ex.served.members, who, kind)
    with ex.http() as http:
        r = http.post("/v1/records", headers=ex.as_(who), json=envelope)
        assert r.status_code in (200, 201), r.text
        return r.json()["digest"]  # type: ignore[no-any-return]


def receipt(ex: Exchange, who: str, digest: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    with ex.http() as http:
        while time.monotonic() < deadline:
            r = http.get(f"/v1/records/{digest}/receipt", headers=ex.as_(who))
            if r.status_code == 200:
                return r.json()  # type: ignore[no-any-return]
            assert r.json()["error"]["code"] in {"not_yet_logged", "not_yet_anchored"}, r.text
            time.sleep(0.2)
    pytest.fail("record was not anchored within 30 s")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package, driven by Playwright (never downloaded)."""
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: scripts/setup.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("async () => (await axe.run(document)).violations")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


def has_chromium() -> bool:
    return CHROMIUM.exists() or shutil.which("chromium") is not None
