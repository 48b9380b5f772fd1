"""`claimx audit`'s binding links, tried as an attacker: a read the exchange logged after the
binding's revocation, a consent anchored after its attester's suspension, a consent entry
citing a binding of another key, and a binding by the reading insurer itself each fail and
name their link; a valid chain (key bound by the hospital, consent, read) passes every link."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from gateway.core.binding import BINDING_REVOKED_KIND
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.store.tables import AccessLog, IdentityBinding, Record
from gateway.verify.audit import ReadAudit, audit_reads
from tests.services import claims_support
from tests.services.claims_support import (
    CLAIMANT,
    M,
    _auditor_fetch,
    bind,
    bind_past_the_route,
    claim_body,
    publish,
    with_key,
)

world = claims_support.world  # the fixture

LINKS = ["read entry on chain", "consent entry on chain", "claimant signature",
         "consent covers the read", "binding entry on chain", "binding attester",
         "binding binds the claimant", "binding not revoked before the read"]


def opened(client: Any, ins: M, attester: M, key: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    binding = bind(client, attester, CLAIMANT, key)
    r = client.post("/v1/claims", json=claim_body(ins, key=key, bound=False),
                    headers=ins.headers)
    assert r.status_code == 201, r.text
    return {**r.json(), "binding": binding}


def read(client: Any, who: M, digest: str, claim: str) -> None:
    r = client.get(f"/v1/records/{digest}/envelope?claim={claim}", headers=who.headers)
    assert r.status_code == 200, r.text


def log_read(sv: Any, who: M, digest: str, claim: str, consent: str) -> None:
    """The exchange logs a read the gateway's rules would refuse (a hostile or buggy operator)."""
    with sv.db.session() as s:
        rec = s.scalar(select(Record).where(Record.digest == bytes.fromhex(digest)))
        entry = sv.ledger.append(s, "exchange.access", rec.subject, {
            "member": who.hex, "record": digest, "claim": claim, "consent": consent})
        s.add(AccessLog(member_id=who.id, record_digest=rec.digest, claim_id=claim,
                        consent_id=None, entry_digest=entry))


def audit(sv: Any, client: Any, m: dict[str, M], digest: str) -> list[ReadAudit]:
    return audit_reads(digest, _auditor_fetch(client, m["auditor"]), sv.chain,
                       sv.deployment.log)


def failed(r: ReadAudit) -> tuple[str, str]:
    assert not r.report.valid
    c = next(c for c in r.report.checks if not c.ok)
    return c.name, c.detail


def test_valid_chain_passes_every_link(world: Any) -> None:
    sv, client, m = world
    claim = opened(client, m["insurer"], m["hospital"], ed25519.Ed25519PrivateKey.generate())
    digest = publish(client, m["police"], kind="police.incident_report")
    sv.worker.cycle()
    read(client, m["insurer"], digest, claim["id"])
    sv.worker.cycle()
    (r,) = audit(sv, client, m, digest)
    assert r.report.valid, r.report.to_dict()
    assert [c.name for c in r.report.checks] == LINKS
    assert "hospital member" in r.report.checks[5].detail
    assert r.report.checks[-1].detail == "the gateway lists no revocation"


def test_read_after_the_bindings_revocation_fails_and_names_the_link(world: Any) -> None:
    sv, client, m = world
    h, ins = m["hospital"], m["insurer"]
    claim = opened(client, ins, h, ed25519.Ed25519PrivateKey.generate())
    digest = publish(client, m["police"], kind="police.incident_report")
    sv.worker.cycle()
    read(client, ins, digest, claim["id"])  # before the revocation: proven
    assert h.key is not None
    revocation = new_packet(kind=BINDING_REVOKED_KIND, issuer=h.hex, subject=CLAIMANT,
                            body={"binding": claim["binding"], "reason": "key reported lost"})
    r = client.post("/v1/records", json=sign_packet(revocation, h.key).to_json(),
                    headers=h.headers)
    assert r.status_code == 201, r.text
    sv.worker.cycle()
    assert client.get(f"/v1/records/{digest}/envelope?claim={claim['id']}",
                      headers=ins.headers).status_code == 403  # the gateway stops reads
    log_read(sv, ins, digest, claim["id"], claim["consent"]["digest"])  # ...a hostile one not
    sv.worker.cycle()
    before, after = audit(sv, client, m, digest)
    assert before.report.valid, before.report.to_dict()
    assert before.report.checks[-1].detail.startswith("revoked after the read")
    name, detail = failed(after)
    assert name == "binding not revoked before the read" and "before the read" in detail


