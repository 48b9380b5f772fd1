"""The insurer's side over HTTP: consent, matching, requests, erasure, access log, roles."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.core import merkle
from gateway.core.binding import BINDING_KIND, binding_body
from gateway.core.canonical import canonical_bytes
from gateway.core.consent import ConsentScope, scope_bytes
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import SourceRef, new_packet
from gateway.core.types import Role, hex32, member_id
from gateway.services.auth import issue_credential
from gateway.services.claims import consent_live
from gateway.services.push.endpoints import list_endpoints, register_endpoint, remove_endpoint
from gateway.services.requests import sweep_clocks
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.store.tables import (
    AccessLog,
    Claim,
    Consent,
    Delivery,
    Event,
    EvidenceRequest,
    Record,
    utcnow,
)
from gateway.verify.audit import audit_reads
from tests.services.test_push import (
    no_dns,
    receiver,  # noqa: F401  (fixture)
)

CLAIMANT = "a1" * 32
OTHER = "b2" * 32


@dataclass
class M:
    slug: str
    role: Role
    key: SigningKey | None
    headers: dict[str, str]

    @property
    def id(self) -> bytes:
        return member_id(self.slug)

    @property
    def hex(self) -> str:
        return hex32(self.id)


@pytest.fixture
def world(embedded_chain: Chain, database_url: str,
          tmp_path: Path) -> Iterator[tuple[Services, TestClient, dict[str, M]]]:
    deployment = embedded_chain.deploy()
    sv = build_services(Settings(home=tmp_path, anchor_interval_seconds=3600,
                                 webhook_allow_hosts=["127.0.0.1"]),  # the local receiver
                        chain=embedded_chain, deployment=deployment, db=Database(database_url))
    sv.push.destinations.resolver = no_dns  # public names are registered, never looked up
    registry = embedded_chain.registry(deployment.registry)
    members: dict[str, M] = {}
    for slug, role, signs in [("hospital", Role.HOSPITAL, True), ("police", Role.POLICE, True),
                              ("insurer", Role.INSURER, False), ("insurer2", Role.INSURER, False),
                              ("auditor", Role.AUDITOR, False)]:
        key = SigningKey.generate() if signs else None
        mid = member_id(slug)
        operator = embedded_chain.new_funded_account()
        registry.admit_member(mid, role, slug, [operator])
        if key:
            registry.register_key(mid, key, sender=operator)
        with sv.db.session() as s:
            token = issue_credential(s, mid, "test")
        members[slug] = M(slug, role, key, {"Authorization": f"Bearer {token}"})
    with TestClient(create_app(sv, run_worker=False)) as client:
        BINDERS.append((client, members["hospital"]))
        try:
            yield sv, client, members
        finally:
            BINDERS.clear()


def publish(client: TestClient, m: M, kind: str = "hospital.invoice", subject: str = CLAIMANT,
            issued_at: str = "2026-11-03T10:00:00Z", source: str | None = None) -> str:
    assert m.key is not None
    packet = new_packet(kind=kind, issuer=m.hex, subject=subject, body={"n": "1"},
                        issued_at=issued_at,
                        source=SourceRef(format="csv_bill", sha256=source) if source else None)
    r = client.post("/v1/records", json=sign_packet(packet, m.key).to_json(), headers=m.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["digest"])


def bind(client: TestClient, attester: M, subject: str,
         key: ed25519.Ed25519PrivateKey) -> str:
    """The attester (an institution that knows the claimant) binds the claimant's key."""
    assert attester.key is not None
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    packet = new_packet(kind=BINDING_KIND, issuer=attester.hex, subject=subject,
                        body=binding_body(subject, raw, datetime.now(UTC)))
    r = client.post("/v1/records", json=sign_packet(packet, attester.key).to_json(),
                    headers=attester.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["digest"])


BINDERS: list[tuple[TestClient, M]] = []
"""The world's hospital, which binds every claimant key claim_body makes (set by ``world``)."""


