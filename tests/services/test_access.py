"""Payload access: erasure destroys the payload but not the proofs, every read is logged and
anchored, an auditor proves each read was consented, and nobody publishes the exchange's
own entries."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gateway.core import merkle
from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.store.tables import (
    AccessLog,
    Record,
    RecordPayload,
)
from gateway.verify.audit import audit_reads
from tests.services.claims_support import (
    CLAIMANT,
    _auditor_fetch,
    open_claim,
    publish,
)


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
        assert s.get(RecordPayload, rec.id).sealed is None and rec.erased_at is not None
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
