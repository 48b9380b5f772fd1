"""`claimx serve` with no URLs keeps its state: real serve and anvil processes, kill -9."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ANVIL, CLAIMX, Served, serve_env, serve_gateway

pytestmark = [pytest.mark.slow, pytest.mark.anvil,
              pytest.mark.skipif(not ANVIL.exists(), reason="anvil missing: run `npm ci`")]


def publish(served: Served, n: int) -> str:
    """Sign and publish urgent record ``n`` as the dev hospital; returns its digest."""
    from gateway.core.envelope import sign_packet
    from gateway.core.keys import SigningKey
    from gateway.core.packet import Packet

    hospital = served.members["hospital.dev"]
    packet = Packet.from_obj({
        "schema": "claimx.packet/1", "kind": "hospital.diagnosis",
        "issuer": hospital["member_id"], "issued_at": "2026-11-20T08:00:00Z",
        "subject": "ab" * 32, "body": {"diagnoses": [{"system": "ICD-10", "code": f"C34.{n}"}]},
        "salt": "c2FsdHNhbHRzYWx0c2FsdA", "urgent": True})
    envelope = sign_packet(packet, SigningKey.load(Path(hospital["key_file"])))
    r = httpx.post(f"{served.url}/v1/records", json=envelope.to_json(),
                   headers=served.auth("hospital.dev"))
    assert r.status_code == 201, r.text
    return str(r.json()["digest"])


def receipt(served: Served, digest: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{served.url}/v1/records/{digest}/receipt",
                      headers=served.auth("hospital.dev"))
        if r.status_code == 200:
            return r.json()  # type: ignore[no-any-return]
        assert r.json()["error"]["code"] in {"not_yet_logged", "not_yet_anchored"}, r.text
        time.sleep(0.1)
    pytest.fail(f"record not anchored within {timeout} s:\n{served.log_text()}")


def kill_all(served: Served, home: Path) -> None:
    """kill -9 both: anvil first, so it cannot dump its state on the way out."""
    os.kill(int((home / "chain" / "anvil.pid").read_text()), signal.SIGKILL)
    served.proc.kill()
    served.proc.wait(10)


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split()[2] == "Z":
            return  # a zombie: dead, waiting for init to reap it
        time.sleep(0.1)
    pytest.fail(f"anvil {pid} outlived its serve")


def chain_head(served: Served, index: int) -> tuple[int, str]:
    """Head ``index`` as the chain (not the gateway) holds it."""
    from gateway.chain.client import Chain, Deployment

    url = re.search(r"local anvil (http://\S+)", served.log_text())
    assert url, served.log_text()
    home = Path(served.log.parent) / "home"
    d = Deployment.from_json((home / "deployment.json").read_text())
    head = Chain.connect(url.group(1)).evidence_log(d.log).head_at(index)
    return head.size, head.root.hex()


def test_restart_after_kill_keeps_records_and_anchors_on_the_old_head(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve_gateway(tmp_path) as served:
        first = publish(served, 1)
        old = receipt(served, first)["anchored_in"]
        tokens = {slug: m["token"] for slug, m in served.members.items()}
        anvil = int((home / "chain" / "anvil.pid").read_text())
        second = subprocess.run([*CLAIMX, "serve", "--port", "1"], env=serve_env(tmp_path),
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "error: home_in_use" in second.stderr  # one chain
        assert int((home / "chain" / "anvil.pid").read_text()) == anvil
        time.sleep(1.5)  # let anvil's once-a-second dump include the anchor
        served.proc.kill()  # kill -9 serve: anvil must follow
        served.proc.wait(10)
        wait_gone(anvil)
    with serve_gateway(tmp_path) as served:
        assert {slug: m["token"] for slug, m in served.members.items()} == tokens
        again = receipt(served, first, timeout=1)
        assert again["anchored_in"] == old
        second = publish(served, 2)
        new = receipt(served, second)["anchored_in"]
        assert new["head_index"] > old["head_index"] and new["size"] > old["size"]
        assert chain_head(served, old["head_index"]) == (old["size"], old["root"])
    assert "registered operator key" not in served.log_text()  # one key, made at first start


def test_blocks_lost_to_kill_are_reanchored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = home / "chain" / "state.json"
    with serve_gateway(tmp_path) as served:
        first = publish(served, 1)
        receipt(served, first)
        time.sleep(1.5)
        kept = tmp_path / "state.kept.json"
        shutil.copy(state, kept)  # the chain as dumped before the next anchor
        second = publish(served, 2)
        lost = receipt(served, second)["anchored_in"]
        kill_all(served, home)
    shutil.copy(kept, state)  # the dump that would have followed never happened
    with serve_gateway(tmp_path) as served:
        assert re.search(r"the chain does not hold \d+ of this database's anchors",
                         served.log_text())
        assert re.search(r"anchored \d+ lost head\(s\) again", served.log_text())
        redone = receipt(served, second, timeout=1)["anchored_in"]  # before serving
        assert chain_head(served, redone["head_index"]) == (redone["size"], redone["root"])
        # the same head again: index, size and root as the receipt issued before the loss (the
        # transaction is the chain's; anvil, back at the same nonce, often mines the same hash)
        assert {k: redone[k] for k in ("head_index", "size", "root")} == \
            {k: lost[k] for k in ("head_index", "size", "root")}
        assert receipt(served, first, timeout=1)["anchored_in"]["head_index"] < lost["head_index"]


def test_database_and_chain_that_do_not_belong_together_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve_gateway(tmp_path) as served:
        receipt(served, publish(served, 1))
        anvil = int((home / "chain" / "anvil.pid").read_text())
    wait_gone(anvil)  # a slow exit would dump its state again after the unlink
    (home / "chain" / "state.json").unlink()  # the chain is gone; database and file remain
    proc = subprocess.run([*CLAIMX, "serve", "--port", "1"], env=serve_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and "contracts_missing" in errors[0], proc.stderr
    assert "remove the state folder" in errors[0]
    json.loads((home / "deployment.json").read_text())  # nothing was overwritten


def test_serve_on_a_node_with_dev_members_deploys_once(anvil_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ["--rpc-url", anvil_url]
    with serve_gateway(tmp_path, args) as served:
        deployment = json.loads((home / "deployment.json").read_text())
        first = publish(served, 1)
        old = receipt(served, first)["anchored_in"]
        tokens = {slug: m["token"] for slug, m in served.members.items()}
    with serve_gateway(tmp_path, args) as served:  # a restart: same contracts, same members
        assert json.loads((home / "deployment.json").read_text()) == deployment
        assert {slug: m["token"] for slug, m in served.members.items()} == tokens
        assert receipt(served, first, timeout=1)["anchored_in"] == old
        assert "registered operator key" not in served.log_text()
    (home / "deployment.json").unlink()  # the database remembers anchors of that deployment
    proc = subprocess.run([*CLAIMX, "serve", "--port", "1", *args, "--dev-members", "dev"],
                          env=serve_env(tmp_path), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "error: no_deployment" in proc.stderr, proc.stderr
    assert not (home / "deployment.json").exists()


def test_a_dump_cut_short_falls_back_to_the_previous_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serve_gateway(tmp_path):  # the first start: members admitted, state saved on exit
        pass
    with serve_gateway(tmp_path) as served:  # this start keeps a copy of that state
        digest = publish(served, 1)
        receipt(served, digest)
        kill_all(served, home)
    state = home / "chain" / "state.json"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # a dump cut short
    with serve_gateway(tmp_path) as served:
        assert "damaged; using the previous start's copy" in served.log_text()
        anchored = receipt(served, digest)["anchored_in"]
        assert chain_head(served, anchored["head_index"]) == (anchored["size"],
                                                              anchored["root"])
