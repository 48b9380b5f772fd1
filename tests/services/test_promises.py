"""Acceptance promises on a real EVM and database, tried as an institution holding the
exchange to them: every publish gets one signed by the operator's registered key, it is kept
by anchoring or ended by a justified signed rejection, and withholding a record is caught."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.core.envelope import sign_packet
from gateway.core.keys import SigningKey
from gateway.core.packet import new_packet
from gateway.core.promise import Promise, PromiseBundle, Rejection, sign
from gateway.core.types import hex32
from gateway.services.promises import promise_bundle
from gateway.services.wiring import Services, build_services
from gateway.store.db import Database
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
        return promise_bundle(s, digest, sv.cache, now=sv.promises.clock())


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
