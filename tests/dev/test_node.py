"""gateway.dev.node.start: the one way anvil is started (tests, benchmarks, drills)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from gateway.core.errors import ClaimxError
from gateway.dev import node
from tests.support import ANVIL

pytestmark = [pytest.mark.anvil,
              pytest.mark.skipif(not ANVIL.exists(), reason="anvil missing: run `npm ci`")]


def rpc(url: str, method: str, timeout: float = 2.0) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        return json.loads(answer.read())["result"]


def test_start_answers_pause_freezes_resume_thaws_stop_ends(tmp_path: Path) -> None:
    with node.start(binary=ANVIL, log=tmp_path / "anvil.log") as anvil:
        assert rpc(anvil.url, "eth_chainId") == "0x7a69"
        anvil.pause()
        with pytest.raises(OSError):  # accepted, never answered
            rpc(anvil.url, "eth_chainId", timeout=0.5)
        anvil.resume()
        assert rpc(anvil.url, "eth_chainId") == "0x7a69"
        anvil.pause()  # stop() must still end a frozen node
    assert anvil.proc.poll() is not None


def test_a_state_file_keeps_the_chain_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with node.start(state, binary=ANVIL) as anvil:
        rpc(anvil.url, "evm_mine")
        rpc(anvil.url, "evm_mine")
        height = rpc(anvil.url, "eth_blockNumber")
    assert state.exists()  # dumped on SIGTERM
    with node.start(state, binary=ANVIL) as again:
        assert rpc(again.url, "eth_blockNumber") == height


def test_a_node_that_cannot_start_is_one_located_error(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClaimxError) as exited:  # a "node" that exits at once
        node.start(binary=Path("/bin/false"), log=tmp_path / "node.log", timeout=10)
    assert exited.value.code == "node_failed" and "node.log" in str(exited.value)
    monkeypatch.setenv("CLAIMX_ANVIL", str(tmp_path / "no-such-anvil"))
    with pytest.raises(ClaimxError) as missing:
        node.start()
    assert missing.value.code == "no_anvil" and "npm ci" in str(missing.value)
