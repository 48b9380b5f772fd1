"""Acceptance promises on a real EVM and database, tried as an institution holding the
exchange to them: every publish gets one signed by the operator's registered key, it is kept
by anchoring or ended by a justified signed rejection, and withholding a record is caught."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.core.promise import Extension, Promise, PromiseBundle, Rejection, sign
from gateway.core.types import hex32
from gateway.services.publish import store_checked
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
from gateway.store.tables import PromiseBatchRow, PromiseLeafRow, PromiseRow
from gateway.verify.promise import PromiseReport, verify_promise
from tests.support import Institution, admit, advance_time


def envelope(inst: Institution, n: int, urgent: bool = False) -> dict[str, Any]:
    packet = new_packet(kind="hospital.lab_report", issuer=inst.issuer, subject="ab" * 32,
                        body={"n": n}, urgent=urgent)
    return sign_packet(packet, inst.key).to_json()


def make_services(chain: Chain, deployment: Deployment, database_url: str, home: Path,
                  **settings: Any) -> Services:
    return build_services(Settings(home=home, key_cache_seconds=10, **settings), chain=chain,
                          deployment=deployment, db=Database(database_url))


@pytest.fixture
def services(chain: Chain, deployment: Deployment, database_url: str,
             tmp_path: Path) -> Services:
    return make_services(chain, deployment, database_url, tmp_path)


def bundle(sv: Services, digest: bytes) -> PromiseBundle:
    with sv.db.session() as s:
        return sv.promises.bundle(s, digest, sv.cache)


def check(sv: Services, b: PromiseBundle, now: int | None = None,
          log: str | None = None) -> PromiseReport:
    at = max(int(time.time()), sv.chain.now()) if now is None else now
    return verify_promise(b, sv.chain, log or sv.deployment.log, now=at)


def test_promise_verifies_on_chain_and_is_kept_after_anchoring(services: Services,
                                                               chain: Chain,
                                                               deployment: Deployment) -> None:
    sv = services
    hospital = admit(chain, deployment, "hospital.promised")
    env = envelope(hospital, 1)
    accepted = sv.publisher.publish([env], hospital.id)[0]
    promise = accepted.promise
    assert promise is not None
    assert (promise.digest, promise.issuer, promise.merge_delay, promise.urgent) == (
        accepted.digest.hex(), hospital.issuer, 300, False)
    assert promise.chain.chain_id == chain.chain_id
    assert promise.chain.evidence_log == deployment.log
    report = check(sv, bundle(sv, accepted.digest))
    assert report.verdict == "OPEN", report.to_dict()
    assert all(c.ok for c in report.checks)
    again = sv.publisher.publish([env], hospital.id)[0]
    assert again.duplicate and again.promise is not None
    assert again.promise.promise_id == promise.promise_id  # a duplicate: the promise given
    third = envelope(hospital, 3)
    batch = sv.publisher.publish([env, third, third], hospital.id)  # a batch, twice one
    assert batch[0].promise == promise and batch[1].promise == batch[2].promise
    assert batch[1].promise is not None and batch[1].promise.digest == batch[1].digest.hex()
    urgent = sv.publisher.publish([envelope(hospital, 2, urgent=True)], hospital.id)[0]
    assert urgent.promise is not None and urgent.promise.merge_delay == 10
    sv.worker.cycle()
    b = bundle(sv, accepted.digest)
    assert b.state == "kept" and b.inclusion is not None
    report = check(sv, b)
    assert report.verdict == "KEPT", report.to_dict()
    assert report.honoured


def test_tampered_forged_and_replayed_promises_are_invalid(
        services: Services, chain: Chain, deployment: Deployment) -> None:
    sv = services
    hospital = admit(chain, deployment, "hospital.forger")
    accepted = sv.publisher.publish([envelope(hospital, 1)], hospital.id)[0]
    genuine = bundle(sv, accepted.digest)
    fields = genuine.promise.model_dump(exclude={"signer", "signature"})

    def verdict(promise: Promise, log: str | None = None) -> tuple[str, str]:
        report = check(sv, PromiseBundle(promise=promise, state="open",
                                         deadline=promise.deadline), log=log)
        failed = [c.detail for c in report.checks if not c.ok]
        return report.verdict, failed[0] if failed else ""

    # tampered: a longer merge delay under the exchange's signature
    assert verdict(genuine.promise.model_copy(update={"merge_delay": 10**6}))[0] == "INVALID"
    # signed by a registered key that is not the operator's (the hospital's own)
    v, why = verdict(sign(Promise, hospital.key, hospital.id, **fields))
    assert v == "INVALID" and "not the exchange operator" in why
    # the hospital's key passed off as the operator's, and a key nobody registered
    operator = bytes.fromhex(genuine.promise.signer.member_id[2:])
    for key in (hospital.key, SigningKey.generate()):
        v, why = verdict(sign(Promise, key, operator, **fields))
        assert v == "INVALID", why
    # replayed for another deployment: checked against its log, or re-labelled for it
    other = chain.deploy()
    v, why = verdict(genuine.promise, log=other.log)
    assert v == "INVALID" and "another deployment" in why
    relabelled = genuine.promise.model_copy(update={"chain": genuine.promise.chain.model_copy(
        update={"evidence_log": other.log, "registry": other.registry})})
    assert verdict(relabelled, log=other.log)[0] == "INVALID"
    assert check(sv, genuine).verdict == "OPEN"  # and the genuine one still verifies


def test_record_withheld_past_its_merge_delay_is_broken(
        chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path) -> None:
    sv = make_services(chain, deployment, database_url, tmp_path, merge_delay_seconds=2)
    hospital = admit(chain, deployment, "hospital.withheld")
    accepted = sv.publisher.publish([envelope(hospital, 1)], hospital.id)[0]
    assert accepted.promise is not None
    deadline = accepted.promise.deadline
    held = bundle(sv, accepted.digest)  # the worker does not run: the record is withheld
    assert check(sv, held, now=deadline).verdict == "OPEN"
    report = check(sv, held, now=deadline + 1)
    assert report.verdict == "BROKEN" and not report.honoured
    # anchored at last, but after the deadline: still broken ("included late")
    advance_time(chain, 10)
    sv.worker.cycle()
    late = bundle(sv, accepted.digest)
    assert late.inclusion is not None and late.state == "broken"
    report = check(sv, late)
    assert report.verdict == "BROKEN" and "late" in (report.decision.detail if
                                                      report.decision else "")


def test_rejection_at_logging_ends_the_promise_in_a_signed_rejection(
        services: Services, chain: Chain, deployment: Deployment) -> None:
    sv = services
    hospital = admit(chain, deployment, "hospital.revoked.promise")
    registry = chain.registry(deployment.registry)
    sv.publisher.publish([envelope(hospital, 0)], hospital.id)  # the key cache now says valid
    registry.revoke_key(hospital.id, hospital.key.key_id)
    late = sv.publisher.publish([envelope(hospital, 1)], hospital.id)[0]  # the attack window
    sv.worker.cycle()
    b = bundle(sv, late.digest)
    assert b.state == "rejected" and b.rejection is not None
    assert b.rejection.code == "key_revoked"
    report = check(sv, b)
    assert report.verdict == "REJECTED" and report.honoured, report.to_dict()
    # a rejection edited after signing is ignored: the promise is open, later broken
    edited = b.model_copy(update={"rejection": b.rejection.model_copy(
        update={"code": "member_suspended"})})
    assert check(sv, edited).verdict == "OPEN"
    assert check(sv, edited, now=b.deadline + 1).verdict == "BROKEN"


def test_exchange_cannot_dodge_a_promise_with_an_unjustified_rejection(
        services: Services, chain: Chain, deployment: Deployment) -> None:
    sv = services
    hospital = admit(chain, deployment, "hospital.valid.key")
    accepted = sv.publisher.publish([envelope(hospital, 1)], hospital.id)[0]
    b = bundle(sv, accepted.digest)
    promise = b.promise
    # the operator's own key signs a rejection of a record whose key is valid
    lie = sign(Rejection, sv.promises.key, sv.promises.member_id, chain=promise.chain,
               promise=promise.promise_id, digest=promise.digest,
               rejected_at=promise.accepted_at + 1, checked_at=chain.now(), code="key_revoked")
    report = check(sv, b.model_copy(update={"rejection": lie}), now=promise.deadline + 1)
    assert report.verdict == "BROKEN"
    assert any(c.name == "rejection" and not c.ok and "not justified" in c.detail
               for c in report.checks)
    assert hex32(sv.promises.member_id) == promise.signer.member_id


def test_forged_or_late_extensions_cannot_save_a_promise(
        chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path) -> None:
    sv = make_services(chain, deployment, database_url, tmp_path, merge_delay_seconds=5)
    hospital = admit(chain, deployment, "hospital.extended")
    accepted = sv.publisher.publish([envelope(hospital, 1)], hospital.id)[0]
    b = bundle(sv, accepted.digest)
    p = b.promise
    fields = {"chain": p.chain, "promise": p.promise_id, "digest": p.digest,
              "reason": "chain_unavailable"}
    desk = sv.promises
    genuine = sign(Extension, desk.key, desk.member_id, extended_at=p.deadline - 1,
                   deadline=p.deadline + 100, **fields)
    forged = sign(Extension, hospital.key, hospital.id, extended_at=p.deadline - 1,
                  deadline=p.deadline + 100, **fields)
    late = sign(Extension, desk.key, desk.member_id, extended_at=p.deadline + 1,
                deadline=p.deadline + 100, **fields)
    after = p.deadline + 50

    def at(*extensions: Extension) -> str:
        return check(sv, b.model_copy(update={"extensions": list(extensions)}), now=after).verdict

    assert at(genuine) == "OPEN"  # a signed extension made in time moves the deadline
    assert at(forged) == "BROKEN"  # not the operator's: ignored
    assert at(late) == "BROKEN"  # made after the deadline it would move: too late
    report = check(sv, b.model_copy(update={"extensions": [forged]}), now=after)
    assert any(c.name == "extension 0" and not c.ok for c in report.checks)


def stored_promises(sv: Services) -> tuple[int, int, int]:
    """(promise batches, promise leaves, promise/1 rows) in the database."""
    with sv.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t))  # type: ignore[return-value]
                     for t in (PromiseBatchRow, PromiseLeafRow, PromiseRow))


def test_one_signature_per_publish_call_for_a_mixed_batch(services: Services, chain: Chain,
                                                         deployment: Deployment) -> None:
    sv = services
    hospital = admit(chain, deployment, "hospital.batched")
    envs = [envelope(hospital, 0), envelope(hospital, 1, urgent=True), envelope(hospital, 2)]
    out = sv.publisher.publish(envs, hospital.id)
    promises = [a.promise for a in out]
    assert all(p is not None and p.version == "claimx.promise/2" for p in promises)
    ps = [p for p in promises if p is not None]
    assert len({p.signature for p in ps}) == 1  # one signature for the call
    assert len({p.promise_id for p in ps}) == 3  # a promise (and id) per record
    assert [p.batch.index for p in ps if p.batch] == [0, 1, 2]
    urgent, routine = ps[1], ps[0]
    assert urgent.urgent and urgent.deadline == urgent.accepted_at + 10
    assert not routine.urgent and routine.deadline == routine.accepted_at + 300
    assert stored_promises(sv) == (1, 3, 0)
    for a, p in zip(out, ps, strict=True):
        b = bundle(sv, a.digest)
        assert b.promise == p  # rebuilt from the batch row: the very document given
        assert check(sv, b).verdict == "OPEN"
    # duplicates keep their earlier promise, a new record in the call gets a new one
    again = sv.publisher.publish([envs[2], envelope(hospital, 3), envs[0]], hospital.id)
    assert again[0].promise == ps[2] and again[2].promise == ps[0]
    assert again[1].promise is not None and again[1].promise.signature != ps[0].signature
    assert stored_promises(sv) == (2, 4, 0)
    sv.publisher.publish([envs[1]], hospital.id)  # only duplicates: nothing stored
    assert stored_promises(sv) == (2, 4, 0)
    sv.worker.cycle()
    for a in [*out, again[1]]:
        assert check(sv, bundle(sv, a.digest)).verdict == "KEPT"


def test_a_revived_record_gets_a_new_promise_and_its_old_batch_still_rebuilds(
        chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path) -> None:
    sv = make_services(chain, deployment, database_url, tmp_path)
    hospital = admit(chain, deployment, "hospital.revived")
    registry = chain.registry(deployment.registry)
    sv.publisher.publish([envelope(hospital, 0)], hospital.id)  # the key cache: valid
    registry.revoke_key(hospital.id, hospital.key.key_id)
    packet = new_packet(kind="hospital.lab_report", issuer=hospital.issuer, subject="ab" * 32,
                        body={"n": 1})
    first = sv.publisher.publish([sign_packet(packet, hospital.key).to_json(),
                                  envelope(hospital, 2)], hospital.id)
    old = first[0].promise
    assert old is not None
    sv.worker.cycle()
    rejected = bundle(sv, first[0].digest)
    assert rejected.state == "rejected" and rejected.promise == old
    new_key = SigningKey.generate()
    registry.register_key(hospital.id, new_key, sender=hospital.operator)
    revived = sv.publisher.publish([sign_packet(packet, new_key).to_json()], hospital.id)[0]
    assert not revived.duplicate and revived.digest == first[0].digest
    assert revived.promise is not None and revived.promise.promise_id != old.promise_id
    assert revived.promise.key_id == hex32(new_key.key_id)
    b = bundle(sv, revived.digest)
    assert b.promise == revived.promise and b.rejection is None and b.state == "open"
    assert check(sv, b).verdict == "OPEN"
    # the old batch (the other record's promise among it) still rebuilds, old key and all
    fresh = make_services(chain, deployment, database_url, tmp_path / "again")
    assert bundle(fresh, first[1].digest).promise == first[1].promise
    sv.worker.cycle()
    assert check(sv, bundle(sv, revived.digest)).verdict == "KEPT"


def test_a_promise_1_row_is_still_served_extended_and_kept(
        chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path) -> None:
    """A record accepted before promise batches: its stored promise/1 row (the old layout)
    reads, verifies on chain, is extended while due and is kept once anchored."""
    sv = make_services(chain, deployment, database_url, tmp_path)
    hospital = admit(chain, deployment, "hospital.v1")
    env = envelope(hospital, 1)
    checked = sv.publisher.check(env, hospital.id)
    desk = sv.promises
    now = desk.now()  # the chain's clock, as promises are dated (the chain may be ahead)
    v1 = sign(Promise, desk.key, desk.member_id, chain=desk.chain, digest=checked.digest.hex(),
              issuer=hospital.issuer, key_id=hex32(checked.key_id), urgent=False,
              accepted_at=now, merge_delay=20)
    with sv.db.session() as s:
        store_checked(s, sv.vault, [checked])
        s.add(PromiseRow(promise_id=bytes.fromhex(v1.promise_id), digest=checked.digest,
                         issuer=hospital.id, key_id=checked.key_id, urgent=False,
                         accepted_at=now, merge_delay=20, signer=desk.member_id,
                         signer_key_id=desk.key.key_id, signature=v1.signature_bytes(),
                         deadline=now + 20, rejection=None))
    b = bundle(sv, checked.digest)
    assert b.promise == v1 and b.promise.version == "claimx.promise/1"
    assert check(sv, b).verdict == "OPEN"
    assert desk.extend_due(sv.db, "chain_unavailable", margin=30) == 1
    extended = bundle(sv, checked.digest)
    assert len(extended.extensions) == 1 and extended.deadline > v1.deadline
    again = sv.publisher.publish([env], hospital.id)[0]
    assert again.duplicate and again.promise == v1  # a duplicate: the promise/1 given
    assert stored_promises(sv) == (0, 0, 1)
    sv.worker.cycle()
    assert check(sv, bundle(sv, checked.digest)).verdict == "KEPT"


def test_extend_due_extends_open_batched_promises_by_their_own_deadlines(
        chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path) -> None:
    sv = make_services(chain, deployment, database_url, tmp_path, merge_delay_seconds=100,
                       urgent_merge_delay_seconds=20)
    hospital = admit(chain, deployment, "hospital.due")
    out = sv.publisher.publish([envelope(hospital, 0), envelope(hospital, 1, urgent=True)],
                               hospital.id)
    desk = sv.promises
    assert desk.extend_due(sv.db, "chain_unavailable", margin=30) == 1  # the urgent one only
    urgent = bundle(sv, out[1].digest)
    assert len(urgent.extensions) == 1 and urgent.deadline > urgent.promise.deadline
    assert bundle(sv, out[0].digest).extensions == []
    r = check(sv, urgent, now=urgent.promise.deadline + 1)
    assert r.verdict == "OPEN", r.to_dict()
    assert desk.extend_due(sv.db, "chain_unavailable", margin=30) == 0  # not due again yet
    assert desk.extend_due(sv.db, "chain_unavailable", margin=200) == 2  # both, from in force
    assert len(bundle(sv, out[1].digest).extensions) == 2
    sv.worker.cycle()
    assert desk.extend_due(sv.db, "chain_unavailable", margin=10_000) == 0  # kept: none open


def test_records_in_a_head_the_chain_lost_are_extended_while_it_is_down(
        chain: Chain, deployment: Deployment, database_url: str, tmp_path: Path) -> None:
    """A head the chain lost (a node restored from an older state) no longer counts: its
    records' promises are open again, so a chain outage before they are anchored again
    extends them instead of letting them break unextended."""
    from sqlalchemy import update

    from gateway.store.tables import Anchor

    sv = make_services(chain, deployment, database_url, tmp_path, merge_delay_seconds=20)
    hospital = admit(chain, deployment, "hospital.lost")
    out = sv.publisher.publish([envelope(hospital, i) for i in range(3)], hospital.id)
    sv.worker.cycle()
    desk = sv.promises
    assert desk.extend_due(sv.db, "chain_unavailable", margin=60) == 0  # anchored: kept
    with sv.db.session() as s:  # as the reconciler marks a head the chain no longer holds
        s.execute(update(Anchor).values(head_index=-Anchor.size, confirmed=False))
    assert desk.extend_due(sv.db, "chain_unavailable", margin=60) == 3
    assert all(len(bundle(sv, o.digest).extensions) == 1 for o in out)
