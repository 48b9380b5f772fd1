"""``claimx verify``'s three outcomes against anvil with a real receipt: 0 VALID, 1 INVALID
(the chain contradicts the receipt), 2 UNCHECKED (a set-up problem), never a hang."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.chain.client import Chain
from tests.cli.cli_support import Published, closed_port_url
from tests.support import CLAIMX

pytestmark = pytest.mark.anvil


def verify(p: Published, receipt: dict[str, Any] | str | None, tmp_path: Path, *args: str,
           rpc_url: str | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "receipt.json"
    if receipt is not None:
        path.write_text(receipt if isinstance(receipt, str) else json.dumps(receipt))
    return subprocess.run([*CLAIMX, "verify", str(path), "--rpc-url", rpc_url or p.rpc_url,
                           *args], capture_output=True, text=True, timeout=60)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_valid_receipt_exits_0_with_verdict(published: Published, tmp_path: Path) -> None:
    proc = verify(published, published.receipt, tmp_path, "--log", published.deployment.log,
                  "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["valid"] is True and report["verdict"] == "VALID"


def test_log_defaults_to_the_deployment_file(published: Published, tmp_path: Path) -> None:
    proc = verify(published, published.receipt, tmp_path, "--deployment",
                  str(published.deployment_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("VALID")


def test_tampered_receipt_exits_1(published: Published, tmp_path: Path) -> None:
    bad = {**published.receipt, "leaf_index": published.receipt["leaf_index"] + 1}
    proc = verify(published, bad, tmp_path, "--log", published.deployment.log)
    assert proc.returncode == 1
    assert "[FAIL] inclusion proof" in proc.stdout and proc.stdout.rstrip().endswith("INVALID")
    assert one_line(proc).startswith("INVALID:")
    as_json = verify(published, bad, tmp_path, "--log", published.deployment.log, "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["verdict"] == "INVALID"


def test_registry_address_as_log_is_unchecked_not_invalid(published: Published,
                                                          tmp_path: Path) -> None:
    proc = verify(published, published.receipt, tmp_path, "--log", published.deployment.registry)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "[FAIL]" not in proc.stdout and "INVALID" not in proc.stdout
    line = one_line(proc)
    assert line.startswith("UNCHECKED:") and "MemberRegistry" in line and "--log" in line
    as_json = verify(published, published.receipt, tmp_path, "--log",
                     published.deployment.registry, "--json")
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and doc["verdict"] == "UNCHECKED" and doc["valid"] is False
    assert doc["error"]["code"] == "not_an_evidence_log"


def test_address_without_code_is_unchecked(published: Published, tmp_path: Path) -> None:
    proc = verify(published, published.receipt, tmp_path, "--log", "0x" + "11" * 20)
    assert proc.returncode == 2
    assert "no contract at" in one_line(proc)
    proc = verify(published, published.receipt, tmp_path, "--log", "0x1234")
    assert proc.returncode == 2 and "not an Ethereum address" in one_line(proc)


def test_another_evidence_log_is_unchecked(published: Published, tmp_path: Path) -> None:
    """A real EvidenceLog, but not the one the receipt names: a set-up mistake, not tampering."""
    other = Chain.connect(published.rpc_url).deploy()
    proc = verify(published, published.receipt, tmp_path, "--log", other.log)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the receipt names evidence log" in one_line(proc)


def test_unreachable_node_is_unchecked(published: Published, tmp_path: Path) -> None:
    proc = verify(published, published.receipt, tmp_path, "--log", published.deployment.log,
                  rpc_url=closed_port_url())
    assert proc.returncode == 2
    line = one_line(proc)
    assert "cannot reach the chain" in line and "--rpc-url" in line


def test_silent_node_gives_exit_2_within_10_seconds(published: Published, tmp_path: Path,
                                                    silent_node: str) -> None:
    """No hang on web3's 30 s timeout and its retries. The bound is loose on purpose: the
    interpreter's start-up alone takes seconds on a loaded machine (it failed at 10.06 s with
    the suite running on both cores); a hang would take well over 30 s."""
    started = time.monotonic()
    proc = verify(published, published.receipt, tmp_path, "--log", published.deployment.log,
                  rpc_url=silent_node)
    assert proc.returncode == 2 and time.monotonic() - started < 25
    assert "cannot reach the chain" in one_line(proc)


@pytest.mark.parametrize(("content", "cause"), [
    (None, "cannot read receipt"),
    ("{not json", "is not a claimx receipt"),
    ('{"digest": "00"}', "is not a claimx receipt"),
])
def test_unreadable_or_malformed_receipt_is_unchecked(published: Published, tmp_path: Path,
                                                      content: str | None, cause: str) -> None:
    proc = verify(published, content, tmp_path, "--log", published.deployment.log)
    assert proc.returncode == 2
    assert cause in one_line(proc)


def test_no_log_and_no_deployment_file_is_unchecked(published: Published,
                                                    tmp_path: Path) -> None:
    proc = verify(published, published.receipt, tmp_path, "--deployment",
                  str(tmp_path / "absent.json"))
    assert proc.returncode == 2 and "--log" in one_line(proc)


def test_a_head_the_chain_does_not_have_is_invalid(published: Published, tmp_path: Path) -> None:
    """The contract's own answer (EvidenceLogUnknownSize) is a verdict, not a set-up problem."""
    bad = json.loads(json.dumps(published.receipt))
    bad["tree_head"]["size"] = 999
    proc = verify(published, bad, tmp_path, "--log", published.deployment.log)
    assert proc.returncode == 1, proc.stderr
    assert "[FAIL] tree head on chain: the chain holds no head of size 999" in proc.stdout


def test_a_head_is_found_by_size_and_root_not_by_the_index_named(published: Published,
                                                                 tmp_path: Path) -> None:
    """A chain that lost blocks holds the same head again (same size and root): the index
    and transaction a receipt names are pointers the verifier checks against the chain."""
    moved = json.loads(json.dumps(published.receipt))
    moved["tree_head"]["head_index"] = 999
    proc = verify(published, moved, tmp_path, "--log", published.deployment.log)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(the receipt says #999)" in proc.stdout
    wrong_root = json.loads(json.dumps(published.receipt))
    wrong_root["tree_head"]["root"] = "ab" * 32
    proc = verify(published, wrong_root, tmp_path, "--log", published.deployment.log)
    assert proc.returncode == 1 and "the receipt claims abab" in proc.stdout, proc.stdout