def claim_body(insurer: M, institutions: list[M] | None = None, kinds: list[str] | None = None,
               kind: str = "accident", expires: timedelta = timedelta(days=30),
               subject: str = CLAIMANT, forge: bool = False,
               reference: str = "C-1", key: ed25519.Ed25519PrivateKey | None = None,
               bound: bool = True, signed_at: datetime | None = None) -> dict[str, Any]:
    key = key or ed25519.Ed25519PrivateKey.generate()
    if bound and BINDERS:
        bind(*BINDERS[-1], subject, key)
    scope = ConsentScope(subject=subject, insurer=insurer.hex,
                         institutions=[i.hex for i in institutions or []], kinds=kinds or [],
                         date_from=datetime(2026, 11, 1).date(),
                         date_to=datetime(2026, 11, 30).date(),
                         expires_at=datetime.now(UTC) + expires, signed_at=signed_at)
    signed = scope_bytes(scope) + (b"x" if forge else b"")
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"reference": reference, "subject": subject, "policy": "P-1",
            "incident_date": "2026-11-01", "kind": kind,
            "consent": {"scope": scope.model_dump(mode="json"), "claimant_signature": {
                "algorithm": "ed25519", "public_key": base64.b64encode(pub).decode(),
                "sig": base64.b64encode(key.sign(signed)).decode()}}}


