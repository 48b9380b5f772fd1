"""The trust path through the HTTP API on real chains and databases, and hostile input."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gateway.api.app import create_app
from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.core.receipt import Receipt
from gateway.core.types import Role
from gateway.services.auth import issue_credential
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.store.tables import Record
from gateway.verify.receipt import verify_receipt
from tests.support import Institution, admit


@pytest.fixture
def services(chain: Chain, deployment: Deployment, database_url: str,
             tmp_path: Path) -> Services:
    settings = Settings(home=tmp_path, anchor_interval_seconds=3600, max_body_bytes=256_000,
                        max_batch=50)
    return build_services(settings, chain=chain, deployment=deployment,
                          db=Database(database_url))


@pytest.fixture
def hospital(chain: Chain, deployment: Deployment) -> Institution:
    return admit(chain, deployment, "hospital.test")


def bearer(services: Services, member: bytes) -> dict[str, str]:
    with services.db.session() as s:
        return {"Authorization": "Bearer " + issue_credential(s, member, "test")}


@pytest.fixture
def client(services: Services, hospital: Institution) -> Iterator[TestClient]:
    """A client authenticated as the hospital's system."""
    with TestClient(create_app(services, run_worker=False),
                    headers=bearer(services, hospital.id)) as c:
        yield c


def envelope(inst: Institution, key: SigningKey | None = None, **body: Any) -> dict[str, Any]:
    packet = new_packet(kind="hospital.invoice", issuer=inst.issuer, subject="cd" * 32,
                        body={"total": "88.00", **body})
    return sign_packet(packet, key or inst.key).to_json()


def record_count(services: Services) -> int:
    with services.db.session() as s:
        return s.scalar(select(func.count()).select_from(Record)) or 0


def test_publish_anchor_receipt_verify(client: TestClient, services: Services,
                                       hospital: Institution) -> None:
    envs = [envelope(hospital, n=i) for i in range(7)]
    published = client.post("/v1/records/batch", json={"envelopes": envs})
    assert published.status_code == 201, published.text
    digests = [p["digest"] for p in published.json()]
    assert client.get(f"/v1/records/{digests[0]}").json()["status"] == "accepted"
    assert client.get(f"/v1/records/{digests[0]}/receipt").status_code == 404

    result = services.worker.cycle()
    assert result.sequenced == 7 and result.anchored_size == 7
    more = client.post("/v1/records", json=envelope(hospital, n=99))
    services.worker.cycle()

    head = client.get("/v1/log/head").json()
    assert head["anchored"]["size"] == 8 and head["log_size"] == 8
    for digest in [*digests, more.json()["digest"]]:
        rec = client.get(f"/v1/records/{digest}").json()
        assert rec["status"] == "anchored"
        receipt = Receipt.model_validate(client.get(f"/v1/records/{digest}/receipt").json())
        report = verify_receipt(receipt, services.chain, services.deployment.log)
        assert report.valid, report.to_dict()
    first = Receipt.model_validate(client.get(f"/v1/records/{digests[0]}/receipt").json())
    assert first.anchored_in.size == 7 and first.tree_head.size == 8

    proof = client.get("/v1/log/consistency", params={"first": 7, "second": 8}).json()
    chain_log = services.chain.evidence_log(services.deployment.log)
    assert chain_log.verify_consistency(7, 8, bytes.fromhex(proof["root1"]),
                                        bytes.fromhex(proof["root2"]),
                                        [bytes.fromhex(p) for p in proof["proof"]])


def test_replayed_envelope_is_idempotent(client: TestClient, services: Services,
                                         hospital: Institution) -> None:
    env = envelope(hospital)
    first = client.post("/v1/records", json=env).json()
    again = client.post("/v1/records", json=env)
    assert again.status_code == 201 and again.json()["duplicate"] is True
    assert again.json()["digest"] == first["digest"]
    batch = client.post("/v1/records/batch", json={"envelopes": [env, env]}).json()
    assert [b["duplicate"] for b in batch] == [True, True]
    services.worker.cycle()
    assert record_count(services) == 1
    assert client.get("/v1/log/head").json()["log_size"] == 1


def _mutate_payload(env: dict[str, Any], fn: Any) -> dict[str, Any]:
    payload = base64.b64decode(env["payload"])
    return {**env, "payload": base64.b64encode(fn(payload)).decode()}


BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    ("malformed json", lambda e, h: b"{\"payloadType\": ", 400, "malformed_json"),
    ("wrong payload type", lambda e, h: {**e, "payloadType": "application/json"}, 422,
     "wrong_payload_type"),
    ("bad base64", lambda e, h: {**e, "payload": "%%%not-base64%%%"}, 422, "bad_base64"),
    ("missing field", lambda e, h: {"payload": e["payload"]}, 422, "invalid_request"),
    ("tampered payload", lambda e, h: _mutate_payload(e, lambda p: p.replace(b"88.00", b"99.00")),
     422, "bad_signature"),
    ("forged signature", lambda e, h: envelope(h, key=SigningKey.generate()) | {
        "signatures": [{"keyid": e["signatures"][0]["keyid"],
                        "sig": envelope(h, key=SigningKey.generate())["signatures"][0]["sig"]}]},
     422, "bad_signature"),
    ("unknown key", lambda e, h: envelope(h, key=SigningKey.generate()), 422, "key_not_valid"),
    ("not canonical", lambda e, h: _mutate_payload(e, lambda p: b" " + p), 422, "not_canonical"),
    # hostile payloads that once reached json.loads' RecursionError and int-digit ValueError
    ("deeply nested", lambda e, h: _mutate_payload(e, lambda p: b"[" * 50000 + b"]" * 50000),
     422, "too_deep"),
    ("nested past the limit", lambda e, h: _mutate_payload(
        e, lambda p: b'{"a":' + b"[" * 40 + b"]" * 40 + b"}"), 422, "too_deep"),
    ("huge integer", lambda e, h: _mutate_payload(e, lambda p: b'{"a":' + b"9" * 5000 + b"}"),
     422, "invalid_payload"),
]


