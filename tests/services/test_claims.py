"""The insurer's claims over HTTP: opening under a signed consent, matching records to the
consent's scope, withdrawal and expiry, refused claims, closing, and pushes as records arrive."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.app import create_app
from gateway.core.consent import scope_bytes
from gateway.services.claims import consent_live
from gateway.store.tables import (
    Claim,
    Consent,
)
from tests.services.claims_support import (
    OTHER,
    claim_body,
    open_claim,
    publish,
)


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
