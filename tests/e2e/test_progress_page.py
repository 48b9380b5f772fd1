"""The claimant's progress board and the operator's status view in headless Chromium against
a real `claimx serve`: a record published while the board is open appears on it (waited for,
bounded), revoked and expired links are refused, axe-core finds no serious violations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.e2e.pages_support import (
    axe_violations,
    browser,  # noqa: F401 - fixture
    flow,
    shot,
)
from tests.support import Served, serve_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    home = tmp_path_factory.mktemp("progress")
    with serve_gateway(home) as served:
        yield served, home / "home" / "claimx.db"


def _claim(served: Served, kind: str = "accident") -> tuple[dict[str, Any], str, str]:
    """A claim asking the hospital for a discharge summary, and a share link for it."""
    members = served.members
    claimant = ed25519.Ed25519PrivateKey.generate()
    body = flow._claim(members, claimant) | {"kind": kind}
    with httpx.Client(base_url=served.url, timeout=30) as http:
        bound = http.post("/v1/records", headers=served.auth("hospital.dev"),
                          json=flow._binding(members, "hospital.dev", claimant))
        assert bound.status_code == 201, bound.text  # the hospital binds the claimant's key
        r = http.post("/v1/claims", json=body, headers=served.auth("insurer.dev"))
        assert r.status_code == 201, r.text
        claim = r.json()
        r = http.post(f"/v1/claims/{claim['id']}/requests", headers=served.auth("insurer.dev"),
                      json={"institution": members["hospital.dev"]["member_id"],
                            "kinds": ["hospital.discharge_summary"]})
        assert r.status_code == 201, r.text
        link = http.post(f"/v1/claims/{claim['id']}/share",
                         headers=served.auth("insurer.dev")).json()
    return claim, link["url"], link["id"]


def _publish(served: Served, kind: str = "hospital.discharge_summary") -> None:
    env = flow._signed(served.members, "hospital.dev", kind)
    r = httpx.post(f"{served.url}/v1/records", json=env, headers=served.auth("hospital.dev"))
    assert r.status_code == 201, r.text


def test_board_shows_a_record_published_while_it_is_open(
        browser: Any, gateway: tuple[Served, Path]) -> None:  # noqa: F811
    served, _db = gateway
    _claim_obj, url, _share = _claim(served)
    for width, height, name in [(1280, 900, "desktop"), (390, 844, "phone")]:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      locale="zh-CN", bypass_csp=True)  # axe-core is injected
        page = context.new_page()
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url))  # noqa: B023
        page.goto(url)
        page.locator("#timeline li[data-step=requested]").wait_for(timeout=30_000)
        assert page.evaluate("document.documentElement.lang") == "zh-Hans"
        assert "Dev Hospital" in page.inner_text("#timeline") and "出院小结" in page.inner_text(
            "#timeline")
        if name == "desktop":
            _publish(served)  # while the board is open
            page.locator("#timeline li[data-step=received]").wait_for(timeout=30_000)
            page.locator("#timeline li[data-step=ready]").wait_for(timeout=30_000)
            assert "已收到Dev Hospital的出院小结" in page.inner_text("#timeline")
            page.wait_for_function("() => document.querySelector('#live').textContent !== ''",
                                   timeout=10_000)
        assert all("#t=" not in u and "cxs_" not in u for u in asked), asked  # fragment stays
        assert axe_violations(page) == []
        shot(page, f"progress-{name}-zh.png")
        page.focus("#lang")
        page.keyboard.press("Enter")  # by keyboard
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "Evidence requested from Dev Hospital" in page.inner_text("#timeline")
        page.focus("#larger")
        page.keyboard.press("Space")
        page.click("#contrast")
        assert page.get_attribute("#contrast", "aria-pressed") == "true"
        assert axe_violations(page) == []
        shot(page, f"progress-{name}-en-large-contrast.png")
        context.close()


def test_revoked_and_expired_links_are_refused(browser: Any,  # noqa: F811
                                               gateway: tuple[Served, Path]) -> None:
    served, db = gateway
    claim, url, share = _claim(served)
    page = browser.new_page()
    page.goto(url)
    page.locator("#timeline li[data-step=opened]").wait_for(timeout=30_000)
    r = httpx.delete(f"{served.url}/v1/claims/{claim['id']}/share/{share}",
                     headers=served.auth("insurer.dev"))
    assert r.status_code == 200
    page.locator("#error[data-code=share_revoked]").wait_for(timeout=30_000)  # the open board
    assert page.is_hidden("#board")
    page.reload()
    page.locator("#error[data-code=share_revoked]").wait_for(timeout=30_000)
    _claim2, url2, share2 = _claim(served)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE share_links SET expires_at = '2020-01-01 00:00:00.000000' "
                     "WHERE id = ?", (share2,))
    token = url2.split("#t=")[1]
    refused = httpx.get(f"{served.url}/v1/progress", headers={"Authorization": f"Share {token}"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "share_expired"
    page.goto("about:blank")  # a new document: only the fragment differs from the last URL
    page.goto(url2)
    page.locator("#error[data-code=share_expired]").wait_for(timeout=30_000)
    page.goto("about:blank")
    page.goto(url2.split("#")[0])
    page.locator("#error[data-code=no_token]").wait_for(timeout=10_000)
    page.close()


def test_status_page_for_the_operator_only(browser: Any,  # noqa: F811
                                           gateway: tuple[Served, Path]) -> None:
    served, _db = gateway
    for width, height, name in [(1280, 900, "desktop"), (390, 844, "phone")]:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      bypass_csp=True)
        page = context.new_page()
        page.goto(f"{served.url}/status")
        page.fill("#credential", served.members["insurer.dev"]["token"])
        page.click("#load")
        page.locator("#error:not(:empty)").wait_for(timeout=10_000)
        assert page.get_attribute("#error", "data-code") == "role_forbidden"
        page.fill("#credential", served.members["operator.dev"]["token"])
        page.click("#load")
        page.locator("#ready:not(:empty)").wait_for(timeout=20_000)
        assert page.inner_text("#ready") == "READY"
        assert int(page.inner_text("dd[data-field='log size']")) >= 1
        assert page.inner_text("#error") == ""
        assert axe_violations(page) == []
        shot(page, f"status-{name}.png")
        context.close()