@pytest.mark.parametrize(("case", "make", "status", "code"), BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_a_clear_4xx_and_changes_nothing(
        client: TestClient, services: Services, hospital: Institution, case: str, make: Any,
        status: int, code: str) -> None:
    client.post("/v1/records", json=envelope(hospital))
    before = record_count(services)
    bad = make(envelope(hospital), hospital)
    content = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
    r = client.post("/v1/records", content=content,
                    headers={"content-type": "application/json"})
    if code == "invalid_request":
        assert r.json()["error"]["errors"][0]["loc"][-1] == "payloadType"
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert record_count(services) == before


def test_revoked_key_is_refused(client: TestClient, services: Services, chain: Chain,
                                deployment: Deployment, hospital: Institution) -> None:
    chain.registry(deployment.registry).revoke_key(hospital.id, hospital.key.key_id)
    services.publisher.keys.ttl = 0  # do not reuse the cached "valid" answer
    r = client.post("/v1/records", json=envelope(hospital))
    assert r.status_code == 422 and r.json()["error"]["key_status"] == "revoked"


def test_batch_with_one_bad_envelope_stores_nothing(client: TestClient, services: Services,
                                                    hospital: Institution) -> None:
    good = [envelope(hospital, n=i) for i in range(3)]
    bad = {**good[1], "payloadType": "text/plain"}
    r = client.post("/v1/records/batch", json={"envelopes": [good[0], bad, good[2]]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "batch_rejected" and [e["index"] for e in err["errors"]] == [1]
    assert record_count(services) == 0


@pytest.mark.parametrize("item", [[], 7, "text", None, {"payloadType": 1}])
def test_batch_items_of_any_json_type_are_4xx(client: TestClient, services: Services,
                                              item: object) -> None:
    """Found by schemathesis: a batch item that is not an object must not be a 500."""
    r = client.post("/v1/records/batch", json={"envelopes": [item]})
    assert r.status_code == 422, r.text
    assert record_count(services) == 0


def test_oversized_body_and_batch_refused(client: TestClient, services: Services,
                                          hospital: Institution) -> None:
    huge = b'{"payloadType":"' + b"x" * 300_000 + b'"}'
    r = client.post("/v1/records", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    chunks = (huge[i:i + 65536] for i in range(0, len(huge), 65536))
    r = client.post("/v1/records", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413
    many = {"envelopes": [envelope(hospital, n=i) for i in range(51)]}
    r = client.post("/v1/records/batch", json=many)
    assert r.status_code == 422 and r.json()["error"]["code"] == "batch_too_large"
    assert record_count(services) == 0


def test_revoked_record_fails_verification(client: TestClient, services: Services,
                                           hospital: Institution) -> None:
    digest = client.post("/v1/records", json=envelope(hospital)).json()["digest"]
    services.worker.cycle()
    receipt = Receipt.model_validate(client.get(f"/v1/records/{digest}/receipt").json())
    log = services.chain.evidence_log(services.deployment.log)
    log.revoke_record(hospital.id, bytes.fromhex(digest), 7, sender=hospital.operator)
    report = verify_receipt(receipt, services.chain, services.deployment.log)
    assert not report.valid and report.checks[-1].name == "not revoked"
    assert "reason code 7" in report.checks[-1].detail


def test_forged_receipt_claims_are_caught(client: TestClient, services: Services,
                                          hospital: Institution, chain: Chain,
                                          deployment: Deployment) -> None:
    digests = [client.post("/v1/records", json=envelope(hospital, n=i)).json()["digest"]
               for i in range(3)]
    services.worker.cycle()
    good = client.get(f"/v1/records/{digests[1]}/receipt").json()
    forged_proof = json.loads(json.dumps(good))
    forged_proof["inclusion_proof"][0] = "00" * 32
    forged_root = json.loads(json.dumps(good))
    forged_root["tree_head"]["root"] = "11" * 32
    police = admit(chain, deployment, "police.other", Role.POLICE)
    impostor = sign_packet(new_packet(kind="hospital.invoice", issuer=hospital.issuer,
                                      subject="cd" * 32, body={}), police.key).to_json()
    forged_sig = json.loads(json.dumps(good))
    forged_sig["envelope"] = impostor
    swapped = json.loads(json.dumps(forged_sig))
    swapped["digest"] = hashlib.sha256(base64.b64decode(impostor["payload"])).hexdigest()
    for name, receipt in [("inclusion proof", forged_proof), ("tree head on chain", forged_root),
                          ("envelope and digest", forged_sig), ("inclusion proof", swapped)]:
        report = verify_receipt(Receipt.model_validate(receipt), services.chain,
                                services.deployment.log)
        assert not report.valid and report.checks[-1].name == name, report.to_dict()


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/records", "/v1/records/batch", "/v1/records/{digest}",
            "/v1/records/{digest}/receipt", "/v1/log/head", "/v1/log/consistency"} <= set(
        spec["paths"])
    assert client.get("/v1/records/zz").status_code == 422
    assert client.get("/v1/records/" + "ab" * 32).json()["error"]["code"] == "record_not_found"


def test_key_compromised_before_anchoring_fails_verification(
        client: TestClient, services: Services, chain: Chain, deployment: Deployment,
        hospital: Institution) -> None:
    digest = client.post("/v1/records", json=envelope(hospital)).json()["digest"]
    registry = chain.registry(deployment.registry)
    valid_from = registry.c.functions.key(hospital.key.key_id).call()[2]
    registry.revoke_key(hospital.id, hospital.key.key_id, at=valid_from)  # compromised all along
    services.worker.cycle()
    # issue 9: the key is re-checked at logging time, so the record is never appended and
    # never gets a receipt that verification would then call INVALID
    r = client.get(f"/v1/records/{digest}/receipt")
    assert r.status_code == 409 and r.json()["error"]["code"] == "record_rejected", r.text
    meta = client.get(f"/v1/records/{digest}").json()
    assert meta["status"] == "rejected" and meta["reject_code"] == "key_revoked"
    assert meta["leaf_index"] is None


def test_large_batch_checked_in_parallel_reports_every_failure_in_order(
        client: TestClient, services: Services, hospital: Institution,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches from PARALLEL_MIN up verify their signatures on the thread pool: forged
    signatures and a bad envelope are still all reported, by index, and nothing is stored;
    the good batch is answered in the order it was sent."""
    monkeypatch.setattr("gateway.services.publish.PARALLEL_MIN", 8)  # within max_batch 50
    services.publisher.threads = 3
    good = [envelope(hospital, n=i) for i in range(41)]
    batch = list(good)
    for i in (5, 30):  # signatures over another payload: a forgery
        batch[i] = {**good[i], "signatures": good[i + 1]["signatures"]}
    batch[17] = {**good[17], "payloadType": "text/plain"}
    r = client.post("/v1/records/batch", json={"envelopes": batch})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "batch_rejected", r.text
    assert [e["index"] for e in r.json()["error"]["errors"]] == [5, 17, 30], r.text
    assert record_count(services) == 0
    r = client.post("/v1/records/batch", json={"envelopes": good})
    assert r.status_code == 201
    digests = [hashlib.sha256(base64.b64decode(e["payload"])).hexdigest() for e in good]
    assert [p["digest"] for p in r.json()] == digests
    assert record_count(services) == len(good)


def test_large_batch_checked_by_processes_reports_every_failure_in_order(
        client: TestClient, services: Services, hospital: Institution,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches from PROCESS_MIN up verify their signatures in the verifying processes, a
    chunk at a time while the rest is parsed: forgeries in different chunks are all
    reported by index, nothing is stored, and a good batch is answered in order."""
    monkeypatch.setattr("gateway.services.publish.PROCESS_MIN", 8)
    monkeypatch.setattr("gateway.services.publish.CHUNK", 4)
    services.publisher.processes = 2
    good = [envelope(hospital, n=i) for i in range(23)]
    batch = list(good)
    for i in (2, 13, 22):  # signatures over another payload: forgeries in three chunks
        batch[i] = {**good[i], "signatures": good[i - 1]["signatures"]}
    r = client.post("/v1/records/batch", json={"envelopes": batch})
    assert r.status_code == 422, r.text
    errors = r.json()["error"]["errors"]
    assert [(e["index"], e["code"]) for e in errors] == [
        (2, "bad_signature"), (13, "bad_signature"), (22, "bad_signature")], r.text
    assert record_count(services) == 0
    r = client.post("/v1/records/batch", json={"envelopes": good})
    assert r.status_code == 201, r.text
    digests = [hashlib.sha256(base64.b64decode(e["payload"])).hexdigest() for e in good]
    assert [p["digest"] for p in r.json()] == digests
    assert record_count(services) == len(good)


def test_payloads_compressed_by_the_processes_read_back_exactly(
        client: TestClient, services: Services, hospital: Institution,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A large batch's payloads are compressed by the verifying processes (some chunks taken
    back by the publishing thread): every envelope reads back byte for byte, each under its
    own record, stored without the fields the row holds."""
    from gateway.store import payload_codec
    from gateway.store.tables import RecordPayload

    monkeypatch.setattr("gateway.services.publish.PROCESS_MIN", 8)
    monkeypatch.setattr("gateway.services.publish.CHUNK", 4)
    services.publisher.processes = 2
    good = [envelope(hospital, n=i, note="x" * (i * 37 % 200)) for i in range(30)]
    r = client.post("/v1/records/batch", json={"envelopes": good})
    assert r.status_code == 201, r.text
    for env, out in zip(good, r.json(), strict=True):
        back = client.get(f"/v1/records/{out['digest']}/envelope")
        assert back.status_code == 200, back.text
        assert back.json()["payload"] == env["payload"]
    with services.db.session() as s:
        sealed_of = dict(s.execute(select(RecordPayload.record_id, RecordPayload.sealed)).all())
        ours = [bytes.fromhex(o["digest"]) for o in r.json()]  # (each read logged a record)
        rows = [(rec, sealed_of[rec.id]) for rec in s.scalars(select(Record).where(
            Record.digest.in_(ours)))]
        assert len(rows) == len(good)
        for rec, sealed in rows:
            assert sealed is not None
            assert payload_codec.is_cut(services.vault._decrypt(rec.digest, sealed, None))
            assert hashlib.sha256(services.vault.open(rec, sealed)).digest() == rec.digest


def test_a_compressed_payload_for_another_record_is_never_stored(
        services: Services, hospital: Institution) -> None:
    """Should a process's answer come back for the wrong record (a routing bug), its hash
    gives it away and the payload is compressed again on the publishing thread."""
    from gateway.services.publish import _known
    from gateway.store import payload_codec

    envs = [envelope(hospital, n=i) for i in range(2)]
    checked = [services.publisher._prepare(e, None) for e in envs]
    part = [(i, c, k) for i, (c, k) in enumerate(checked)]
    answers = payload_codec.compress_all([(c.envelope.payload, _known(c.packet))
                                          for c, _ in checked])
    sealed: dict[bytes, Any] = {}
    services.publisher._seal_packed(part, list(reversed(answers)), sealed)
    for c, _ in checked:
        plain = services.vault._decrypt(c.digest, sealed[c.digest].stored, None)
        assert payload_codec.decompress(plain, _known(c.packet)) == c.envelope.payload


def test_killed_verifying_process_never_lets_a_forgery_through(
        client: TestClient, services: Services, hospital: Institution,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A verifying process killed (an OOM kill, an operator's mistake): the batch in hand is
    verified in the gateway process instead, the forgery is still refused, and the next
    batch gets new processes."""
    import os
    import signal

    from gateway.services import sigpool

    monkeypatch.setattr("gateway.services.publish.PROCESS_MIN", 8)
    monkeypatch.setattr("gateway.services.publish.CHUNK", 4)
    services.publisher.processes = 2
    warm = [envelope(hospital, n=100 + i) for i in range(10)]
    assert client.post("/v1/records/batch", json={"envelopes": warm}).status_code == 201
    pool = sigpool._pool
    assert pool is not None
    for pid in list(pool._processes):  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
    good = [envelope(hospital, n=i) for i in range(12)]
    forged = list(good)
    forged[9] = {**good[9], "signatures": good[8]["signatures"]}
    r = client.post("/v1/records/batch", json={"envelopes": forged})
    assert r.status_code == 422, r.text
    assert [e["index"] for e in r.json()["error"]["errors"]] == [9], r.text
    assert record_count(services) == len(warm)
    r = client.post("/v1/records/batch", json={"envelopes": good})
    assert r.status_code == 201, r.text
    assert record_count(services) == len(warm) + len(good)
    assert sigpool._pool is not None and sigpool._pool is not pool


def _stopped(pid: int) -> bool:
    """Whether ``pid`` is in the stopped state ("T" in /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _child_of(pid: int, parent: int) -> bool:
    """Whether ``pid`` is still a live child of ``parent`` (not exited, not a reused pid)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z" and int(fields[1]) == parent


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def impatient(chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path,
              hospital: Institution, monkeypatch: pytest.MonkeyPatch,
              ) -> Iterator[tuple[Services, TestClient]]:
    """A gateway whose verify timeout comes from CLAIMX_VERIFY_TIMEOUT_SECONDS (1.5 s)."""
    monkeypatch.setenv("CLAIMX_VERIFY_TIMEOUT_SECONDS", "1.5")
    settings = Settings(home=tmp_path, anchor_interval_seconds=3600, max_batch=200)
    services = build_services(settings, chain=chain, deployment=deployment,
                              db=Database(database_url))
    with TestClient(create_app(services, run_worker=False),
                    headers=bearer(services, hospital.id)) as c:
        yield services, c


def test_hung_verifying_processes_never_hang_a_publish(
        impatient: tuple[Services, TestClient], hospital: Institution,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every verifying process stopped (SIGSTOP, as a process wedged under memory pressure
    would be): the publish still answers within one timeout for all its chunks, with every
    signature checked in the gateway process; the stopped processes are killed and the next
    batch gets new ones. (Chunks the processes have not taken when parsing ends are done on
    the publishing thread; the batch is large enough that some are handed over first, as in
    any real batch, and those are the ones that time out.)"""
    import os
    import signal
    import sys

    from gateway.services import sigpool

    services, client = impatient
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # as `claimx serve` runs: the executor's thread gets turns
    timeout = services.publisher.verify_timeout
    assert timeout == 1.5
    monkeypatch.setattr("gateway.services.publish.PROCESS_MIN", 8)
    monkeypatch.setattr("gateway.services.publish.CHUNK", 16)
    services.publisher.processes = 2
    if sigpool._pool is not None:
        sigpool._discard(sigpool._pool)
    pool = sigpool._shared(2)
    assert pool is not None
    # two calls at once start both processes (a pool adds one only when none is idle), so
    # the batch below finds no fresh process to run on
    for f in [pool.submit(time.sleep, 0.3) for _ in range(2)]:
        f.result(timeout=30)
    pids = list(pool._processes)
    assert len(pids) == 2
    forkserver = {int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                  for pid in pids}
    assert len(forkserver) == 1 and os.getpid() not in forkserver
    parent = forkserver.pop()
    good = [envelope(hospital, n=i) for i in range(160)]  # 10 chunks: 10 timeouts = 15 s
    forged = list(good)
    for i in (3, 149):
        forged[i] = {**good[i], "signatures": good[i - 1]["signatures"]}
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        assert _until(lambda: all(_stopped(pid) for pid in pids))
        started = time.monotonic()
        r = client.post("/v1/records/batch", json={"envelopes": forged})
        elapsed = time.monotonic() - started
        assert r.status_code == 422, r.text
        assert [(e["index"], e["code"]) for e in r.json()["error"]["errors"]] == [
            (3, "bad_signature"), (149, "bad_signature")], r.text
        assert timeout <= elapsed < timeout + 4, elapsed
        assert record_count(services) == 0
        assert _until(lambda: not any(_child_of(pid, parent) for pid in pids))
        assert sigpool._pool is None

        r = client.post("/v1/records/batch", json={"envelopes": good})
        assert r.status_code == 201, r.text
        assert record_count(services) == len(good)
        fresh = sigpool._pool
        assert fresh is not None and fresh is not pool
        assert set(fresh._processes).isdisjoint(pids)
    finally:  # no process this test stopped outlives it (SIGKILL ends a stopped one too)
        sys.setswitchinterval(previous)
        for pid in pids:
            if _child_of(pid, parent):
                os.kill(pid, signal.SIGKILL)
        sigpool._discard(pool)
