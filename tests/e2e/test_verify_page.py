"""The auditor's verifier page in headless Chromium: receipts from a real gateway on anvil.

VALID for genuine receipts (Ed25519 and P-256 issuers), INVALID with the failing check named
for tampered ones, UNCHECKED when the chain cannot be read; the same from the page saved as a
file; no serious accessibility violations (axe-core)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.pages_support import (
    Exchange,
    axe_violations,
    browser,  # noqa: F401 - fixture
    exchange_on_anvil,
    open_claim,
    publish,
    receipt,
    shot,
)
from tests.support import free_port

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

CHECKS = ["receipt readable", "chain node and log", "envelope and digest", "tree head on chain",
          "inclusion proof", "anchoring transaction", "issuer signature", "not revoked"]


@pytest.fixture(scope="module")
def exchange(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    with exchange_on_anvil(anvil_url, tmp_path_factory.mktemp("verify")) as ex:
        yield ex


@pytest.fixture(scope="module")
def receipts(exchange: Exchange) -> dict[str, dict[str, Any]]:
    """A receipt of a hospital record (Ed25519) and of a police record (P-256)."""
    open_claim(exchange)
    out = {}
    for who, kind in [("hospital.dev", "hospital.discharge_summary"),
                      ("police.dev", "police.accident_determination")]:
        out[who] = receipt(exchange, who, publish(exchange, who, kind))
    return out


def check(page: Any, tmp_path: Path, doc: dict[str, Any] | str, rpc_url: str,
          log: str) -> tuple[str, dict[str, str]]:
    """Drop the receipt on the page, verify, wait (bounded) for the verdict."""
    path = tmp_path / "receipt.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    page.set_input_files("#receipt", str(path))
    page.fill("#rpc-url", rpc_url)
    page.fill("#log-address", log)
    page.click("#verify")
    page.locator("#verdict:not(:empty)").wait_for(timeout=60_000)
    rows = page.eval_on_selector_all("#checks li",
                                     "els => els.map(e => [e.dataset.check, e.dataset.ok])")
    return page.inner_text("#verdict"), dict(rows)


@pytest.fixture
def page(browser: Any, exchange: Exchange) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context()
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(f"{exchange.served.url}/verify")
    yield p
    context.close()
    assert not errors, errors


@pytest.mark.parametrize("who", ["hospital.dev", "police.dev"])
def test_genuine_receipt_is_valid(page: Any, exchange: Exchange, receipts: dict[str, Any],
                                  who: str, tmp_path: Path) -> None:
    verdict, rows = check(page, tmp_path, receipts[who], exchange.rpc_url, exchange.log)
    assert verdict == "VALID", rows
    assert list(rows) == CHECKS and set(rows.values()) == {"true"}
    algorithm = "ED25519" if who == "hospital.dev" else "ECDSA_P256"
    assert f"({algorithm}), valid for the issuer at anchoring time" in page.inner_text("#checks")


def _flip_signature(r: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(r["envelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    r["envelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def _swap_payload(r: dict[str, Any]) -> None:
    payload = json.loads(base64.b64decode(r["envelope"]["payload"]))
    payload["body"]["summary"] = "altered after signing"
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    r["envelope"]["payload"] = base64.b64encode(raw).decode()


TAMPERED = {
    "inclusion proof": lambda r: r.update(leaf_index=r["leaf_index"] + 1),
    "issuer signature": _flip_signature,
    "envelope and digest": _swap_payload,
    "tree head on chain": lambda r: r["tree_head"].update(root="00" * 32),
    # (a transaction hash is taken from the chain, never trusted: a head is its size and root)
    "anchoring transaction": lambda r: r["anchored_in"].update(size=999_999),
}


@pytest.mark.parametrize("failing", list(TAMPERED))
def test_tampered_receipt_is_invalid_and_names_the_check(
        page: Any, exchange: Exchange, receipts: dict[str, Any], failing: str,
        tmp_path: Path) -> None:
    doc = copy.deepcopy(receipts["police.dev"])
    TAMPERED[failing](doc)
    verdict, rows = check(page, tmp_path, doc, exchange.rpc_url, exchange.log)
    assert verdict == "INVALID", rows
    assert [name for name, ok in rows.items() if ok == "false"] == [failing]
    assert list(rows) == CHECKS


def test_unreadable_receipt_or_chain_is_unchecked(page: Any, exchange: Exchange,
                                                  receipts: dict[str, Any],
                                                  tmp_path: Path) -> None:
    good = receipts["hospital.dev"]
    cases = [
        (good, exchange.rpc_url, exchange.registry, "chain node and log"),  # not the log
        (good, exchange.rpc_url, "0x" + "12" * 20, "chain node and log"),  # no contract
        (good, f"http://127.0.0.1:{free_port()}", exchange.log, "chain node and log"),  # no node
        ("{not json", exchange.rpc_url, exchange.log, "receipt readable"),
        ({**good, "version": "claimx.receipt/9"}, exchange.rpc_url, exchange.log,
         "receipt readable"),
    ]
    for doc, rpc, log, row in cases:
        verdict, rows = check(page, tmp_path, doc, rpc, log)
        assert verdict == "UNCHECKED", (row, rows)
        assert rows[row] == "unchecked"
        assert "false" not in rows.values()


def test_saved_as_a_file_it_verifies_offline_from_the_gateway(
        browser: Any, exchange: Exchange, receipts: dict[str, Any],  # noqa: F811
        tmp_path: Path) -> None:
    saved = tmp_path / "verify.html"
    saved.write_bytes(httpx.get(f"{exchange.served.url}/verify").content)
    context = browser.new_context()
    p = context.new_page()
    asked: list[str] = []
    p.on("request", lambda r: asked.append(r.url))
    p.goto(saved.as_uri())
    assert p.evaluate("window.isSecureContext")
    verdict, rows = check(p, tmp_path, receipts["hospital.dev"], exchange.rpc_url, exchange.log)
    assert verdict == "VALID", rows
    assert not [u for u in asked if u.startswith(exchange.served.url)], asked
    assert p.inner_text("#running-sha256") == "matches"
    context.close()


def test_page_is_accessible_and_carries_its_hash(browser: Any, exchange: Exchange,  # noqa: F811
                                                 receipts: dict[str, Any],
                                                 tmp_path: Path) -> None:
    sums = (Path(__file__).resolve().parents[2] / "gateway/web/dist/SHA256SUMS").read_text()
    code_sum = next(line.split()[0] for line in sums.splitlines() if "#code" in line)
    for width, height, name in [(1280, 900, "desktop"), (390, 844, "phone")]:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      bypass_csp=True)  # to inject axe-core
        p = context.new_page()
        p.goto(f"{exchange.served.url}/verify")
        assert p.inner_text("#bundle-sha256") == code_sum
        assert axe_violations(p) == []
        check(p, tmp_path, receipts["police.dev"], exchange.rpc_url, exchange.log)
        assert axe_violations(p) == []
        shot(p, f"verify-{name}.png")
        context.close()
