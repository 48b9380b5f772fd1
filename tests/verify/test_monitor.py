"""The hospital's monitor against a deliberately misbehaving operator, on a real EVM.

The registry is governed by a 2-of-3 development council (a real Safe); the gateway runs in
process behind a real ASGI client, its log read as the monitor reads it over HTTP. Each
attack is made through a path the attacker really has: the hospital's compromised operator
account, the council's Safe, the exchange's own database and log listing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.keys import SigningKey
from gateway.core.possession import prove_possession
from gateway.store.signers import signer_ids
from gateway.store.tables import Record
from gateway.verify.audit import http_fetch
from gateway.verify.monitor import Finding
from tests.verify.conftest import World

pytestmark = pytest.mark.slow


def codes(found: list[Finding]) -> list[str]:
    return sorted(f.code for f in found)


def test_clean_state_reports_nothing(world: World) -> None:
    for n in range(3):
        world.publish(n=n)
    world.services.worker.cycle()
    mon = world.monitor()
    assert mon.poll() == []
    assert mon.progress.anchored_size is not None and mon.progress.anchored_size >= 3
    assert mon.progress.log_size == mon.progress.anchored_size
    [note] = mon.progress.notes  # the admission: a note, not a finding
    assert note.startswith("admitted as hospital.watch by the council")
    signers = {k.address for k in world.council.keys[:2]}
    assert all(s in note for s in signers)


def test_compromised_operator_registers_a_key_and_an_operator(world: World) -> None:
    w, reg = world, world.chain.registry(world.deployment.registry)
    mon = w.monitor()
    assert mon.poll() == []
    rogue = SigningKey.generate()  # a genuine proof: the attacker holds this key
    reg.register_key(w.hospital.id, rogue, sender=w.hospital.operator)
    accomplice = w.chain.new_funded_account()
    reg.add_operator(w.hospital.id, accomplice, sender=w.hospital.operator)
    found = mon.poll()
    assert codes(found) == ["unexpected_key", "unexpected_operator"]
    line = next(f.line() for f in found if f.code == "unexpected_key")
    assert "0x" + rogue.key_id.hex() in line and w.hospital.operator in line
    assert accomplice.lower() in next(f.line() for f in found if f.code == "unexpected_operator")
    assert mon.poll() == []  # each finding once while following
    # records the attacker signs with that key are log entries it did not sign
    w.publish(rogue, n=9)
    w.services.worker.cycle()
    [entry] = mon.poll()
    assert entry.code == "foreign_key_entry" and "0x" + rogue.key_id.hex() in entry.message
    # a fresh one-shot run reports all three
    assert codes(w.monitor().poll()) == ["foreign_key_entry", "unexpected_key",
                                         "unexpected_operator"]


def test_forged_proof_is_reported_even_for_a_listed_key(world: World) -> None:
    w, reg = world, world.chain.registry(world.deployment.registry)
    key, other = SigningKey.generate(), SigningKey.generate()
    reg.add_key(w.hospital.id, key.key_id, key.algorithm, key.public.raw,
                proof=prove_possession(other, w.hospital.id, w.chain.chain_id, reg.address),
                sender=w.hospital.operator)
    p = w.profile()
    p.add_keys(["0x" + key.key_id.hex()])
    [found] = w.monitor(p).poll()
    assert found.code == "bad_possession_proof" and "0x" + key.key_id.hex() in found.message


def test_council_actions_are_reported_with_their_signers(world: World) -> None:
    w, reg = world, world.chain.registry(world.deployment.registry)
    mon = w.monitor()
    assert mon.poll() == []
    reg.suspend_member(w.hospital.id)  # through the Safe: the dev council signs
    reg.reinstate_member(w.hospital.id)
    reg.revoke_key(w.hospital.id, w.hospital.key.key_id)  # an emergency revocation
    found = mon.poll()
    assert codes(found) == ["council_action"] * 3
    text = "\n".join(f.line() for f in found)
    assert "suspended hospital.watch" in text and "reinstated hospital.watch" in text
    assert f"revoked key 0x{w.hospital.key.key_id.hex()}" in text
    assert all(k.address in text for k in w.council.keys[:2])
    assert w.council.council.address in text
    # the council recovers the member's operators: reported too
    newcomer = w.chain.new_funded_account()
    reg.add_operator(w.hospital.id, newcomer)
    found = mon.poll()
    assert codes(found) == ["council_action", "unexpected_operator"]
    assert "added by the council" in next(f.message for f in found
                                          if f.code == "unexpected_operator")
    # the council cannot register a key, but the operator it added can: caught as well
    planted = SigningKey.generate()
    reg.register_key(w.hospital.id, planted, sender=newcomer)
    [found_key] = mon.poll()
    assert found_key.code == "unexpected_key" and newcomer in found_key.message
    # reviewed actions are acknowledged in the profile; the operator is then listed
    p = w.profile()
    p.add_operators([newcomer])
    p.acknowledge(council_txs(w.monitor().poll()))
    assert codes(w.monitor(p).poll()) == ["unexpected_key"]


def council_txs(found: list[Finding]) -> list[str]:
    """The transactions of council findings (their ref is ``council:TX#LOG``)."""
    return [f.ref.removeprefix("council:").split("#")[0] for f in found
            if f.code == "council_action"]


def test_an_entry_under_a_stolen_key_needs_the_published_list(world: World,
                                                              tmp_path: Path) -> None:
    w = world
    mine = w.publish(n=1)
    stolen = w.publish(n=2)  # signed with the hospital's key, but not by the hospital
    w.services.worker.cycle()
    listed = tmp_path / "published.txt"
    listed.write_text(f"# what our connect agent sent\n{mine}\n")
    p = w.profile()
    p.add_published(listed)
    [found] = w.monitor(p).poll()
    assert found.code == "unpublished_entry" and stolen in found.message


def test_the_exchange_inserts_an_entry_in_the_hospitals_name(world: World) -> None:
    """The operator writes a record straight into its own database, under the hospital's
    issuer and a key id of its choosing, and anchors it."""
    w = world
    w.publish(n=1)
    w.services.worker.keys = None  # it skips its own logging-time key check
    with w.services.db.session() as s:
        [signer] = signer_ids(s, [(w.hospital.id, b"\x66" * 32)]).values()
        s.add(Record(digest=b"\x42" * 32, signer=signer, kind="hospital.invoice",
                     subject="ab" * 32, issued_at="2026-12-01"))
    w.services.worker.cycle()
    [found] = w.monitor().poll()
    assert found.code == "foreign_key_entry" and "0x" + "66" * 32 in found.message


def test_a_listing_that_hides_an_entry_does_not_reach_the_anchored_root(world: World) -> None:
    w = world
    for n in range(4):
        w.publish(n=n)
    w.services.worker.cycle()
    honest = http_fetch(w.client)

    def hiding(path: str) -> dict[str, Any]:
        page = honest(path)  # leaf 2 replaced by another digest, the rest as it is
        page["leaves"] = [dict(leaf, digest="00" * 32) if leaf["index"] == 2 else leaf
                          for leaf in page["leaves"]]
        return page

    def short(path: str) -> dict[str, Any]:
        page = honest(path)  # leaves 2 and 3 left out
        page["leaves"] = [leaf for leaf in page["leaves"] if leaf["index"] < 2]
        return page

    assert codes(w.monitor(fetch=hiding).poll()) == ["log_mismatch"]
    [found] = w.monitor(fetch=short).poll()
    assert found.code == "log_mismatch" and "withholds" in found.message
