"""``claimx verify-promise`` against anvil with promises from the HTTP API: 0 KEPT, 1 BROKEN or
INVALID, 2 UNCHECKED, 3 OPEN; and the API's side (the publish response's ``promise``, the
``GET /v1/records/{digest}/promise`` bundle)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.core.promise import Promise, sign
from gateway.services.auth import issue_credential
from gateway.services.wiring import build_services
from gateway.store.db import Database
from tests.cli.cli_support import closed_port_url
from tests.support import CLAIMX, admit

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def promises(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A record published over HTTP: its publish-time promise, the bundle while open and
    the bundle once anchored."""
    home = tmp_path_factory.mktemp("promise")
    chain = Chain.connect(anvil_url)
    dep = chain.deploy()
    hospital = admit(chain, dep, "hospital.promise.cli")
    sv = build_services(Settings(home=home, anchor_interval_seconds=3600), chain=chain,
                        deployment=dep, db=Database(f"sqlite:///{home / 'claimx.db'}"))
    with sv.db.session() as s:
        token = issue_credential(s, hospital.id, "test")
    packet = new_packet(kind="hospital.invoice", issuer=hospital.issuer, subject="cd" * 32,
                        body={"total": "88.00"})
    with TestClient(create_app(sv, run_worker=False),
                    headers={"Authorization": f"Bearer {token}"}) as client:
        published = client.post("/v1/records", json=sign_packet(packet, hospital.key).to_json())
        assert published.status_code == 201, published.text
        digest = published.json()["digest"]
        # what a gateway before promise batches gave for the same record: a promise/1
        given = Promise.model_validate(published.json()["promise"])
        v1 = sign(Promise, sv.promises.key, sv.promises.member_id, chain=given.chain,
                  digest=given.digest, issuer=given.issuer, key_id=given.key_id,
                  urgent=given.urgent, accepted_at=given.accepted_at,
                  merge_delay=given.merge_delay)
        open_bundle = client.get(f"/v1/records/{digest}/promise").json()
        sv.worker.cycle()
        kept = client.get(f"/v1/records/{digest}/promise").json()
        missing = client.get(f"/v1/records/{'00' * 32}/promise")
    return {"published": published.json(), "open": open_bundle, "kept": kept,
            "missing": missing, "rpc_url": anvil_url, "log": dep.log,
            "v1": v1.model_dump(mode="json")}


def run(p: dict[str, Any], doc: dict[str, Any] | str, tmp_path: Path, *args: str,
        rpc_url: str | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "promise.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return subprocess.run([*CLAIMX, "verify-promise", str(path), "--rpc-url",
                           rpc_url or p["rpc_url"], "--log", p["log"], *args],
                          capture_output=True, text=True, timeout=60)


def test_api_returns_the_promise_and_its_bundle(promises: dict[str, Any]) -> None:
    promise = promises["published"]["promise"]
    assert promise["digest"] == promises["published"]["digest"]
    assert promise["merge_delay"] == 300 and promise["signature"]
    assert promise["version"] == "claimx.promise/2"  # one signature for the call's records
    assert promise["batch"]["size"] == 1 and promise["batch"]["index"] == 0
    assert promises["open"]["state"] == "open" and promises["open"]["promise"] == promise
    assert promises["kept"]["state"] == "kept" and promises["kept"]["inclusion"]
    assert promises["missing"].status_code == 404
    assert promises["missing"].json()["error"]["code"] == "promise_not_found"


def test_kept_promise_exits_0(promises: dict[str, Any], tmp_path: Path) -> None:
    proc = run(promises, promises["kept"], tmp_path, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "KEPT"


def test_open_promise_exits_3_and_broken_once_past_its_deadline_exits_1(
        promises: dict[str, Any], tmp_path: Path) -> None:
    bare = promises["published"]["promise"]  # what the publisher kept from its 201
    proc = run(promises, bare, tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "OPEN" in proc.stdout
    late = str(bare["accepted_at"] + bare["merge_delay"] + 1)
    proc = run(promises, bare, tmp_path, "--at", late)
    assert proc.returncode == 1 and "BROKEN" in proc.stdout
    assert proc.stderr.startswith("BROKEN:")


def test_tampered_promise_exits_1_invalid(promises: dict[str, Any], tmp_path: Path) -> None:
    kept = promises["kept"]
    bad = {**kept, "promise": {**kept["promise"], "merge_delay": 10**7}}
    proc = run(promises, bad, tmp_path)
    assert proc.returncode == 1
    assert "[FAIL] exchange signature" in proc.stdout and "INVALID" in proc.stdout


@pytest.mark.parametrize("field", ["digest", "urgent", "merge_delay", "index"])
def test_a_tampered_leaf_field_or_index_exits_1_invalid(promises: dict[str, Any],
                                                        tmp_path: Path, field: str) -> None:
    kept = promises["kept"]
    p = kept["promise"]
    changed = {"digest": {"digest": "ee" * 32}, "urgent": {"urgent": True},
               "merge_delay": {"merge_delay": 301},
               "index": {"batch": {**p["batch"], "index": 1, "size": 2}}}[field]
    proc = run(promises, {**kept, "promise": {**p, **changed}}, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[FAIL] exchange signature" in proc.stdout and "INVALID" in proc.stdout


def test_a_promise_1_document_still_verifies(promises: dict[str, Any], tmp_path: Path) -> None:
    """Promises issued before batches (one signature each) are still checked as before."""
    kept = promises["kept"]
    proc = run(promises, {**kept, "promise": promises["v1"]}, tmp_path, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "KEPT"
    proc = run(promises, promises["v1"], tmp_path)  # the bare promise/1: open
    assert proc.returncode == 3, proc.stdout + proc.stderr
    tampered = {**promises["v1"], "merge_delay": 10**6}
    assert run(promises, tampered, tmp_path).returncode == 1


def test_unreachable_node_or_unreadable_file_exits_2(promises: dict[str, Any],
                                                    tmp_path: Path) -> None:
    proc = run(promises, promises["kept"], tmp_path, rpc_url=closed_port_url())
    assert proc.returncode == 2 and proc.stderr.startswith("UNCHECKED:")
    proc = run(promises, "{not json", tmp_path)
    assert proc.returncode == 2 and "not a claimx promise" in proc.stderr
