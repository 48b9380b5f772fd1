"""Keys re-checked at logging time, tried as an attacker: records signed in the seconds after
a key's revocation (or the member's suspension) pass the publish-time key cache, and must
still never be appended, shown verified or given a receipt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.errors import ConflictError
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.services.receipts import build_receipt
from gateway.services.records import metadata
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.store.tables import Event, Record
from tests.support import Institution, admit


def envelope(inst: Institution, key: SigningKey, n: int) -> dict[str, object]:
    packet = new_packet(kind="hospital.lab_report", issuer=inst.issuer, subject="ee" * 32,
                        body={"n": n})
    return sign_packet(packet, key).to_json()


@pytest.fixture
def services(chain: Chain, deployment: Deployment, database_url: str,
             tmp_path: Path) -> Services:
    return build_services(Settings(home=tmp_path, key_cache_seconds=10), chain=chain,
                          deployment=deployment, db=Database(database_url))


def status(sv: Services, digest: bytes) -> dict[str, object]:
    with sv.db.session() as s:
        rec = s.scalar(select(Record).where(Record.digest == digest))
        assert rec is not None
        return metadata(s, rec)


def rejected_events(sv: Services, inst: Institution) -> list[dict[str, object]]:
    with sv.db.session() as s:
        return [json.loads(e.data) for e in s.scalars(
            select(Event).where(Event.member_id == inst.id, Event.type == "record.rejected"))]


@pytest.mark.parametrize("how", ["revoke_key", "suspend_member"])
def test_record_published_after_revocation_is_rejected_never_appended(
        services: Services, chain: Chain, deployment: Deployment, how: str) -> None:
    sv = services
    hospital = admit(chain, deployment, "hospital.revoked")
    before = sv.publisher.publish([envelope(hospital, hospital.key, 0)])[0]
    sv.worker.cycle()  # logged and anchored while the key is valid
    registry = chain.registry(deployment.registry)
    if how == "revoke_key":
        registry.revoke_key(hospital.id, hospital.key.key_id)
    else:
        registry.suspend_member(hospital.id)
    # the publish-time cache still says "valid" for up to 10 s: the attack window
    late = [sv.publisher.publish([envelope(hospital, hospital.key, i)])[0] for i in (1, 2)]
    size_before = status(sv, before.digest)["leaf_index"]
    sv.worker.cycle()
    code = "key_revoked" if how == "revoke_key" else "member_suspended"
    for acc in late:
        meta = status(sv, acc.digest)
        assert meta["status"] == "rejected" and meta["reject_code"] == code
        assert meta["leaf_index"] is None, "a rejected record is never appended"
        with sv.db.session() as s, pytest.raises(ConflictError) as refused:
            build_receipt(s, acc.digest, sv.chain_ref, {})
        assert refused.value.code == "record_rejected"
    assert status(sv, before.digest)["status"] == "anchored"  # signed in time: stays good
    assert size_before == 0
    events = rejected_events(sv, hospital)
    assert sorted(e["digest"] for e in events) == sorted(a.digest.hex() for a in late)
    assert {e["code"] for e in events} == {code}
    sv.worker.cycle()  # nothing is left pending: rejected records are not retried
    assert status(sv, late[0].digest)["status"] == "rejected"


def test_rejected_digest_republished_under_a_new_key_is_accepted(
        services: Services, chain: Chain, deployment: Deployment) -> None:
    sv = services
    hospital = admit(chain, deployment, "hospital.rotates")
    registry = chain.registry(deployment.registry)
    packet = new_packet(kind="hospital.lab_report", issuer=hospital.issuer,
                        subject="ee" * 32, body={"n": 7})
    first = sv.publisher.publish([sign_packet(packet, hospital.key).to_json()])[0]
    registry.revoke_key(hospital.id, hospital.key.key_id, sender=hospital.operator)
    sv.worker.cycle()
    assert status(sv, first.digest)["status"] == "rejected"
    new_key = SigningKey.generate()
    registry.register_key(hospital.id, new_key, sender=hospital.operator)
    again = sv.publisher.publish([sign_packet(packet, new_key).to_json()])[0]
    assert again.digest == first.digest and not again.duplicate, "rejected is no duplicate"
    sv.worker.cycle()
    meta = status(sv, first.digest)
    assert meta["status"] == "anchored" and meta["reject_code"] is None
    with sv.db.session() as s:
        rows = s.scalars(select(Record).where(Record.digest == first.digest)).all()
        assert len(rows) == 1 and rows[0].key_id == new_key.key_id
        receipt = build_receipt(s, first.digest, sv.chain_ref, {})
    assert receipt.leaf_index == meta["leaf_index"]
    assert sv.publisher.publish([sign_packet(packet, new_key).to_json()])[0].duplicate
