"""Consent only the real claimant can give, tried as an attacker: unbound, self-bound, bound
by a member that may not attest or no longer can, revoked bindings, and a second key or an
old artifact to sidestep a withdrawal; the claimant withdraws without the insurer."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from gateway.core.binding import BINDING_KIND, BINDING_REVOKED_KIND
from gateway.core.canonical import canonical_bytes
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from tests.services import claims_support
from tests.services.claims_support import (
    CLAIMANT,
    M,
    bind,
    bind_past_the_route,
    claim_body,
    publish,
    with_key,
)

world = claims_support.world  # the fixture


def refused(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


def post_claim(client: TestClient, ins: M, **kw: Any) -> Any:
    return client.post("/v1/claims", json=claim_body(ins, **kw), headers=ins.headers)


def test_unbound_key_is_refused(world: Any) -> None:
    _, client, m = world
    refused(post_claim(client, m["insurer"], bound=False), 403, "claimant_key_unbound")


def test_insurer_binding_its_own_key_is_refused(world: Any) -> None:
    sv, client, m = world
    ins = with_key(sv, m["insurer"])
    key = ed25519.Ed25519PrivateKey.generate()
    refused(client.post("/v1/records", headers=ins.headers, json=sign_packet(new_packet(
        kind=BINDING_KIND, issuer=ins.hex, subject=CLAIMANT, body={}), ins.key).to_json()
        if ins.key else {}), 403, "role_forbidden")
    bind_past_the_route(sv, ins, key)  # the insurer "attests" a key it made itself
    refused(post_claim(client, ins, key=key, bound=False), 403, "claimant_key_self_bound")
    other = with_key(sv, m["insurer2"])  # a colluding insurer may not attest either
    bind_past_the_route(sv, other, key)
    refused(post_claim(client, ins, key=key, bound=False), 403,
            "binding_attester_not_allowed")


def test_binding_by_suspended_or_revoked_attester_does_not_count(world: Any) -> None:
    sv, client, m = world
    registry = sv.chain.registry(sv.deployment.registry)
    police = m["police"]
    key = ed25519.Ed25519PrivateKey.generate()
    bind(client, police, CLAIMANT, key)
    assert police.key is not None
    registry.revoke_key(police.id, police.key.key_id)
    refused(post_claim(client, m["insurer"], key=key, bound=False), 403,
            "binding_attester_invalid")
    key2 = ed25519.Ed25519PrivateKey.generate()
    bind(client, m["hospital"], CLAIMANT, key2)
    registry.suspend_member(m["hospital"].id)
    refused(post_claim(client, m["insurer"], key=key2, bound=False, reference="C-2"), 403,
            "binding_attester_invalid")


def test_revoked_binding_refuses_claims_and_stops_reads(world: Any) -> None:
    _, client, m = world
    h, ins = m["hospital"], m["insurer"]
    key = ed25519.Ed25519PrivateKey.generate()
    digest = bind(client, h, CLAIMANT, key)
    record = publish(client, h)
    claim = client.post("/v1/claims", json=claim_body(ins, key=key, bound=False),
                        headers=ins.headers).json()
    assert client.get(f"/v1/records/{record}/envelope", headers=ins.headers).status_code == 200
    assert h.key is not None
    revocation = new_packet(kind=BINDING_REVOKED_KIND, issuer=h.hex, subject=CLAIMANT,
                            body={"binding": digest, "reason": "key reported lost"})
    r = client.post("/v1/records", json=sign_packet(revocation, h.key).to_json(),
                    headers=h.headers)
    assert r.status_code == 201, r.text
    refused(client.get(f"/v1/records/{record}/envelope?claim={claim['id']}",
                       headers=ins.headers), 403, "no_consent")
    refused(post_claim(client, ins, key=key, bound=False, reference="C-2"), 403,
            "binding_revoked")


def withdrawal(key: ed25519.Ed25519PrivateKey, ins: M, at: datetime | None = None
               ) -> dict[str, Any]:
    statement = {"subject": CLAIMANT, "insurer": ins.hex,
                 "withdrawn_at": (at or datetime.now(UTC)).isoformat()}
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"withdrawal": statement, "claimant_signature": {
        "algorithm": "ed25519", "public_key": base64.b64encode(raw).decode(),
        "sig": base64.b64encode(key.sign(canonical_bytes(statement))).decode()}}


def test_claimant_withdraws_alone_and_a_second_key_cannot_sidestep_it(world: Any) -> None:
    _, client, m = world
    h, ins = m["hospital"], m["insurer"]
    record = publish(client, h)
    key = ed25519.Ed25519PrivateKey.generate()
    bind(client, h, CLAIMANT, key)
    first = client.post("/v1/claims", json=claim_body(ins, key=key, bound=False),
                        headers=ins.headers).json()
    old = claim_body(ins, reference="C-2")  # a second consent, signed (bound key) before
    second = client.post("/v1/claims", json=old, headers=ins.headers).json()
    stranger = ed25519.Ed25519PrivateKey.generate()  # unbound: cannot withdraw for them
    refused(client.post("/v1/consents/withdraw", json=withdrawal(stranger, ins)), 403,
            "claimant_key_unbound")
    forged = withdrawal(key, ins)
    forged["withdrawal"]["insurer"] = m["insurer2"].hex
    refused(client.post("/v1/consents/withdraw", json=forged), 422,
            "bad_withdrawal_signature")
    refused(client.post("/v1/consents/withdraw",
                        json=withdrawal(key, ins, datetime.now(UTC) - timedelta(hours=1))),
            422, "withdrawal_stale")
    r = client.post("/v1/consents/withdraw", json=withdrawal(key, ins))  # no credential
    assert r.status_code == 201, r.text
    for claim in (first, second):  # every consent of the claimant to this insurer
        refused(client.get(f"/v1/records/{record}/envelope?claim={claim['id']}",
                           headers=ins.headers), 403, "no_consent")
    # sidesteps: an unbound second key, the old artifact replayed, an old bound signature
    refused(post_claim(client, ins, bound=False, reference="C-3"), 403,
            "claimant_key_unbound")
    refused(client.post("/v1/claims", json=dict(old, reference="C-4"), headers=ins.headers),
            403, "consent_withdrawn")
    # the claimant consenting again, with a bound key, after the withdrawal: counts
    again = claim_body(ins, reference="C-5")
    again["consent"] = _resigned(again, datetime.now(UTC) + timedelta(seconds=1))
    assert client.post("/v1/claims", json=again, headers=ins.headers).status_code == 201


def _resigned(body: dict[str, Any], signed_at: datetime) -> dict[str, Any]:
    """Re-sign the consent with a signing time (a fresh bound key, bound by the hospital)."""
    key = ed25519.Ed25519PrivateKey.generate()
    from tests.services.claims_support import BINDERS
    bind(*BINDERS[-1], CLAIMANT, key)
    scope = dict(body["consent"]["scope"], signed_at=signed_at.isoformat())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {"scope": scope, "claimant_signature": {
        "algorithm": "ed25519", "public_key": base64.b64encode(raw).decode(),
        "sig": base64.b64encode(key.sign(canonical_bytes(scope))).decode()}}
