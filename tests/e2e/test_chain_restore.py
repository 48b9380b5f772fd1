"""Drill: an external anvil is killed and restarted from an older ``--state`` file while
`claimx serve --rpc-url` runs. The heads it lost are anchored again from the database's log,
records are anchored again, and every receipt the gateway gave out, before, during and after,
verifies against the chain: none cites a head the chain does not hold."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.chain.client import Chain, Deployment
from gateway.core.receipt import Receipt
from gateway.store.db import Database
from gateway.store.tables import Anchor
from gateway.verify.receipt import verify_receipt
from tests.support import Served, free_port, own_anvil, serve_gateway

pytestmark = [pytest.mark.slow, pytest.mark.anvil]


def publish(gw: Served, tag: str, n: int) -> list[str]:
    from gateway.core.envelope import sign_packet
    from gateway.core.keys import SigningKey
    from gateway.core.packet import new_packet

    hospital = gw.members["hospital.dev"]
    key = SigningKey.load(Path(hospital["key_file"]))
    envs = [sign_packet(new_packet(kind="hospital.lab_report", issuer=hospital["member_id"],
                                   subject="ab" * 32, body={"tag": tag, "n": i}, urgent=True),
                        key).to_json() for i in range(n)]
    r = httpx.post(f"{gw.url}/v1/records/batch", json={"envelopes": envs},
                   headers=gw.auth("hospital.dev"), timeout=10)
    assert r.status_code in (200, 201), r.text
    return [a["digest"] for a in r.json()]


def receipt(gw: Served, digest: str) -> httpx.Response:
    r = httpx.get(f"{gw.url}/v1/records/{digest}/receipt", headers=gw.auth("hospital.dev"),
                  timeout=10)
    assert r.status_code < 500 or r.status_code == 503, r.text
    return r


def anchored(gw: Served, digests: list[str]) -> bool:
    return all(receipt(gw, d).status_code == 200 for d in digests)


def wait_for(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.2)


def test_node_restored_from_an_older_state_is_anchored_again(tmp_path: Path) -> None:
    port, state = free_port(), tmp_path / "anvil-state.json"
    old = tmp_path / "anvil-state.old.json"
    with own_anvil(state, port=port) as node:
        anvil, url = node.proc, node.url
        with serve_gateway(tmp_path, ["--rpc-url", url]) as gw:  # deploys, admits dev members
            first = publish(gw, "kept", 3)
            wait_for(lambda: anchored(gw, first), 20, "the first records anchored")
            time.sleep(2.5)  # anvil dumps once a second: the dump now holds that head
            shutil.copy(state, old)
            second = publish(gw, "lost", 4)
            wait_for(lambda: anchored(gw, second), 20, "the second records anchored")
            given = [receipt(gw, d).json() for d in first + second]
            anvil.kill()
            anvil.wait(10)
            with own_anvil(old, port=port):
                given += _during_and_after(gw, url, second)
                _assert_chain_holds(gw, url, first + second, given)
            assert "Traceback" not in gw.log_text()


def _during_and_after(gw: Served, url: str, lost: list[str]) -> list[dict[str, Any]]:
    """Receipts asked for while the gateway finds out; returns every one it gave."""
    given: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while True:
        rs = [receipt(gw, d) for d in lost]
        given += [r.json() for r in rs if r.status_code == 200]
        size = httpx.get(f"{gw.url}/v1/log/head", headers=gw.auth("hospital.dev"),
                         timeout=10).json()["log_size"]
        if _chain_head_size(gw, url) == size and all(r.status_code == 200 for r in rs):
            break
        assert time.monotonic() < deadline, f"lost heads not anchored again:\n{gw.log_text()}"
        time.sleep(0.2)
    # the worker logs the re-anchoring once it has recorded it, which may be just after the
    # chain already shows the head
    wait_for(lambda: "lost head(s) again" in gw.log_text(), 10, "the re-anchoring logged")
    return given


def _deployment(gw: Served) -> Deployment:
    return Deployment.from_json((gw.log.parent / "home" / "deployment.json").read_text())


def _chain_head_size(gw: Served, url: str) -> int:
    head = Chain.connect(url).evidence_log(_deployment(gw).log).latest_head()
    return 0 if head is None else head.size


def _assert_chain_holds(gw: Served, url: str, digests: list[str],
                        given: list[dict[str, Any]]) -> None:
    chain, d = Chain.connect(url), _deployment(gw)
    log = chain.evidence_log(d.log)

    def settled() -> bool:  # (each receipt read is an access-log entry: the log grows)
        head = httpx.get(f"{gw.url}/v1/log/head", headers=gw.auth("hospital.dev"),
                         timeout=10).json()
        return bool(head["anchored"]["size"] == _chain_head_size(gw, url) == head["log_size"])

    time.sleep(2.5)  # the last reads' access-log entries are sequenced and anchored
    wait_for(settled, 20, "gateway, chain and log agree")
    heads = [(h.index, h.size, h.root.hex()) for h in
             (log.head_at(i) for i in range(log.head_count()))]
    for r in given:  # before the loss, while the gateway found out, after: all verify
        report = verify_receipt(Receipt.model_validate(r), chain, d.log)
        assert report.valid, report.to_dict()
        assert (r["tree_head"]["head_index"], r["tree_head"]["size"],
                r["tree_head"]["root"]) in heads
    # (anvil restored to the same nonce often mines the very same transaction hash again;
    # tests/services/test_reconcile.py covers receipts naming a transaction the chain lost)
    db = Database(f"sqlite:///{gw.log.parent / 'home' / 'claimx.db'}", migrate=False)
    with db.session() as s:
        ours = [(a.head_index, a.size, a.root.hex(), a.confirmed)
                for a in s.scalars(select(Anchor).order_by(Anchor.size))]
    assert ours == [(*h, True) for h in heads]  # the chain's heads are the database's anchors
    for digest in digests:
        meta = httpx.get(f"{gw.url}/v1/records/{digest}", headers=gw.auth("hospital.dev"),
                         timeout=10).json()
        assert meta["status"] == "anchored", meta
