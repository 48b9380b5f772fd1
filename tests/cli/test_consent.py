"""`claimx consent new|sign|bind|withdraw` against a real `claimx serve --dev-members`: the
hospital's desk binds the claimant's key, the insurer opens a claim with the consent the
claimant signed, the claimant withdraws with the CLI alone, and the insurer's reads stop.
Tried as an attacker too: the insurer publishing a binding, and a withdrawal by an unbound key."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from tests.support import CLAIMX, Served

pytestmark = pytest.mark.slow  # a real gateway process and a CLI process per step

SUBJECT = "5e" * 32


def claimx(*args: str, env: dict[str, str] | None = None,
           ok: bool = True) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
    proc = subprocess.run([*CLAIMX, *args], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})})
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def scope(members: dict[str, Any]) -> dict[str, Any]:
    return {"subject": SUBJECT, "insurer": members["insurer.dev"]["member_id"],
            "institutions": [], "kinds": [], "date_from": "2026-01-01",
            "date_to": "2026-12-31",
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}


def test_bind_consent_withdraw_with_the_cli_stops_reads(dev_gateway: Served,
                                                        tmp_path: Path) -> None:
    gw, members = dev_gateway.url, dev_gateway.members
    key = tmp_path / "claimant.key"
    public = json.loads(claimx("consent", "new", "--out", str(key)).stdout)["public_key"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert claimx("consent", "new", "--out", str(key), ok=False).returncode != 0  # no overwrite

    # the insurer cannot bind the key itself: it may not publish (and holds no attester key)
    hospital_key = members["hospital.dev"]["key_file"]
    self_bound = claimx("consent", "bind", SUBJECT, public, "--issuer", "hospital.dev",
                        "--key", hospital_key, "--gateway", gw,
                        env={"CLAIMX_TOKEN": members["insurer.dev"]["token"]}, ok=False)
    assert self_bound.returncode == 1 and "HTTP 403" in self_bound.stderr
    # an unbound key cannot withdraw (nor consent)
    unbound = claimx("consent", "withdraw", "--subject", SUBJECT, "--insurer", "insurer.dev",
                     "--key", str(key), "--gateway", gw, ok=False)
    assert unbound.returncode == 1 and "claimant_key_unbound" in unbound.stderr

    bound = claimx("consent", "bind", SUBJECT, public, "--issuer", "hospital.dev", "--key",
                   hospital_key, "--gateway", gw,
                   env={"CLAIMX_TOKEN": members["hospital.dev"]["token"]})
    binding = json.loads(bound.stdout)["digest"]
    assert json.loads(bound.stdout)["kind"] == "identity.binding"

    (tmp_path / "scope.json").write_text(json.dumps(scope(members)))
    claimx("consent", "sign", str(tmp_path / "scope.json"), "--key", str(key), "--out",
           str(tmp_path / "consent.json"))
    consent = json.loads((tmp_path / "consent.json").read_text())
    assert consent["scope"]["signed_at"]  # added, so a later withdrawal can tell it is older
    http = httpx.Client(base_url=gw, timeout=30)
    claim = http.post("/v1/claims", headers=dev_gateway.auth("insurer.dev"), json={
        "reference": "CLI-1", "subject": SUBJECT, "policy": "P-1",
        "incident_date": "2026-11-01", "kind": "routine", "consent": consent})
    assert claim.status_code == 201, claim.text
    digest = _publish(http, dev_gateway)
    envelope = f"/v1/records/{digest}/envelope?claim={claim.json()['id']}"
    assert http.get(envelope, headers=dev_gateway.auth("insurer.dev")).status_code == 200
    view = http.get(f"/v1/bindings/{binding}", headers=dev_gateway.auth("auditor.dev"))
    assert view.status_code == 200 and view.json()["claimant_key"] == public

    withdrawn = claimx("consent", "withdraw", "--subject", SUBJECT, "--insurer", "insurer.dev",
                       "--key", str(key), "--gateway", gw)
    assert json.loads(withdrawn.stdout)["insurer"] == members["insurer.dev"]["member_id"]
    r = http.get(envelope, headers=dev_gateway.auth("insurer.dev"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_consent"
    # the old artifact cannot reopen it: it was signed before the withdrawal
    again = http.post("/v1/claims", headers=dev_gateway.auth("insurer.dev"), json={
        "reference": "CLI-2", "subject": SUBJECT, "policy": "P-1",
        "incident_date": "2026-11-01", "kind": "routine", "consent": consent})
    assert again.status_code == 403 and again.json()["error"]["code"] == "consent_withdrawn"


def test_bind_without_gateway_writes_an_envelope_and_bad_input_is_one_line(
        dev_gateway: Served, tmp_path: Path) -> None:
    members = dev_gateway.members
    key = tmp_path / "c.key"
    public = json.loads(claimx("consent", "new", "--out", str(key)).stdout)["public_key"]
    out = tmp_path / "binding.json"
    claimx("consent", "bind", SUBJECT, public, "--issuer", members["hospital.dev"]["member_id"],
           "--key", members["hospital.dev"]["key_file"], "--out", str(out))
    r = httpx.post(f"{dev_gateway.url}/v1/records", content=out.read_bytes(),
                   headers={"content-type": "application/json",
                            **dev_gateway.auth("hospital.dev")})
    assert r.status_code == 201, r.text
    for args in [("bind", "nothex", public), ("bind", SUBJECT, "c2hvcnQ=")]:
        bad = claimx("consent", *args, "--issuer", "hospital.dev", "--key",
                     members["hospital.dev"]["key_file"], ok=False)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    (tmp_path / "s.json").write_text(json.dumps({"subject": SUBJECT}))
    bad = claimx("consent", "sign", str(tmp_path / "s.json"), "--key", str(key), ok=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: consent scope field"), bad.stderr


def _publish(http: httpx.Client, served: Served) -> str:
    members = served.members
    key = SigningKey.load(Path(members["hospital.dev"]["key_file"]))
    packet = new_packet(kind="hospital.invoice", issuer=members["hospital.dev"]["member_id"],
                        subject=SUBJECT, issued_at="2026-11-03T09:00:00Z", body={"n": "1"})
    r = http.post("/v1/records", json=sign_packet(packet, key).to_json(),
                  headers=served.auth("hospital.dev"))
    assert r.status_code == 201, r.text
    return str(r.json()["digest"])


@pytest.mark.anvil
def test_claimx_audit_proves_the_cli_made_binding_on_anvil(anvil_url: str,
                                                          tmp_path: Path) -> None:
    """The whole chain as an auditor sees it over HTTP and JSON-RPC: `claimx audit` follows the
    consent to its binding (fetched from GET /v1/bindings) and its later revocation."""
    from tests.support import serve_gateway

    dep = tmp_path / "deployment.json"
    claimx("deploy", "--rpc-url", anvil_url, "--out", str(dep))
    log_address = json.loads(dep.read_text())["log"]
    with serve_gateway(tmp_path, ["--rpc-url", anvil_url, "--deployment", str(dep)],
                       env={"CLAIMX_ANCHOR_INTERVAL_SECONDS": "0.2"}) as served:
        gw, members = served.url, served.members
        key = tmp_path / "claimant.key"
        public = json.loads(claimx("consent", "new", "--out", str(key)).stdout)["public_key"]
        binding = json.loads(claimx(
            "consent", "bind", SUBJECT, public, "--issuer", "hospital.dev", "--key",
            members["hospital.dev"]["key_file"], "--gateway", gw,
            env={"CLAIMX_TOKEN": members["hospital.dev"]["token"]}).stdout)["digest"]
        (tmp_path / "scope.json").write_text(json.dumps(scope(members)))
        consent = json.loads(claimx("consent", "sign", str(tmp_path / "scope.json"),
                                    "--key", str(key)).stdout)
        http = httpx.Client(base_url=gw, timeout=30)
        claim = http.post("/v1/claims", headers=served.auth("insurer.dev"), json={
            "reference": "CLI-A", "subject": SUBJECT, "policy": "P-1",
            "incident_date": "2026-11-01", "kind": "routine", "consent": consent})
        assert claim.status_code == 201, claim.text
        digest = _publish(http, served)
        r = http.get(f"/v1/records/{digest}/envelope?claim={claim.json()['id']}",
                     headers=served.auth("insurer.dev"))
        assert r.status_code == 200, r.text
        auditor = {"CLAIMX_TOKEN": members["auditor.dev"]["token"]}
        _wait_anchored(http, served, digest)
        args = ("audit", digest, "--gateway", gw, "--rpc-url", anvil_url, "--log", log_address)
        proven = claimx(*args, env=auditor)
        assert "[PASS] binding attester: hospital member" in proven.stdout, proven.stdout
        assert "[PASS] binding not revoked before the read: the gateway lists no revocation" \
            in proven.stdout
        assert proven.stdout.rstrip().endswith("EVERY READ CONSENTED")

        hospital = SigningKey.load(Path(members["hospital.dev"]["key_file"]))
        revocation = new_packet(kind="identity.binding_revoked", subject=SUBJECT,
                                issuer=members["hospital.dev"]["member_id"],
                                body={"binding": binding, "reason": "key reported lost"})
        r = http.post("/v1/records", json=sign_packet(revocation, hospital).to_json(),
                      headers=served.auth("hospital.dev"))
        assert r.status_code == 201, r.text
        _wait_anchored(http, served, r.json()["digest"])
        after = claimx(*args, "--json", env=auditor)
        (read,) = json.loads(after.stdout)[digest]
        assert read["valid"] and read["checks"][-1]["detail"].startswith("revoked after the read")


def _wait_anchored(http: httpx.Client, served: Served, digest: str) -> None:
    """Until the record and every read of it are anchored (earlier entries are, then, too)."""
    import time

    auth = served.auth("auditor.dev")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reads = http.get(f"/v1/records/{digest}/access-log", headers=auth).json()["reads"]
        entries = [digest, *(r["log_entry"] for r in reads)]
        if all(http.get(f"/v1/records/{d}", headers=auth).json()["status"] == "anchored"
               for d in entries):
            return
        time.sleep(0.2)
    pytest.fail(f"{digest} and its reads were not anchored within 30 s")
