"""`claimx publish` and the members' client (gateway/client/) against a real `claimx serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.client import ApiError, Client, verify_signature
from gateway.core import webhook
from gateway.core.claimant import (
    make_binding,
    new_claimant_key,
    public_key_b64,
    sign_consent,
    sign_withdrawal,
)
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from tests.support import ANVIL, CLAIMX, Served, serve_gateway

pytestmark = [pytest.mark.slow, pytest.mark.anvil,
              pytest.mark.skipif(not ANVIL.exists(), reason="anvil missing: run `npm ci`")]
CLAIMANT = "5f" * 32


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_gateway(tmp_path_factory.mktemp("serve")) as s:
        yield s


def packets(served: Served, tag: str, n: int) -> list[dict[str, Any]]:
    issuer = served.members["hospital.dev"]["member_id"]
    return [new_packet(kind="hospital.discharge_summary", issuer=issuer, subject=CLAIMANT,
                       issued_at="2026-11-03T09:00:00Z", body={"summary": f"{tag} {i}"},
                       urgent=True).to_obj() for i in range(n)]


def client(served: Served, who: str, **kw: Any) -> Client:
    return Client(served.url, served.members[who]["token"], **kw)


def run(args: list[str], token: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
    return subprocess.run([*CLAIMX, "publish", *args], capture_output=True, text=True,
                          timeout=120, env={**env, "CLAIMX_TOKEN": token}, **kw)


def test_publish_signs_packets_in_batches_and_prints_digests(served: Served,
                                                             tmp_path: Path) -> None:
    hospital = served.members["hospital.dev"]
    (tmp_path / "p.json").write_text(json.dumps(packets(served, "cli", 5)))
    key = ["--key", hospital["key_file"], "--issuer", "hospital.dev"]
    done = run(["p.json", *key, "--gateway", served.url, "--batch-size", "2"],
               hospital["token"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out) == 5 and len({o["digest"] for o in out}) == 5
    assert all(o["key_status"] == "fresh" and not o["duplicate"] for o in out)
    assert all(o["promise"]["digest"] == o["digest"] for o in out)  # each one's promise
    assert "5 signed acceptance promises" in done.stderr
    again = run(["p.json", *key, "--gateway", served.url], hospital["token"], cwd=tmp_path)
    assert [o["digest"] for o in json.loads(again.stdout)] == [o["digest"] for o in out]
    assert all(o["duplicate"] for o in json.loads(again.stdout))  # idempotent


def test_publish_refuses_unsigned_packets_without_key_and_a_foreign_issuer(
        served: Served, tmp_path: Path) -> None:
    hospital = served.members["hospital.dev"]
    (tmp_path / "p.json").write_text(json.dumps(packets(served, "refused", 1)))
    bare = run(["p.json", "--gateway", served.url], hospital["token"], cwd=tmp_path)
    assert bare.returncode == 1 and "missing_key" in bare.stderr
    other = run(["p.json", "--key", hospital["key_file"], "--issuer", "police.dev",
                 "--gateway", served.url], hospital["token"], cwd=tmp_path)
    assert other.returncode == 1 and "issuer_mismatch" in other.stderr


def test_publish_takes_envelopes_and_a_private_profile(served: Served, tmp_path: Path) -> None:
    hospital = served.members["hospital.dev"]
    key = SigningKey.load(Path(hospital["key_file"]))
    from gateway.core.packet import Packet

    envs = [sign_packet(Packet.from_obj(p), key).to_json() for p in packets(served, "env", 2)]
    (tmp_path / "e.json").write_text(json.dumps(envs))
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"gateway": served.url, "token": hospital["token"]}))
    profile.chmod(0o644)
    exposed = run(["e.json", "--profile", str(profile)], "", cwd=tmp_path)
    assert exposed.returncode == 1 and "chmod 600" in exposed.stderr
    profile.chmod(0o600)
    done = run(["e.json", "--profile", str(profile)], "", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 2


def test_publish_retries_a_503_until_the_chain_is_back(tmp_path: Path) -> None:
    slow_chain = {"CLAIMX_KEY_CACHE_SECONDS": "0", "CLAIMX_KEY_GRACE_SECONDS": "0",
                  "CLAIMX_CHAIN_TIMEOUT_SECONDS": "0.5"}
    with serve_gateway(tmp_path, env=slow_chain) as s:
        hospital = s.members["hospital.dev"]
        (tmp_path / "p.json").write_text(json.dumps(packets(s, "outage", 3)))
        anvil = int((tmp_path / "home" / "chain" / "anvil.pid").read_text())
        os.kill(anvil, signal.SIGSTOP)  # the chain stops answering
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMX_")}
            err = (tmp_path / "err.txt").open("w")
            proc = subprocess.Popen(
                [*CLAIMX, "publish", "p.json", "--key", hospital["key_file"], "--issuer",
                 "hospital.dev", "--gateway", s.url], cwd=tmp_path, stdout=subprocess.PIPE,
                stderr=err, text=True, env={**env, "CLAIMX_TOKEN": hospital["token"]})
            deadline = time.monotonic() + 60
            while "retrying" not in (tmp_path / "err.txt").read_text():
                assert proc.poll() is None, (tmp_path / "err.txt").read_text()
                assert time.monotonic() < deadline, "no 503 seen"
                time.sleep(0.1)
        finally:
            os.kill(anvil, signal.SIGCONT)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, (tmp_path / "err.txt").read_text()
        assert "503" in (tmp_path / "err.txt").read_text()
        assert len(json.loads(out)) == 3


def _claim(members: dict[str, Any], claimant: ed25519.Ed25519PrivateKey,
           reference: str = "SDK-1") -> dict[str, Any]:
    scope = {"subject": CLAIMANT, "insurer": members["insurer.dev"]["member_id"],
             "institutions": [members["hospital.dev"]["member_id"]], "kinds": [],
             "date_from": "2026-01-01", "date_to": "2026-12-31",
             "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}
    return {"reference": reference, "subject": CLAIMANT, "policy": "ACC-1",
            "incident_date": "2026-11-01", "kind": "accident",
            "consent": sign_consent(claimant, scope)}


def _bind(hospital: Client, members: dict[str, Any], claimant: ed25519.Ed25519PrivateKey,
          key: SigningKey) -> str:
    """The hospital binds the claimant's key to the subject; the binding's digest."""
    return hospital.publish(make_binding(key, members["hospital.dev"]["member_id"], CLAIMANT,
                                         public_key_b64(claimant))).digest


def _receipt(cx: Client, digest: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        try:
            return cx.receipt(digest)
        except ApiError as exc:
            assert exc.code in {"not_yet_logged", "not_yet_anchored"}, exc
            assert time.monotonic() < deadline, "not anchored in 30 s"
            time.sleep(0.1)


def test_client_drives_records_claims_requests_and_events(served: Served) -> None:
    from gateway.core.packet import Packet

    m = served.members
    key = SigningKey.load(Path(m["hospital.dev"]["key_file"]))
    envs = [sign_packet(Packet.from_obj(p), key) for p in packets(served, "sdk", 3)]
    with client(served, "hospital.dev") as hospital, client(served, "insurer.dev") as insurer:
        one = hospital.publish(envs[0])
        assert not one.duplicate and one.kind == "hospital.discharge_summary"
        batch = hospital.publish_batch(envs)
        assert [p.duplicate for p in batch] == [True, False, False]
        assert batch[0].digest == one.digest
        assert one.promise is not None and batch[0].promise == one.promise  # the one given
        assert hospital.promise(one.digest).promise == one.promise
        assert _receipt(hospital, one.digest)["digest"] == one.digest
        assert hospital.proof(one.digest)["leaf_index"] >= 0
        assert hospital.record(one.digest)["digest"] == one.digest
        with pytest.raises(ApiError) as missing:
            hospital.record("00" * 32)
        assert missing.value.status == 404

        claimant = new_claimant_key()  # bound by the hospital first
        _bind(hospital, m, claimant, key)
        view = insurer.open_claim(_claim(m, claimant))
        claim_id = view["id"]
        assert any(c["id"] == claim_id for c in insurer.claims())
        assert insurer.claim(claim_id)["id"] == claim_id
        req = insurer.request_evidence(claim_id, m["hospital.dev"]["member_id"],
                                       ["hospital.invoice"])
        assert any(r["id"] == req["id"] for r in hospital.requests(status="open"))
        assert hospital.decline_request(req["id"], "no such visit")["status"] == "declined"

        page = insurer.events(claim_id=claim_id)
        assert page.events and all(e.claim_id == claim_id for e in page.events)
        stream = insurer.stream_events(claim_id=claim_id)
        first = next(stream)
        assert first == page.events[0]
        stream.close()
        if len(page.events) > 1:  # resumed after the first: the second, not the first again
            resumed = insurer.stream_events(last_event_id=first.id, claim_id=claim_id)
            assert next(resumed) == page.events[1]
            resumed.close()
        assert insurer.withdraw_consent(claim_id)["id"] == claim_id
        assert insurer.close_claim(claim_id, "withdrawn")["id"] == claim_id
    assert verify_signature is webhook.verify_signature


def test_client_covers_webhooks_reads_under_a_claim_and_the_claimants_withdrawal(
        served: Served) -> None:
    from gateway.core.packet import Packet
    from gateway.dev.loopback import WebhookReceiver

    m = served.members
    key = SigningKey.load(Path(m["hospital.dev"]["key_file"]))
    with client(served, "hospital.dev") as hospital, \
            client(served, "insurer.dev") as insurer, \
            client(served, "auditor.dev") as auditor, WebhookReceiver() as receiver:
        hook = insurer.create_webhook(receiver.url)
        assert hook.secret and hook.url == receiver.url
        receiver.secret = hook.secret
        assert [w.id for w in insurer.webhooks()] == [hook.id]
        assert insurer.webhooks()[0].secret is None  # shown once only

        claimant = new_claimant_key()
        binding = _bind(hospital, m, claimant, key)
        assert hospital.binding(binding)["claimant_key"] == public_key_b64(claimant)
        claim_id = insurer.open_claim(_claim(m, claimant, "SDK-2"))["id"]
        env = sign_packet(Packet.from_obj(packets(served, "read", 1)[0]), key)
        digest = hospital.publish(env).digest
        assert hospital.wait_anchored(digest, timeout=30)["status"] == "anchored"

        assert insurer.receipt(digest, claim=claim_id)["digest"] == digest
        assert insurer.envelope(digest, claim=claim_id)["payload"] == env.to_json()["payload"]
        reads = auditor.access_log(digest)["reads"]
        assert len(reads) == 2 and all(r["claim_id"] == claim_id for r in reads)
        with pytest.raises(ApiError) as forbidden:
            auditor.envelope(digest)
        assert forbidden.value.status == 403
        head = auditor.log_head()
        assert auditor.get("/v1/log/head") == head
        assert auditor.consistency(1, head["anchored"]["size"])["second"] >= 1
        hospital_id = m["hospital.dev"]["member_id"]
        assert hospital_id in {x["id"] for x in auditor.members()}
        assert auditor.member(hospital_id)["role"] == "hospital"

        link = insurer.share_claim(claim_id, days=2)
        assert "#t=cxs_" in link["url"]
        assert insurer.revoke_share(claim_id, link["id"])["revoked_at"]

        with Client(served.url) as anonymous:  # the claimant holds no member credential
            out = anonymous.withdraw_by_claimant(
                sign_withdrawal(claimant, CLAIMANT, m["insurer.dev"]["member_id"]))
        assert out["subject"] == CLAIMANT and out["log_entry"]
        with pytest.raises(ApiError) as withdrawn:
            insurer.receipt(digest, claim=claim_id)
        assert withdrawn.value.status == 403

        receiver.wait_for(4)
        assert receiver.events and all(ok for _, ok in receiver.events)
        deliveries = insurer.deliveries()
        assert deliveries and {d.endpoint_id for d in deliveries} == {hook.id}
        with pytest.raises(ApiError) as not_parked:  # only a parked delivery is replayed
            insurer.replay_delivery(deliveries[0].id)
        assert not_parked.value.code == "not_parked"
        insurer.delete_webhook(hook.id)
        assert insurer.webhooks() == []
        with pytest.raises(ApiError) as missing:
            hospital.wait_anchored("00" * 32, timeout=1)
        assert missing.value.status == 404