def test_consent_anchored_after_its_attesters_suspension_fails(world: Any) -> None:
    sv, client, m = world
    police, ins = m["police"], m["insurer"]
    key = ed25519.Ed25519PrivateKey.generate()
    bind(client, police, CLAIMANT, key)
    sv.worker.cycle()  # the binding is anchored while the police bureau is a member
    digest = publish(client, m["hospital"])
    r = client.post("/v1/claims", json=claim_body(ins, key=key, bound=False),
                    headers=ins.headers)
    assert r.status_code == 201, r.text
    claim = r.json()
    sv.chain.registry(sv.deployment.registry).suspend_member(police.id)
    sv.worker.cycle()  # the consent is anchored after the attester's suspension
    read(client, ins, digest, claim["id"])
    sv.worker.cycle()
    (r_,) = audit(sv, client, m, digest)
    name, detail = failed(r_)
    assert name == "binding attester", (name, detail)
    assert "suspended" in detail, detail


def test_consent_citing_a_binding_of_another_key_fails(world: Any) -> None:
    sv, client, m = world
    ins = m["insurer"]
    claim = opened(client, ins, m["hospital"], ed25519.Ed25519PrivateKey.generate())
    other = bind(client, m["hospital"], CLAIMANT, ed25519.Ed25519PrivateKey.generate())
    digest = publish(client, m["hospital"])
    with sv.db.session() as s:  # the exchange logs the same consent citing another key's binding
        consent = client.get(f"/v1/records/{claim['consent']['digest']}/envelope",
                             headers=m["auditor"].headers)
        assert consent.status_code == 200, consent.text
        body = dict(new_consent_body(consent.json()), binding=other)
        forged = sv.ledger.append(s, "insurer.consent", CLAIMANT, body).hex()
    sv.worker.cycle()
    log_read(sv, ins, digest, claim["id"], forged)
    sv.worker.cycle()
    reads = audit(sv, client, m, digest)
    name, detail = failed(reads[-1])
    assert name == "binding binds the claimant" and "another key" in detail


def test_consent_under_an_insurers_own_binding_fails(world: Any) -> None:
    """An exchange that let an insurer "attest" its own key is exposed link by link."""
    sv, client, m = world
    ins = with_key(sv, m["insurer"])
    key = ed25519.Ed25519PrivateKey.generate()
    bind_past_the_route(sv, ins, key)  # the insurer binds a key it made itself
    honest = opened(client, ins, m["hospital"], ed25519.Ed25519PrivateKey.generate())
    digest = publish(client, m["hospital"])
    sv.worker.cycle()
    with sv.db.session() as s:
        self_bound = s.scalar(select(IdentityBinding.digest).where(
            IdentityBinding.attester == ins.id)).hex()
        body = claim_body(ins, key=key, bound=False)
        forged = sv.ledger.append(s, "insurer.consent", CLAIMANT, {
            "claim": honest["id"], "artifact": body["consent"], "binding": self_bound}).hex()
    log_read(sv, ins, digest, honest["id"], forged)
    sv.worker.cycle()
    name, detail = failed(audit(sv, client, m, digest)[-1])
    assert name == "binding attester" and "insurer members may not attest" in detail


def new_consent_body(envelope: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(envelope["payload"]))["body"])
