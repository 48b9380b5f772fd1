"""The operator's, institution's and auditor's commands end to end: anvil, PostgreSQL, HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import CLAIMX, serve_gateway

pytestmark = pytest.mark.slow  # real processes end to end
HOSPITAL_OPERATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil's dev account 1
HOSPITAL_OPERATOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def run(*args: str, env: dict[str, str] | None = None,
        ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLAIMX, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.anvil
@pytest.mark.postgres
def test_deploy_admit_sign_serve_verify(anvil_url: str, pg_url: str, tmp_path: Path) -> None:
    dep = tmp_path / "deployment.json"
    run("deploy", "--rpc-url", anvil_url, "--out", str(dep))
    log_address = json.loads(dep.read_text())["log"]
    # the development council admits; the hospital's own operator account (anvil's second
    # dev account) then registers its key, the key proving possession of itself
    run("members", "admit", "hospital.e2e", "--role", "hospital", "--name", "E2E Hospital",
        "--rpc-url", anvil_url, "--deployment", str(dep), "--operator", HOSPITAL_OPERATOR)
    key = json.loads(run("keys", "new", "--out", str(tmp_path / "h.key"), "--alg", "p256").stdout)
    run("members", "add-key", "hospital.e2e", "--key-id", key["key_id"], "--public-key",
        key["public_key"], "--alg", "p256", "--rpc-url", anvil_url, "--deployment", str(dep),
        "--key", str(tmp_path / "h.key"), "--private-key-env", "HOSPITAL_OPERATOR_KEY",
        env={"HOSPITAL_OPERATOR_KEY": HOSPITAL_OPERATOR_KEY})
    listed = json.loads(run("members", "list", "--rpc-url", anvil_url,
                            "--deployment", str(dep)).stdout)
    assert listed[0]["keys"] == [key["key_id"]] and listed[0]["role"] == "hospital"

    from gateway.core.types import hex32, member_id
    packet = {"schema": "claimx.packet/1", "kind": "hospital.diagnosis",
              "issuer": hex32(member_id("hospital.e2e")), "issued_at": "2026-11-20T08:00:00Z",
              "subject": "ab" * 32,
              "body": {"diagnoses": [{"system": "ICD-10", "code": "C34.1"}]},
              "salt": "c2FsdHNhbHRzYWx0c2FsdA", "urgent": True}
    (tmp_path / "p.json").write_text(json.dumps(packet))
    run("sign", str(tmp_path / "p.json"), "--key", str(tmp_path / "h.key"), "--out",
        str(tmp_path / "env.json"))

    run("members", "admit", "auditor.e2e", "--role", "auditor", "--name", "E2E Auditor",
        "--rpc-url", anvil_url, "--deployment", str(dep))
    registry = ("--rpc-url", anvil_url, "--deployment", str(dep))  # members are checked
    token = run("credentials", "issue", "hospital.e2e", "--database-url", pg_url,
                "--label", "e2e", *registry).stdout.strip()
    auditor = {"CLAIMX_TOKEN": run("credentials", "issue", "auditor.e2e", "--database-url",
                                   pg_url, "--label", "e2e", *registry).stdout.strip()}
    auth = {"Authorization": f"Bearer {token}"}
    serve_args = ["--rpc-url", anvil_url, "--database-url", pg_url, "--deployment", str(dep)]
    with serve_gateway(tmp_path, serve_args, dev_members=False,
                       env={"CLAIMX_ANCHOR_INTERVAL_SECONDS": "0.2"}) as served:
        base = served.url
        anonymous = httpx.post(f"{base}/v1/records", content=b"{}")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "missing_credentials"
        r = httpx.post(f"{base}/v1/records", content=(tmp_path / "env.json").read_bytes(),
                       headers={"content-type": "application/json", **auth})
        assert r.status_code == 201, r.text
        digest = r.json()["digest"]
        receipt = _wait_receipt(base, digest, auth)
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "claimx gateway"
        # the auditor proves, from the chain, that the hospital's own read was allowed
        _wait_reads_anchored(base, digest, {"Authorization": f"Bearer {auditor['CLAIMX_TOKEN']}"})
        audit = run("audit", digest, "--gateway", base, "--rpc-url", anvil_url, "--log",
                    log_address, env=auditor)
        assert "[PASS] allowed by: the record's issuer" in audit.stdout
        assert audit.stdout.rstrip().endswith("EVERY READ CONSENTED")
        refused = run("audit", digest, "--gateway", base, "--rpc-url", anvil_url, "--log",
                      log_address, env={"CLAIMX_TOKEN": "cx1_not-a-token"}, ok=False)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr  # unchecked
        assert "invalid_credentials" in refused.stderr or "credentials" in refused.stderr
    path = tmp_path / "r.json"
    path.write_text(json.dumps(receipt))
    good = run("verify", str(path), "--rpc-url", anvil_url, "--log", log_address, "--json")
    assert json.loads(good.stdout)["valid"] is True
    receipt["leaf_index"] = receipt["leaf_index"] + 1
    path.write_text(json.dumps(receipt))
    bad = run("verify", str(path), "--rpc-url", anvil_url, "--log", log_address, ok=False)
    assert bad.returncode == 1 and "[FAIL] inclusion proof" in bad.stdout
    missing = run("verify", str(tmp_path / "nope.json"), "--rpc-url", anvil_url, "--log",
                  log_address, ok=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr  # unchecked


def _wait_receipt(base: str, digest: str, auth: dict[str, str]) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = httpx.get(f"{base}/v1/records/{digest}/receipt", headers=auth)
        if r.status_code == 200:
            return r.json()  # type: ignore[no-any-return]
        assert r.json()["error"]["code"] in {"not_yet_logged", "not_yet_anchored"}
        time.sleep(0.1)
    pytest.fail("urgent record was not anchored within 30 s")


def _wait_reads_anchored(base: str, digest: str, auth: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reads = httpx.get(f"{base}/v1/records/{digest}/access-log", headers=auth).json()["reads"]
        states = [httpx.get(f"{base}/v1/records/{r['log_entry']}", headers=auth).json()["status"]
                  for r in reads]
        if states and all(s == "anchored" for s in states):
            return
        time.sleep(0.2)
    pytest.fail("the read's log entry was not anchored within 30 s")