def open_claim(client: TestClient, insurer: M, **kw: Any) -> dict[str, Any]:
    r = client.post("/v1/claims", json=claim_body(insurer, **kw), headers=insurer.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_matching_respects_consent_scope_before_and_after_opening(world: Any) -> None:
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    early = publish(client, h)  # before the claim: attaches when it opens
    publish(client, h, kind="hospital.lab_report")  # kind not consented
    publish(client, h, subject=OTHER)  # another person
    publish(client, h, issued_at="2026-10-01T00:00:00Z")  # outside the date range
    publish(client, p, kind="police.accident_determination")  # institution not consented
    claim = open_claim(client, ins, institutions=[h], kinds=["hospital.invoice",
                                                             "hospital.discharge_summary"])
    assert [r["digest"] for r in claim["records"]] == [early]
    later = publish(client, h, kind="hospital.discharge_summary")
    view = client.get(f"/v1/claims/{claim['id']}", headers=ins.headers).json()
    assert {r["digest"] for r in view["records"]} == {early, later}
    steps = view["timeline"]
    assert [e["type"] for e in steps][:3] == ["claim.opened", "record.received", "record.verified"]
    assert steps[2]["data"]["digest"] == early and steps[2]["data"]["key_id"] == "0x" + (
        h.key.key_id.hex() if h.key else "")


def test_same_source_document_is_shown_once_with_its_duplicate_named(world: Any) -> None:
    sv, client, m = world
    h, ins = m["hospital"], m["insurer"]
    claim = open_claim(client, ins)
    first = publish(client, h, source="cd" * 32)
    again = publish(client, h, source="cd" * 32)  # re-sent export: new salt, new digest
    view = client.get(f"/v1/claims/{claim['id']}", headers=ins.headers).json()
    assert [r["digest"] for r in view["records"]] == [first]
    assert view["records"][0]["duplicates"] == [again]
    assert view["duplicates"][0]["duplicate_of"] == first


def test_consent_withdrawal_and_expiry_stop_payload_reads(world: Any) -> None:
    sv, client, m = world
    h, ins = m["hospital"], m["insurer"]
    claim = open_claim(client, ins)
    digest = publish(client, h)
    ok = client.get(f"/v1/records/{digest}/envelope", headers=ins.headers)
    assert ok.status_code == 200 and ok.json()["payloadType"].startswith("application/vnd.claimx")
    r = client.post(f"/v1/claims/{claim['id']}/consent/withdraw", headers=ins.headers)
    assert r.status_code == 200 and r.json()["consent"]["live"] is False
    denied = client.get(f"/v1/records/{digest}/envelope", headers=ins.headers)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "no_consent"
    after = publish(client, h)
    view = client.get(f"/v1/claims/{claim['id']}", headers=ins.headers).json()
    assert after not in {r["digest"] for r in view["records"]}
    replayed = client.post("/v1/claims", json=claim_body(ins, reference="C-2"),
                           headers=ins.headers)  # a consent that does not say it came later
    assert replayed.status_code == 403
    assert replayed.json()["error"]["code"] == "consent_withdrawn"
    second = open_claim(client, ins, reference="C-2", signed_at=datetime.now(UTC))
    with sv.db.session() as s:  # the consent runs out
        s.get(Consent, second["consent"]["id"]).expires_at = datetime.now(UTC) - timedelta(1)
    r = client.get(f"/v1/records/{after}/envelope", headers=ins.headers)
    assert r.status_code == 403


def test_consent_expiry_given_with_an_offset_is_the_instant_the_claimant_signed(
        world: Any) -> None:
    """SQLite keeps no offset: a +08:00 expiry used to be stored as its wall-clock time and
    read back as UTC (8 hours late, and naive in API responses)."""
    sv, client, m = world
    ins = m["insurer"]
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    key = ed25519.Ed25519PrivateKey.generate()
    body = claim_body(ins, key=key)  # binds the key
    scope = {**body["consent"]["scope"],
             "expires_at": expires.astimezone(timezone(timedelta(hours=8))).isoformat()}
    body["consent"] = {"scope": scope, "claimant_signature": {
        "algorithm": "ed25519", "public_key": base64.b64encode(key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode(),
        "sig": base64.b64encode(key.sign(scope_bytes(scope))).decode()}}
    r = client.post("/v1/claims", json=body, headers=ins.headers)
    assert r.status_code == 201, r.text
    view = client.get(f"/v1/claims/{r.json()['id']}", headers=ins.headers).json()
    assert datetime.fromisoformat(view["consent"]["expires_at"]) == expires
    assert all(datetime.fromisoformat(t).tzinfo is not None for t in
               [view["created_at"], *(e["at"] for e in view["timeline"])])
    with sv.db.session() as s:
        c = s.get(Consent, view["consent"]["id"])
        assert c.expires_at == expires and c.expires_at.utcoffset() == timedelta(0)
        assert consent_live(c, now=expires - timedelta(seconds=1))
        assert not consent_live(c, now=expires + timedelta(seconds=1))


def _scope(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The claim with its consent scope changed (schema errors come before the signature)."""
    consent = body["consent"]
    return {**body, "consent": {**consent, "scope": {**consent["scope"], **changes}}}


@pytest.mark.parametrize(("mutate", "status", "code"), [
    (lambda b, m: claim_body(m["insurer"], forge=True), 422, "bad_consent_signature"),
    (lambda b, m: claim_body(m["insurer2"]), 403, "consent_not_yours"),
    (lambda b, m: claim_body(m["insurer"], expires=timedelta(days=-1)), 422, "consent_expired"),
    (lambda b, m: {**b, "subject": OTHER}, 422, "consent_subject_mismatch"),
    (lambda b, m: {**b, "kind": "fraud"}, 422, "invalid_request"),
    (lambda b, m: _scope(b, kinds=["hospital.invoce"]), 422, "invalid_request"),
    (lambda b, m: _scope(b, kinds=["exchange.access"]), 422, "invalid_request"),
])
def test_bad_claims_are_refused_and_store_nothing(world: Any, mutate: Any, status: int,
                                                  code: str) -> None:
    sv, client, m = world
    body = mutate(claim_body(m["insurer"]), m)
    r = client.post("/v1/claims", json=body, headers=m["insurer"].headers)
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert client.get("/v1/claims", headers=m["insurer"].headers).json() == []


def test_requests_fulfil_decline_and_green_channel_clock(world: Any) -> None:
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    claim = open_claim(client, ins)
    r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                    json={"institution": h.hex, "kinds": ["hospital.invoice",
                                                          "hospital.discharge_summary"]})
    assert r.status_code == 201 and r.json()["urgent"] and r.json()["remaining_seconds"] <= 1800
    req = r.json()["id"]
    mine = client.get("/v1/requests", headers=h.headers).json()
    assert [x["id"] for x in mine] == [req]
    assert client.get("/v1/requests", headers=p.headers).json() == []
    publish(client, h)
    assert client.get("/v1/requests", headers=h.headers).json()[0]["status"] == \
        "partly_fulfilled"
    publish(client, h, kind="hospital.discharge_summary")
    assert client.get("/v1/requests", headers=ins.headers).json()[0]["status"] == "fulfilled"
    r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                    json={"institution": p.hex, "kinds": ["police.accident_determination"]})
    police_req = r.json()["id"]
    with sv.db.session() as s:  # 31 minutes pass without an answer
        er = s.get(EvidenceRequest, police_req)
        er.created_at = er.created_at - timedelta(minutes=31)
        er.due_at = er.due_at - timedelta(minutes=31)
    late = [x for x in client.get("/v1/requests", headers=ins.headers).json()
            if x["id"] == police_req][0]
    assert late["breached"] is True and late["status"] == "open"
    r = client.post(f"/v1/requests/{police_req}/decline", headers=h.headers,
                    json={"reason": "not ours"})
    assert r.status_code == 404  # addressed to the police, not the hospital
    r = client.post(f"/v1/requests/{police_req}/decline", headers=p.headers,
                    json={"reason": "case file sealed by court order"})
    assert r.json()["status"] == "declined"
    view = client.get(f"/v1/claims/{claim['id']}", headers=ins.headers).json()
    assert view["status"] == "ready"


def test_requests_go_to_active_institutions_and_filter_by_shown_status(world: Any) -> None:
    sv, client, m = world
    h, ins = m["hospital"], m["insurer"]
    claim = open_claim(client, ins, kind="routine")
    for who in [m["insurer2"], m["auditor"]]:
        r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                        json={"institution": who.hex, "kinds": ["hospital.invoice"]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_institution"
    r = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                    json={"institution": "0x" + "ee" * 32, "kinds": ["hospital.invoice"]})
    assert r.json()["error"]["loc"] == ["institution"]
    req = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                      json={"institution": h.hex, "kinds": ["hospital.lab_report"]}).json()
    assert [x["id"] for x in client.get("/v1/requests", params={"status": "open"},
                                        headers=h.headers).json()] == [req["id"]]
    with sv.db.session() as s:  # eight days pass: a routine request shows as expired
        s.get(EvidenceRequest, req["id"]).due_at = datetime.now(UTC) - timedelta(days=1)
    expired = client.get("/v1/requests", params={"status": "expired"}, headers=h.headers)
    assert [x["id"] for x in expired.json()] == [req["id"]]
    assert client.get("/v1/requests", params={"status": "open"}, headers=h.headers).json() == []
    bad = client.get("/v1/requests", params={"status": "lost"}, headers=h.headers)
    assert bad.status_code == 422


def test_a_write_is_committed_before_its_response_is_sent(world: Any) -> None:
    """Read-your-writes: when the 201 starts, another connection already sees the claim
    (the session used to commit after the response, so a quick client could miss it)."""
    sv, _client, m = world
    seen: list[int] = []
    app = create_app(sv, run_worker=False)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def spy(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and scope["method"] == "POST":
                with sv.db.session() as s:
                    seen.append(len(s.scalars(select(Claim)).all()))
            await send(message)
        await app(scope, receive, spy)

    with TestClient(recording) as client:
        r = client.post("/v1/claims", json=claim_body(m["insurer"], reference="RYW-1"),
                        headers=m["insurer"].headers)
    assert r.status_code == 201 and seen == [1]


def test_member_directory_is_the_registry(world: Any) -> None:
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    listed = {x["id"]: x for x in client.get("/v1/members", headers=ins.headers).json()}
    assert listed[h.hex]["role"] == "hospital" and listed[p.hex]["role"] == "police"
    assert h.key is not None
    [key] = listed[h.hex]["keys"]
    assert key["key_id"] == "0x" + h.key.key_id.hex() and key["status"] == "valid"
    assert listed[ins.hex]["keys"] == []
    registry = sv.chain.registry(sv.deployment.registry)
    registry.revoke_key(h.id, h.key.key_id)
    one = client.get(f"/v1/members/{h.hex}", headers=p.headers).json()
    assert one["keys"][0]["status"] != "valid"
    missing = client.get("/v1/members/0x" + "ee" * 32, headers=ins.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "member_not_found"
    assert client.get(f"/v1/members/{h.hex}").status_code == 401


def test_deeply_nested_bodies_are_refused_before_any_parser(world: Any) -> None:
    """200 KB of brackets used to kill the gateway process (json.loads overflowed the C
    stack under the recursion limit web3's dependencies set); now a 400 on every route."""
    _sv, client, m = world
    deep = b"[" * 100_000 + b"]" * 100_000
    claim = open_claim(client, m["insurer"])
    for who, path in [("hospital", "/v1/records"), ("hospital", "/v1/records/batch"),
                      ("insurer", "/v1/claims"), ("insurer", f"/v1/claims/{claim['id']}/requests"),
                      ("insurer", "/v1/webhooks"), ("hospital", "/v1/requests/x/decline")]:
        r = client.post(path, content=b'{"a":' + deep + b"}", headers={
            **m[who].headers, "content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep", (path, r.text)
    assert client.get("/v1/claims", headers=m["insurer"].headers).status_code == 200


def test_unknown_routes_answer_in_the_error_body(world: Any) -> None:
    _sv, client, m = world
    r = client.get("/v1/nothing-here", headers=m["insurer"].headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_such_route"
    r = client.put("/v1/claims", headers=m["insurer"].headers)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_closing_a_claim_stops_matching_and_cancels_its_requests(world: Any) -> None:
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    claim = open_claim(client, ins)
    early = publish(client, h)
    req = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                      json={"institution": p.hex, "kinds": ["police.incident_report"]}).json()
    bad = client.post(f"/v1/claims/{claim['id']}/close", headers=ins.headers,
                      json={"outcome": "maybe"})
    assert bad.status_code == 422
    closed = client.post(f"/v1/claims/{claim['id']}/close", headers=ins.headers,
                         json={"outcome": "paid"})
    assert closed.status_code == 200, closed.text
    view = closed.json()
    assert (view["status"], view["outcome"]) == ("closed", "paid") and view["closed_at"]
    assert [r["status"] for r in view["requests"]] == ["cancelled"]
    assert view["timeline"][-1]["type"] == "claim.closed"
    later = publish(client, h, kind="hospital.discharge_summary")
    view = client.get(f"/v1/claims/{claim['id']}", headers=ins.headers).json()
    assert [r["digest"] for r in view["records"]] == [early] and later != early
    told = client.get("/v1/events", headers=p.headers).json()["events"]
    assert [e["data"]["request"] for e in told if e["type"] == "request.cancelled"] == [req["id"]]
    assert client.get("/v1/requests", params={"status": "cancelled"},
                      headers=p.headers).json()[0]["id"] == req["id"]
    again = client.post(f"/v1/claims/{claim['id']}/close", headers=ins.headers,
                        json={"outcome": "denied"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "claim_closed"
    ask = client.post(f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
                      json={"institution": h.hex, "kinds": ["hospital.invoice"]})
    assert ask.status_code == 409 and ask.json()["error"]["code"] == "claim_closed"
    # the decided claim's evidence stays readable under its live consent
    assert client.get(f"/v1/records/{early}/envelope", headers=ins.headers).status_code == 200


def test_overdue_requests_are_announced_once_to_both_sides(world: Any) -> None:
    """The clock sweep pushes a green-channel breach and a routine expiry, each once."""
    sv, client, m = world
    h, p, ins = m["hospital"], m["police"], m["insurer"]
    urgent = open_claim(client, ins)
    routine = open_claim(client, ins, kind="routine", reference="C-2")
    asked = {}
    for claim, who in [(urgent, h), (routine, p), (urgent, p)]:
        asked[(claim["id"], who.slug)] = client.post(
            f"/v1/claims/{claim['id']}/requests", headers=ins.headers,
            json={"institution": who.hex, "kinds": ["hospital.lab_report"]}).json()["id"]
    answered = client.post(f"/v1/claims/{urgent['id']}/requests", headers=ins.headers,
                           json={"institution": h.hex, "kinds": ["hospital.invoice"]}).json()
    publish(client, h)  # fulfils `answered` before its clock runs out
    with sv.db.session() as s:
        assert sweep_clocks(s) == 0  # nothing is due yet
    later = datetime.now(UTC) + timedelta(days=8)
    with sv.db.session() as s:
        assert sweep_clocks(s, later) == 3
    with sv.db.session() as s:
        assert sweep_clocks(s, later + timedelta(hours=1)) == 0  # announced once
        rows = s.scalars(select(Event).where(Event.type.in_(["request.breached",
                                                              "request.expired"]))).all()
    seen = sorted((e.type, "0x" + e.member_id.hex(), json.loads(e.data)["request"])
                  for e in rows)
    expected = sorted([(kind, who.hex, req) for (cid, slug), req in asked.items()
                       for kind in ["request.breached" if cid == urgent["id"]
                                    else "request.expired"]
                       for who in (ins, m[slug])])
    assert seen == expected and answered["id"] not in {r for _, _, r in seen}
    page = client.get("/v1/events", headers=p.headers).json()["events"]
    assert {e["type"] for e in page} >= {"request.opened", "request.breached",
                                         "request.expired"}


def test_erasure_destroys_payload_but_not_proofs(world: Any) -> None:
    sv, client, m = world
    h, ins = m["hospital"], m["insurer"]
    open_claim(client, ins)
    digest = publish(client, h)
    sv.worker.cycle()
    assert client.post(f"/v1/records/{digest}/erase", headers=ins.headers).status_code == 403
    assert client.post(f"/v1/records/{digest}/erase", headers=h.headers).status_code == 200
    for who in (h, ins):
        r = client.get(f"/v1/records/{digest}/envelope", headers=who.headers)
        assert r.status_code == 410 and r.json()["error"]["code"] == "erased"
    with sv.db.session() as s:
        rec = s.scalar(select(Record).where(Record.digest == bytes.fromhex(digest)))
        assert rec.payload_ct is None
    proof = client.get(f"/v1/records/{digest}/proof", headers=m["auditor"].headers).json()
    head = sv.chain.evidence_log(sv.deployment.log).head_at(proof["tree_head"]["head_index"])
    merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(digest)), proof["leaf_index"],
                            head.size, [bytes.fromhex(x) for x in proof["inclusion_proof"]],
                            head.root)


def test_every_payload_read_is_logged_and_anchored(world: Any) -> None:
    sv, client, m = world
    h, ins, aud = m["hospital"], m["insurer"], m["auditor"]
    claim = open_claim(client, ins)
    digest = publish(client, h)
    client.get(f"/v1/records/{digest}/envelope", headers=ins.headers)
    client.get(f"/v1/records/{digest}/envelope", headers=h.headers)
    reads = client.get(f"/v1/records/{digest}/access-log", headers=aud.headers).json()["reads"]
    assert [(r["member"], r["claim_id"]) for r in reads] == [(ins.hex, claim["id"]),
                                                             (h.hex, None)]
    sv.worker.cycle()
    for r in reads:
        entry = client.get(f"/v1/records/{r['log_entry']}", headers=aud.headers).json()
        assert entry["kind"] == "exchange.access" and entry["status"] == "anchored"
    consent = client.get(f"/v1/records/{claim['consent']['digest']}", headers=aud.headers)
    assert consent.json()["kind"] == "insurer.consent"


def _auditor_fetch(client: TestClient, auditor: M) -> Any:
    def get(path: str) -> dict[str, Any]:
        r = client.get(path, headers=auditor.headers)
        assert r.status_code == 200, (path, r.text)
        return r.json()  # type: ignore[no-any-return]
    return get


def test_auditor_proves_every_read_was_consented_from_the_chain(world: Any) -> None:
    sv, client, m = world
    h, ins, ins2, aud = m["hospital"], m["insurer"], m["insurer2"], m["auditor"]
    claim = open_claim(client, ins)
    digest = publish(client, h)
    sv.worker.cycle()
    assert client.get(f"/v1/records/{digest}/receipt", headers=ins.headers).status_code == 200
    assert client.get(f"/v1/records/{digest}/envelope", headers=h.headers).status_code == 200
    # auditors read the exchange's own entries, never the evidence itself
    assert client.get(f"/v1/records/{digest}/envelope", headers=aud.headers).status_code == 403
    sv.worker.cycle()
    reads = audit_reads(digest, _auditor_fetch(client, aud), sv.chain, sv.deployment.log)
    assert [(r.member, r.claim_id, r.report.valid) for r in reads] == [
        (ins.hex, claim["id"], True), (h.hex, None, True)]
    assert [c.name for c in reads[0].report.checks] == [
        "read entry on chain", "consent entry on chain", "claimant signature",
        "consent covers the read", "binding entry on chain", "binding attester",
        "binding binds the claimant", "binding not revoked before the read"]
    assert reads[1].report.checks[-1].detail.startswith("the record's issuer")

    # a read the exchange logged without a consent that allows it is exposed: another
    # insurer citing this claim's consent, and a non-issuer reading with no consent at all
    consent = bytes.fromhex(claim["consent"]["digest"])
    with sv.db.session() as s:
        rec = s.scalar(select(Record).where(Record.digest == bytes.fromhex(digest)))
        for member, cites in [(ins2, consent), (m["police"], None)]:
            entry = sv.ledger.append(s, "exchange.access", rec.subject, {
                "member": member.hex, "record": digest, "claim": claim["id"],
                "consent": cites.hex() if cites else None})
            s.add(AccessLog(member_id=member.id, record_digest=rec.digest,
                            claim_id=claim["id"], consent_id=None, entry_digest=entry))
    sv.worker.cycle()
    reads = audit_reads(digest, _auditor_fetch(client, aud), sv.chain, sv.deployment.log)
    forged = {r.member: r.report for r in reads[2:]}
    assert not forged[ins2.hex].valid and "names another insurer" in \
        forged[ins2.hex].checks[-1].detail
    assert not forged[m["police"].hex].valid and forged[m["police"].hex].checks[-1].name == \
        "allowed by"


@pytest.mark.parametrize("kind", ["exchange.access", "insurer.consent"])
def test_nobody_publishes_the_exchanges_own_entries(world: Any, kind: str) -> None:
    """A forged "read" or "consent" entry signed by a hospital would mislead an auditor."""
    sv, client, m = world
    h = m["hospital"]
    assert h.key is not None
    env = sign_packet(new_packet(kind=kind, issuer=h.hex, subject=CLAIMANT,
                                 body={"member": h.hex}), h.key).to_json()
    r = client.post("/v1/records", json=env, headers=h.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "reserved_kind"
    r = client.post("/v1/records/batch", json={"envelopes": [env]}, headers=h.headers)
    assert r.status_code == 403 and "reserved_kind" in r.text
    with sv.db.session() as s:
        assert s.scalar(select(Record).where(Record.kind == kind)) is None


ALL = {"hospital", "police", "insurer", "insurer2", "auditor"}
ROUTES: list[tuple[str, str, set[str]]] = [
    # method, path template, roles allowed (others must get 401/403/404, never 2xx or 5xx)
    ("POST", "/v1/records", {"hospital", "police"}),
    ("POST", "/v1/records/batch", {"hospital", "police"}),
    ("GET", "/v1/records/{digest}", {"hospital", "police", "insurer", "insurer2", "auditor"}),
    ("GET", "/v1/records/{digest}/envelope", {"hospital", "insurer"}),
    ("GET", "/v1/records/{digest}/receipt", {"hospital", "insurer"}),
    ("GET", "/v1/records/{digest}/proof", {"hospital", "police", "insurer", "insurer2",
                                           "auditor"}),
    ("GET", "/v1/records/{digest}/access-log", {"hospital", "auditor"}),
    ("POST", "/v1/records/{digest}/erase", {"hospital"}),
    ("GET", "/v1/log/head", {"hospital", "police", "insurer", "insurer2", "auditor"}),
    ("POST", "/v1/claims", {"insurer", "insurer2"}),
    ("GET", "/v1/claims", {"insurer", "insurer2"}),
    ("GET", "/v1/claims/{claim}", {"insurer"}),
    ("POST", "/v1/claims/{claim}/requests", {"insurer"}),
    ("POST", "/v1/claims/{claim}/consent/withdraw", {"insurer"}),
    ("POST", "/v1/claims/{claim}/close", {"insurer"}),
    ("POST", "/v1/consents/withdraw", ALL | {"anonymous"}),  # the claimant's signature decides
    ("GET", "/v1/bindings/{binding}", {"hospital", "auditor"}),  # its attester and auditors
    ("GET", "/v1/requests", {"hospital", "police", "insurer", "insurer2"}),
    ("POST", "/v1/requests/{request}/decline", {"hospital"}),
    ("GET", "/v1/log/consistency?first=1&second=2", ALL),
    ("POST", "/v1/webhooks", ALL),
    ("GET", "/v1/webhooks", ALL),
    ("DELETE", "/v1/webhooks/{endpoint}", {"insurer"}),
    ("GET", "/v1/webhooks/deliveries", ALL),
    ("POST", "/v1/webhooks/deliveries/{delivery}/replay", {"insurer"}),
    ("GET", "/v1/events", ALL),
    ("GET", "/v1/claims/{claim}/events", {"insurer"}),
    ("GET", "/v1/members", ALL),
    ("GET", "/v1/members/{member}", ALL),
    ("POST", "/v1/claims/{claim}/share", {"insurer"}),
    ("GET", "/v1/claims/{claim}/share", {"insurer"}),
    ("DELETE", "/v1/claims/{claim}/share/{share}", {"insurer"}),
    ("GET", "/v1/progress", set()),  # a share link's token, never a member credential
    ("GET", "/v1/status", set()),  # the consortium operator only (no operator in this world)
]


def test_authorisation_matrix_covers_every_route(world: Any) -> None:
    """A new route cannot slip past the matrix below."""
    _sv, client, _m = world
    served = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path))
              for path, ops in client.app.openapi()["paths"].items() for method in ops
              if path not in ("/healthz", "/readyz", "/metrics")}  # unauthenticated ops routes
    listed = {(method, re.sub(r"\{[^}]+\}", "{}", template.split("?")[0]))
              for method, template, _ in ROUTES}
    assert served == listed


@pytest.mark.slow  # every route as every role: ~20 s
def test_authorisation_matrix(world: Any) -> None:
    """Every role tries every route; the ones it should not reach refuse it clearly."""
    sv, client, m = world
    h = m["hospital"]
    refused, n = 0, 0
    for method, template, allowed in ROUTES:
        for who in [*m.values(), None]:
            n += 1
            person = f"{n:064x}"  # a claimant per round, so claims do not pile up on one person
            claim = open_claim(client, m["insurer"], reference=f"M-{n}", subject=person)
            digest = publish(client, h, subject=person)
            if "receipt" in template or "proof" in template:
                sv.worker.cycle()
            req = client.post(f"/v1/claims/{claim['id']}/requests", headers=m["insurer"].headers,
                              json={"institution": h.hex, "kinds": ["hospital.lab_report"]}
                              ).json()["id"]
            endpoint, delivery = (_parked_delivery(sv, m["insurer"]) if "webhooks/" in template
                                  else ("", 0))
            share = (client.post(f"/v1/claims/{claim['id']}/share",
                                 headers=m["insurer"].headers).json()["id"]
                     if "share/" in template else "")
            claimant = ed25519.Ed25519PrivateKey.generate()
            binding = (bind(client, h, person, claimant)
                       if "bindings" in template or "consents" in template else "")
            path = template.format(digest=digest, claim=claim["id"], request=req,
                                   endpoint=endpoint, delivery=delivery, member=h.hex,
                                   share=share, binding=binding)
            body = (_withdrawal(claimant, person, m["insurer"]) if "consents" in template
                    else _body(template, m, who))
            headers = who.headers if who else {}
            r = client.request(method, path, json=body, headers=headers)
            name = who.slug if who else "anonymous"
            assert r.status_code < 500, (method, path, name, r.text)
            if name in allowed:
                assert r.status_code < 300, (method, template, name, r.text)
            else:
                assert r.status_code in (401, 403, 404), (method, template, name, r.text)
                assert "code" in r.json()["error"]
                refused += 1
            _remove_endpoints(sv, m.values())  # members hold at most 10
    assert refused > 40


def _parked_delivery(sv: Services, owner: M) -> tuple[str, int]:
    """An endpoint of ``owner`` with one parked delivery (as after a receiver kept failing)."""
    with sv.db.session() as s:
        endpoint, _ = register_endpoint(s, owner.id, "http://127.0.0.1:9/hook",
                                        destinations=sv.push.destinations, vault=sv.vault)
        event = Event(member_id=owner.id, type="claim.opened", data="{}")
        s.add(event)
        s.flush()
        d = Delivery(endpoint_id=endpoint.id, event_id=event.id, status="parked", attempts=6,
                     next_attempt_at=utcnow())
        s.add(d)
        s.flush()
        return endpoint.id, d.id


def _remove_endpoints(sv: Services, members: Iterable[M]) -> None:
    with sv.db.session() as s:
        for who in members:
            for endpoint in list_endpoints(s, who.id):
                remove_endpoint(s, who.id, endpoint.id)


def _withdrawal(key: ed25519.Ed25519PrivateKey, subject: str, insurer: M) -> dict[str, Any]:
    statement = {"subject": subject, "insurer": insurer.hex,
                 "withdrawn_at": datetime.now(UTC).isoformat()}
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"withdrawal": statement, "claimant_signature": {
        "algorithm": "ed25519", "public_key": base64.b64encode(pub).decode(),
        "sig": base64.b64encode(key.sign(canonical_bytes(statement))).decode()}}


def _body(template: str, m: dict[str, M], who: M | None) -> Any:
    if template == "/v1/records" or template == "/v1/records/batch":
        signer = who if who is not None and who.key is not None else m["hospital"]
        assert signer.key is not None
        env = sign_packet(new_packet(kind="police.incident_report" if signer.slug == "police"
                                     else "hospital.invoice", issuer=signer.hex,
                                     subject=CLAIMANT, body={}), signer.key).to_json()
        return {"envelopes": [env]} if template.endswith("batch") else env
    if template == "/v1/claims":
        insurer = who if who is not None and who.role == Role.INSURER else m["insurer"]
        return claim_body(insurer, reference=f"R-{datetime.now().timestamp()}")
    if template.endswith("/requests"):
        return {"institution": m["police"].hex, "kinds": ["police.incident_report"]}
    if template.endswith("/decline"):
        return {"reason": "no such case"}
    if template == "/v1/webhooks":
        return {"url": "https://claims.example-insurer.cn/claimx"}
    if template.endswith("/close"):
        return {"outcome": "paid"}
    return None


def test_insurer_is_pushed_records_as_they_arrive(world: Any, receiver: Any) -> None:  # noqa: F811
    """The whole path: webhook registered over the API, claim opened, record published,
    the push worker delivers signed events to a real local receiver."""
    sv, client, m = world
    h, ins = m["hospital"], m["insurer"]
    hook = client.post("/v1/webhooks", json={"url": receiver.url}, headers=ins.headers)
    assert hook.status_code == 201, hook.text
    receiver.secret = hook.json()["secret"]
    claim = open_claim(client, ins)
    digest = publish(client, h)
    sv.push.fan_out()
    sv.push.deliver_due()
    got = [json.loads(r.body) for r in receiver.got]
    assert all(r.verified for r in receiver.got) and receiver.got
    types = [g["event"]["type"] for g in got]
    assert types[:2] == ["claim.opened", "record.received"]
    received = got[types.index("record.received")]["event"]
    assert received["claim_id"] == claim["id"] and received["data"]["digest"] == digest
    assert client.get("/v1/webhooks", headers=h.headers).json() == []  # the insurer's own
