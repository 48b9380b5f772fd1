"""The outside client of api_client.py (written from docs/api.md alone) against a real
`claimx serve` over HTTP.

The gateway runs as a subprocess (embedded EVM + SQLite) with the development members of
``--dev-members``; an insurer, a hospital and a police system play the whole flow, and the
negative cases check the documented errors. The document's test vectors are checked
first, with no server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.e2e.api_client import (
    PAYLOAD_TYPE,
    Gateway,
    Hook,
    Receiver,
    aware,
    b64,
    canonical,
    consent,
    digest_of,
    envelope,
    inclusion_ok,
    key_id,
    member_id,
    new_packet,
    ok,
    pae,
    refused,
    verify_envelope,
    webhook_ok,
)
from tests.support import Served

pytestmark = pytest.mark.slow  # real processes end to end
VECTOR_SEED = bytes(range(32))
VECTOR_PACKET: dict[str, Any] = {
    "schema": "claimx.packet/1", "kind": "hospital.invoice",
    "issuer": "0x7fc9be0739fb6ed9289f2ea0c31376edd8d5f9a5be668660afd2f61dc57c2ab3",
    "issued_at": "2026-11-24T16:30:00Z", "subject": "7c" * 32,
    "body": {"currency": "CNY", "total": "12800.50",
             "items": [{"name": "CT 扫描", "quantity": 1, "amount": "680.00"}]},
    "salt": "q1w2e3r4t5y6u7i8o9p0aA", "attachments": [], "urgent": False}


def test_the_documents_test_vectors() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(VECTOR_SEED)
    assert member_id("hospital.dev") == VECTOR_PACKET["issuer"]
    assert member_id("insurer.dev") == ("0x09ffdaf9b04d4cf3c1fe39506cbaf39a46279fe76ac0f5ca6"
                                        "01dc6f2709ff9fa")
    assert key_id(key.public_key()) == ("0xa050837d85070582ccf7394b0988847cc312cb88259b8948"
                                        "99f6f239cf1791a5")
    body = canonical(VECTOR_PACKET)
    assert len(body) == 415 and body.startswith(b'{"attachments":[],"body":{"currency":"CNY"')
    assert digest_of(VECTOR_PACKET) == ("0e2c1c3116070b49b0dc3846e44ab020e41b5c638b8e7e05a2"
                                        "32f782b6fb408e")
    message = pae(PAYLOAD_TYPE, body)
    assert message.startswith(b"DSSEv1 34 application/vnd.claimx.packet+json 415 {")
    assert hashlib.sha256(message).hexdigest() == ("3db1ae43358d3bbc985b48addc76427dae96642"
                                                   "be3b1730ef1fb9c71f164bfa0")
    env = envelope(VECTOR_PACKET, key)
    assert env["signatures"][0]["sig"] == ("yI22LJR0LA8MKTTgE67Qh4NCAezHauT7uxkdjPhyfBloYYrHP2y5"
                                           "E6jfc29VjZg0ocNPuK2RgV6lvxvQDhllCA==")
    scope = {"subject": "7c" * 32, "insurer": member_id("insurer.dev"), "institutions": [],
             "kinds": ["hospital.invoice"], "date_from": "2026-11-01", "date_to": "2026-12-31",
             "expires_at": "2027-05-25T00:00:00Z"}
    signed = consent(scope, key)["claimant_signature"]
    assert signed["public_key"] == "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    assert signed["sig"] == ("nP+PnVxaJ8I093ckhr+UwFftOcGzyhGQcXs+AKpEWUehIdxyVf5l6mI4KqoJKdEa"
                             "WYnyGnPXypBIp6s5f/NDBQ==")
    hook_body = (b'{"id":7,"event":{"id":9,"type":"request.fulfilled","claim_id":"f8694f34-9dbd-'
                 b'41b3-b0c4-194126d8fe16","at":"2026-11-25T09:14:13.550191+00:00","data":{"requ'
                 b'est":"a1f9d1f2-fe93-4c04-9bfd-d5b0d77c6cc6","digest":"4a295bd0b3f3f24f6c5d1f2'
                 b'b1ef6faa94dd4fadde28eee5f0ce323ffeb97bd61"}}}')
    header = "t=1795598053,v1=11f1572e912513f21c843ca8622f23cee4ab457ea0fc6f317cf5a6b127fd8631"
    secret = "whsec_k2-rN7l5CDrIs4_9dYVrWhPDLf8xJb-K4pq3Od7wF8Y"
    assert webhook_ok(secret, header, hook_body, now=1795598053)
    assert not webhook_ok(secret, header, hook_body + b" ", now=1795598053)
    assert not webhook_ok(secret, header, hook_body, now=1795598053 + 301)  # stale: a replay


@pytest.fixture
def gateway(dev_gateway: Served) -> Gateway:
    """`claimx serve --dev-members DIR` from this checkout (tests/support.py starts it; the
    client code in api_client.py imports nothing of claimx)."""
    return Gateway(dev_gateway.url, dev_gateway.members)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rec.lock:
                rec.hooks.append(Hook(dict(self.headers.items()), body, time.time()))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_port}/claimx"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def test_insurer_hospital_and_police_from_the_document_alone(gateway: Gateway,
                                                             receiver: Receiver) -> None:
    http = httpx.Client(base_url=gateway.url, timeout=30)
    ins, hos, pol, aud = "insurer.dev", "hospital.dev", "police.dev", "auditor.dev"
    ids = {slug: gateway.members[slug]["member_id"] for slug in (ins, hos, pol, aud)}
    assert all(ids[slug] == member_id(slug) for slug in ids)  # §2 derivation
    subject = secrets.token_hex(32)

    # §8.1 the insurer's webhook, registered before anything happens
    hook = ok(http.post("/v1/webhooks", headers=gateway.token(ins), json={"url": receiver.url}),
              201)
    assert hook["secret"].startswith("whsec_") and hook["url"] == receiver.url

    # §7, §8.2 the claim, with a consent expiring at a +08:00 time
    claimant = ed25519.Ed25519PrivateKey.generate()
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    scope = {"subject": subject, "insurer": ids[ins], "institutions": [ids[hos], ids[pol]],
             "kinds": [], "date_from": "2026-11-01", "date_to": "2026-12-31",
             "expires_at": expires.astimezone(timezone(timedelta(hours=8))).isoformat()}
    claim_in = {"reference": f"EXT-{secrets.token_hex(4)}", "subject": subject,
                "policy": "AUTO-1", "incident_date": "2026-11-20", "kind": "accident",
                "consent": consent(scope, claimant)}
    # issue 9: the hospital, which knows the claimant, binds the claimant's key first
    raw = claimant.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    binding = new_packet("identity.binding", ids[hos], subject,
                         {"subject": subject, "claimant_key": b64(raw), "attested_at": now},
                         issued_at=now)
    ok(http.post("/v1/records", headers=gateway.token(hos),
                 json=envelope(binding, gateway.key(hos))), 201)
    forged = json.loads(json.dumps(claim_in))
    forged["consent"]["scope"]["date_to"] = "2027-12-31"  # signed scope changed afterwards
    refused(http.post("/v1/claims", headers=gateway.token(ins), json=forged), 422,
            "bad_consent_signature")
    claim = ok(http.post("/v1/claims", headers=gateway.token(ins), json=claim_in), 201)
    cid = claim["id"]
    assert claim["status"] == "open" and claim["green_channel"] is True
    assert claim["consent"]["live"] is True
    assert aware(claim["consent"]["expires_at"]) == expires

    # §8.3 evidence requests, green channel
    asked = {hos: ["hospital.discharge_summary", "hospital.invoice"],
             pol: ["police.accident_determination"]}
    for who, kinds in asked.items():
        req = ok(http.post(f"/v1/claims/{cid}/requests", headers=gateway.token(ins),
                           json={"institution": ids[who], "kinds": kinds}), 201)
        assert req["status"] == "open" and req["urgent"] is True
        assert 0 < req["remaining_seconds"] <= 30 * 60
        assert aware(req["due_at"]) > aware(req["created_at"])

    # §8.4, §8.5 each institution lists what it is asked and answers with its own signatures
    digests: dict[str, str] = {}
    packets: dict[str, dict[str, Any]] = {}
    for who in (hos, pol):
        key = gateway.key(who)
        assert isinstance(key, ed25519.Ed25519PrivateKey if who == hos
                          else ec.EllipticCurvePrivateKey)
        open_reqs = ok(http.get("/v1/requests", headers=gateway.token(who),
                                params={"status": "open"}), 200)
        mine = [r for r in open_reqs if r["claim_id"] == cid]
        assert [r["institution"] for r in mine] == [ids[who]]
        envs = []
        for kind in mine[0]["kinds"]:
            packet = new_packet(kind, ids[who], subject, {"summary": f"{kind} for the claim",
                                                          "amount": "1280.50", "count": 2},
                                "2026-11-21T08:00:00Z",
                                urgent=kind == "police.accident_determination")
            packets[kind], digests[kind] = packet, digest_of(packet)
            envs.append(envelope(packet, key))
        if who == pol:
            sig = base64.b64decode(envs[0]["signatures"][0]["sig"])
            assert sig[0] == 0x30 and len(sig) <= 72  # DER, as §5 says
        if len(envs) == 1:
            out = [ok(http.post("/v1/records", headers=gateway.token(who), json=envs[0]), 201)]
        else:
            out = ok(http.post("/v1/records/batch", headers=gateway.token(who),
                               json={"envelopes": envs}), 201)
        for kind, res in zip(mine[0]["kinds"], out, strict=True):
            promise = res.pop("promise")  # §8.6: the exchange's signed acceptance promise
            assert promise["digest"] == digests[kind] and promise["signature"]
            assert promise["urgent"] is (kind == "police.accident_determination")
            assert res == {"digest": digests[kind], "duplicate": False, "kind": kind,
                           "urgent": kind == "police.accident_determination",
                           "key_status": "fresh"}  # §8.5: "stale" only while the chain is down
    again = ok(http.post("/v1/records", headers=gateway.token(pol),
                         json=envelope(packets["police.accident_determination"],
                                       gateway.key(pol))), 201)
    assert again["duplicate"] is True  # ECDSA signs anew; same bytes, same digest

    # §12 a tampered signature: 422 bad_signature, documented body, nothing stored
    bad_packet = new_packet("hospital.lab_report", ids[hos], subject, {"n": 1},
                            "2026-11-22T08:00:00Z")
    bad = envelope(bad_packet, gateway.key(hos))
    sig = bytearray(base64.b64decode(bad["signatures"][0]["sig"]))
    sig[7] ^= 0x01
    bad["signatures"][0]["sig"] = b64(bytes(sig))
    err = refused(http.post("/v1/records", headers=gateway.token(hos), json=bad), 422,
                  "bad_signature")
    assert set(err) == {"code", "message"}
    refused(http.get(f"/v1/records/{digest_of(bad_packet)}", headers=gateway.token(aud)), 404,
            "record_not_found")
    batch = refused(http.post("/v1/records/batch", headers=gateway.token(hos),
                              json={"envelopes": [envelope(bad_packet, gateway.key(hos)), bad]}),
                    422, "batch_rejected")
    assert [(e["index"], e["code"]) for e in batch["errors"]] == [(1, "bad_signature")]
    refused(http.get(f"/v1/records/{digest_of(bad_packet)}", headers=gateway.token(aud)), 404,
            "record_not_found")  # all or nothing
    pretty = dict(envelope(bad_packet, gateway.key(hos)),
                  payload=b64(json.dumps(bad_packet, indent=1).encode()))
    refused(http.post("/v1/records", headers=gateway.token(hos), json=pretty), 422,
            "not_canonical")

    # §8.6 the insurer sees the records attach, the claim become ready, the records anchored
    deadline = time.monotonic() + 20
    while True:
        view = ok(http.get(f"/v1/claims/{cid}", headers=gateway.token(ins)), 200)
        if view["status"] == "ready" and len(view["records"]) == 3 and all(
                r["status"] == "anchored" for r in view["records"]):
            break
        assert time.monotonic() < deadline, f"claim not ready and anchored: {view}"
        time.sleep(0.25)
    assert {r["digest"] for r in view["records"]} == set(digests.values())
    assert all(r["verified"] for r in view["records"]) and view["duplicates"] == []
    assert [r["status"] for r in view["requests"]] == ["fulfilled", "fulfilled"]
    types = [e["type"] for e in view["timeline"]]
    assert types[0] == "claim.opened" and "claim.ready" in types
    assert types.count("record.received") == 3 and types.count("record.anchored") == 3
    for stamp in [view["created_at"], view["consent"]["expires_at"],
                  *(e["at"] for e in view["timeline"])]:
        aware(stamp)
    assert aware(view["consent"]["expires_at"]) == expires
    meta = ok(http.get(f"/v1/records/{digests['hospital.invoice']}",
                       headers=gateway.token(aud)), 200)
    assert meta["status"] == "anchored" and meta["issuer"] == ids[hos]
    aware(meta["accepted_at"])

    # §8.7, §10 a receipt under the claim's consent, checked by this client
    invoice = digests["hospital.invoice"]
    receipt = ok(http.get(f"/v1/records/{invoice}/receipt", headers=gateway.token(ins),
                          params={"claim": cid}), 200)
    assert receipt["version"] == "claimx.receipt/1" and receipt["digest"] == invoice
    payload = base64.b64decode(receipt["envelope"]["payload"])
    assert payload == canonical(packets["hospital.invoice"])
    assert hashlib.sha256(payload).hexdigest() == invoice
    verify_envelope(receipt["envelope"], gateway.key(hos).public_key())
    with pytest.raises(InvalidSignature):
        verify_envelope(receipt["envelope"] | {"payloadType": "application/json"},
                        gateway.key(hos).public_key())
    head, proof = receipt["tree_head"], receipt["inclusion_proof"]
    assert inclusion_ok(invoice, receipt["leaf_index"], head["size"], proof, head["root"])
    assert not inclusion_ok(invoice, receipt["leaf_index"], head["size"],
                            [proof[0][::-1], *proof[1:]] if proof else ["00" * 32],
                            head["root"])
    assert not inclusion_ok(digests["hospital.discharge_summary"], receipt["leaf_index"],
                            head["size"], proof, head["root"])
    assert receipt["anchored_in"]["size"] > receipt["leaf_index"]
    log_head = ok(http.get("/v1/log/head", headers=gateway.token(aud)), 200)
    assert log_head["anchored"]["size"] >= head["size"]
    assert log_head["chain"] == receipt["chain"]
    police_env = ok(http.get(f"/v1/records/{digests['police.accident_determination']}/envelope",
                             headers=gateway.token(ins), params={"claim": cid}), 200)
    verify_envelope(police_env, gateway.key(pol).public_key())
    reads = ok(http.get(f"/v1/records/{invoice}/access-log", headers=gateway.token(aud)), 200)
    assert [r["member"] for r in reads["reads"]] == [ids[ins]]

    # §11 webhooks: every event of the claim arrives, HMAC-signed, first attempts in order
    def complete(got: list[Hook]) -> bool:
        seen = [json.loads(h.body)["event"]["type"] for h in got]
        return "claim.ready" in seen and seen.count("record.anchored") == 3

    hooks = receiver.wait_for(complete)
    events = []
    for h in hooks:
        signature = h.headers["X-Claimx-Signature"]
        assert webhook_ok(hook["secret"], signature, h.body, now=h.at), signature
        assert not webhook_ok(hook["secret"], signature, h.body + b"\n", now=h.at)
        assert not webhook_ok("whsec_wrong", signature, h.body, now=h.at)
        delivery = json.loads(h.body)
        assert h.headers["X-Claimx-Event"] == delivery["event"]["type"]
        assert h.headers["X-Claimx-Delivery"] == str(delivery["id"])
        aware(delivery["event"]["at"])
        events.append(delivery["event"])
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert [e["type"] for e in events] == types[:len(events)]
    assert [e["id"] for e in events] == [e["id"] for e in view["timeline"]][:len(events)]

    # §11 server-sent events of the claim
    frames: list[dict[str, str]] = []
    sse = {**gateway.token(ins), "Accept": "text/event-stream"}
    with http.stream("GET", f"/v1/claims/{cid}/events", headers=sse) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, str] = {}
        for line in stream.iter_lines():
            if line == "":
                if "id" in frame:
                    frames.append(frame)
                    if frame["event"] == "claim.ready":
                        break
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                frame[name] = value
    assert [f["event"] for f in frames] == types[:len(frames)]
    assert all(json.loads(f["data"])["id"] == int(f["id"]) for f in frames)

    # §9 refusals: out-of-scope reads, wrong roles, no credentials
    other = new_packet("hospital.invoice", ids[hos], secrets.token_hex(32), {"n": 2},
                       "2026-11-22T08:00:00Z")  # another person: no consent of this insurer
    out_of_scope = ok(http.post("/v1/records", headers=gateway.token(hos),
                                json=envelope(other, gateway.key(hos))), 201)["digest"]
    refused(http.get(f"/v1/records/{out_of_scope}/envelope", headers=gateway.token(ins)), 403,
            "no_consent")
    refused(http.get(f"/v1/records/{out_of_scope}/receipt", headers=gateway.token(ins),
                     params={"claim": cid}), 403, "no_consent")
    refused(http.get(f"/v1/records/{invoice}/envelope", headers=gateway.token(aud)), 403,
            "payload_forbidden")
    refused(http.get(f"/v1/records/{invoice}/envelope", headers=gateway.token(pol)), 403,
            "payload_forbidden")
    refused(http.get(f"/v1/claims/{cid}", headers=gateway.token(hos)), 403, "role_forbidden")
    refused(http.post("/v1/records", headers=gateway.token(ins),
                      json=envelope(other, gateway.key(hos))), 403, "role_forbidden")
    refused(http.post("/v1/records", headers=gateway.token(pol),
                      json=envelope(other, gateway.key(hos))), 403, "issuer_mismatch")
    refused(http.get("/v1/requests", headers=gateway.token(aud)), 403, "role_forbidden")
    refused(http.get(f"/v1/claims/{cid}/events", headers=gateway.token(hos)), 403,
            "role_forbidden")
    refused(http.get(f"/v1/claims/{cid}"), 401, "missing_credentials")
    refused(http.get(f"/v1/records/{invoice}/receipt", params={"claim": cid}), 401,
            "missing_credentials")
    refused(http.get(f"/v1/claims/{cid}", headers={"Authorization": "Bearer cx1_not-a-token"}),
            401, "bad_credentials")

    # §7 withdrawal stops payload reads at once
    withdrawn = ok(http.post(f"/v1/claims/{cid}/consent/withdraw", headers=gateway.token(ins)),
                   200)
    assert withdrawn["consent"]["live"] is False
    aware(withdrawn["consent"]["withdrawn_at"])
    refused(http.get(f"/v1/records/{invoice}/envelope", headers=gateway.token(ins),
                     params={"claim": cid}), 403, "no_consent")
    refused(http.post(f"/v1/claims/{cid}/requests", headers=gateway.token(ins),
                      json={"institution": ids[hos], "kinds": ["hospital.invoice"]}), 409,
            "no_consent")
