"""MemberRegistry and EvidenceLog on a real EVM (in-process and anvil), errors decoded."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from gateway.chain.client import Chain, Deployment
from gateway.core import merkle
from gateway.core.errors import ChainError
from gateway.core.keys import SigningKey
from gateway.core.types import KeyAlgorithm, Role, member_id
from tests.support import ROOT, admit, advance_time


def test_key_status_covers_every_branch(chain: Chain, deployment: Deployment) -> None:
    reg = chain.registry(deployment.registry)
    h = admit(chain, deployment, "hospital.a")
    now = chain.now()
    assert reg.key_status_at(h.id, h.key.key_id, now + 5).status == "valid"
    assert reg.key_status_at(member_id("nobody"), h.key.key_id, now).status == "unknown_member"
    other = admit(chain, deployment, "hospital.b")
    assert reg.key_status_at(h.id, other.key.key_id, now).status == "unknown_key"
    assert reg.key_status_at(h.id, h.key.key_id, now - 3600).status == "not_yet_valid"
    state = reg.key_status_at(h.id, h.key.key_id, now + 5)
    assert state.public_key == h.key.public.raw and state.algorithm == KeyAlgorithm.ED25519

    reg.suspend_member(h.id)
    later = advance_time(chain, 10)
    assert reg.key_status_at(h.id, h.key.key_id, later).status == "member_suspended"
    reg.reinstate_member(h.id)
    assert reg.key_status_at(h.id, h.key.key_id, later).status == "valid"


def test_rotation_and_backdated_revocation(chain: Chain, deployment: Deployment) -> None:
    reg = chain.registry(deployment.registry)
    h = admit(chain, deployment, "hospital.rot", alg=KeyAlgorithm.ECDSA_P256)
    t_before = chain.now()
    advance_time(chain, 10)
    new = SigningKey.generate()
    reg.rotate_to(h.id, h.key.key_id, new, sender=h.operator)
    t_after = chain.now() + 1
    assert reg.key_status_at(h.id, h.key.key_id, t_before).status == "valid"
    assert reg.key_status_at(h.id, h.key.key_id, t_after).status == "revoked"
    assert reg.key_status_at(h.id, new.key_id, t_after).status == "valid"
    # compromise discovered: revoke the new key back to its first second
    reg.revoke_key(h.id, new.key_id, at=reg.key_valid_from(new.key_id), sender=h.operator)
    assert reg.key_status_at(h.id, new.key_id, t_after).status == "revoked"
    assert reg.keys_of(h.id) == [h.key.key_id, new.key_id]


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (lambda r, h, a: r.admit_member(h.id, Role.HOSPITAL, "again", []),
         "MemberRegistryMemberExists"),
        (lambda r, h, a: r.add_key(h.id, h.key.key_id, KeyAlgorithm.ED25519, h.key.public.raw,
                                   proof=b"p", sender=a), "MemberRegistryKeyExists"),
        (lambda r, h, a: r.add_key(h.id, b"\x09" * 32, KeyAlgorithm.ED25519, b"\x01" * 31,
                                   proof=b"p", sender=a), "MemberRegistryBadPublicKey"),
        (lambda r, h, a: r.add_key(h.id, b"\x09" * 32, KeyAlgorithm.ED25519, b"\x01" * 32,
                                   sender=a), "MemberRegistryMissingProof"),
        (lambda r, h, a: r.add_key(h.id, b"\x09" * 32, KeyAlgorithm.ED25519, b"\x01" * 32, 1,
                                   proof=b"p", sender=a), "MemberRegistryValidFromInPast"),
        (lambda r, h, a: r.add_key(h.id, b"\x09" * 32, KeyAlgorithm.ED25519, b"\x01" * 32,
                                   proof=b"p"), "MemberRegistryNotOperator"),
        (lambda r, h, a: r.revoke_key(h.id, h.key.key_id, at=1), "MemberRegistryRevocationBefore"),
        (lambda r, h, a: r.suspend_member(member_id("ghost")), "MemberRegistryUnknownMember"),
        (lambda r, h, a: r.suspend_member(h.id, sender=a), "AccessControlUnauthorizedAccount"),
    ],
)
def test_registry_refusals_are_decoded(chain: Chain, deployment: Deployment, action: Any,
                                       error: str) -> None:
    reg = chain.registry(deployment.registry)
    h = admit(chain, deployment, "hospital.err")
    with pytest.raises(ChainError) as err:
        action(reg, h, h.operator)
    assert err.value.name is not None and err.value.name.startswith(error.split("Before")[0])
    assert error in str(err.value) or err.value.name == error


def test_suspension_bounds_validity_at_its_start(chain: Chain, deployment: Deployment) -> None:
    """Records signed before a suspension stay valid; a key never registered is unknown."""
    reg = chain.registry(deployment.registry)
    h = admit(chain, deployment, "hospital.susp")
    signed_before = advance_time(chain, 5)
    advance_time(chain, 5)
    reg.suspend_member(h.id)
    suspended_at = reg.member(h.id).suspended_at
    assert suspended_at > signed_before and not reg.member(h.id).active
    assert reg.key_status_at(h.id, h.key.key_id, signed_before).valid
    assert reg.key_status_at(h.id, h.key.key_id, suspended_at).status == "member_suspended"
    assert reg.key_status_at(h.id, b"\x42" * 32, signed_before).status == "unknown_key"
    with pytest.raises(ChainError, match="MemberRegistryAlreadySuspended"):
        reg.suspend_member(h.id)
    reg.reinstate_member(h.id)
    assert reg.member(h.id).active
    with pytest.raises(ChainError, match="MemberRegistryNotSuspended"):
        reg.reinstate_member(h.id)


def test_backdated_revocation_invalidates_from_the_compromise_on(chain: Chain,
                                                                  deployment: Deployment) -> None:
    reg = chain.registry(deployment.registry)
    h = admit(chain, deployment, "hospital.compromised")
    valid_from = reg.key_valid_from(h.key.key_id)
    advance_time(chain, 100)
    reg.revoke_key(h.id, h.key.key_id, at=valid_from + 40)  # compromised 40 s after issue
    assert reg.key_status_at(h.id, h.key.key_id, valid_from + 39).valid
    assert reg.key_status_at(h.id, h.key.key_id, valid_from + 40).status == "revoked"
    with pytest.raises(ChainError) as err:  # revocation is final: it cannot be moved
        reg.revoke_key(h.id, h.key.key_id, at=valid_from + 1)
    assert err.value.name == "MemberRegistryKeyAlreadyRevoked"
    assert f"revokedAt={valid_from + 40}" in str(err.value)


def test_admin_only_calls_name_the_refused_account(chain: Chain, deployment: Deployment) -> None:
    """Council calls refuse a member's operator; key calls refuse anyone but the member's own."""
    reg = chain.registry(deployment.registry)
    h = admit(chain, deployment, "hospital.acl")
    other = admit(chain, deployment, "hospital.acl2")
    key = SigningKey.generate()
    council_calls: list[Callable[[], None]] = [
        lambda: reg.admit_member(member_id("rogue"), Role.INSURER, "rogue", [], sender=h.operator),
        lambda: reg.suspend_member(other.id, sender=h.operator),
    ]
    for attempt in council_calls:
        with pytest.raises(ChainError) as err:
            attempt()
        assert err.value.name == "AccessControlUnauthorizedAccount"
        assert h.operator.lower() in str(err.value).lower()
    member_calls: list[Callable[[], None]] = [  # h's operator acting for another member
        lambda: reg.register_key(other.id, key, sender=h.operator),
        lambda: reg.add_operator(other.id, chain.new_funded_account(), sender=h.operator),
        lambda: reg.revoke_key(other.id, other.key.key_id, sender=h.operator),
        lambda: reg.remove_operator(other.id, other.operator, sender=h.operator),
    ]
    for attempt in member_calls:
        with pytest.raises(ChainError) as err:
            attempt()
        assert err.value.name == "MemberRegistryNotOperator"
    assert reg.keys_of(other.id) == [other.key.key_id]
    assert reg.keys_of(h.id) == [h.key.key_id]


def test_operators_belong_to_one_member_and_can_be_removed(chain: Chain,
                                                           deployment: Deployment) -> None:
    reg = chain.registry(deployment.registry)
    log = chain.evidence_log(deployment.log)
    h = admit(chain, deployment, "hospital.ops")
    other = admit(chain, deployment, "insurer.ops", Role.INSURER)
    with pytest.raises(ChainError, match="MemberRegistryOperatorTaken"):
        reg.add_operator(other.id, h.operator)
    reg.remove_operator(h.id, h.operator)
    assert not reg.is_operator(h.id, h.operator)
    with pytest.raises(ChainError, match="EvidenceLogNotIssuerOperator"):
        log.revoke_record(h.id, b"\x01" * 32, 1, sender=h.operator)
    reg.add_operator(other.id, h.operator)  # free again once removed
    assert reg.is_operator(other.id, h.operator)
    assert [m.name for m in reg.members()] == ["hospital.ops", "insurer.ops"]


def _tree(n: int) -> merkle.MemoryTree:
    t = merkle.MemoryTree()
    for i in range(n):
        t.append(hashlib.sha256(i.to_bytes(8, "big")).digest())
    return t


def test_anchor_accepts_only_consistent_growth(chain: Chain, deployment: Deployment) -> None:
    log = chain.evidence_log(deployment.log)
    t = _tree(13)
    with pytest.raises(ChainError, match="EvidenceLogProofForEmptyLog"):
        log.anchor(5, t.root(5), [t.root(1)])
    first = log.anchor(5, t.root(5), [])
    assert first.head.size == 5 and first.head.root == t.root(5) and first.head.index == 0
    with pytest.raises(ChainError) as err:  # a rewritten log: different leaves, same size path
        log.anchor(9, _tree(9).root(9)[::-1], t.consistency_proof(5, 9))
    assert err.value.name == "EvidenceLogNotConsistent" and "oldSize=5, newSize=9" in str(err.value)
    with pytest.raises(ChainError, match="EvidenceLogNotGrowing"):
        log.anchor(5, t.root(5), [])
    second = log.anchor(13, t.root(13), t.consistency_proof(5, 13))
    assert log.latest_head() == second.head and log.head_count() == 2
    assert log.head_index_of_size(13) == 1
    assert log.anchor_tx_of(1) == second.tx_hash
    with pytest.raises(ChainError, match="EvidenceLogUnknownSize"):
        log.head_index_of_size(7)


def test_every_head_is_kept_and_found_by_size(chain: Chain, deployment: Deployment) -> None:
    log = chain.evidence_log(deployment.log)
    assert log.latest_head() is None and log.head_count() == 0
    t = _tree(40)
    sizes = [1, 2, 7, 8, 21, 40]
    previous = 0
    for i, size in enumerate(sizes):
        result = log.anchor(size, t.root(size),
                            t.consistency_proof(previous, size) if previous else [])
        assert result.head.index == i and result.head.root == t.root(size)
        assert result.block_number == result.head.block_number and result.gas_used > 0
        previous = size
    assert [log.head_index_of_size(s) for s in sizes] == list(range(len(sizes)))
    for missing in (0, 3, 9, 39, 41):
        with pytest.raises(ChainError) as err:
            log.head_index_of_size(missing)
        assert err.value.name == "EvidenceLogUnknownSize" and err.value.error_args == (missing,)
    with pytest.raises(ChainError, match=r"EvidenceLogUnknownHead\(index=6\)"):
        log.head_at(6)


def test_anchor_gas_stays_near_100k_per_batch(chain: Chain, deployment: Deployment) -> None:
    """Two storage slots per head: the batch cost the <= 100 gas/record budget rests on."""
    log = chain.evidence_log(deployment.log)
    t = _tree(2048)
    log.anchor(1000, t.root(1000), [])
    second = log.anchor(2048, t.root(2048), t.consistency_proof(1000, 2048))
    assert second.gas_used < 110_000, second.gas_used


def test_only_anchor_role_may_anchor(chain: Chain, deployment: Deployment) -> None:
    log = chain.evidence_log(deployment.log)
    outsider = chain.new_funded_account()
    t = _tree(3)
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        log.anchor(3, t.root(3), [], sender=outsider)
    log.grant_anchorer(outsider)
    assert log.anchor(3, t.root(3), [], sender=outsider).head.size == 3


def test_record_revocation_by_issuer_operator_only(chain: Chain, deployment: Deployment) -> None:
    log = chain.evidence_log(deployment.log)
    reg = chain.registry(deployment.registry)
    h = admit(chain, deployment, "hospital.rev")
    police = admit(chain, deployment, "police.rev", Role.POLICE)
    digest = hashlib.sha256(b"record").digest()
    with pytest.raises(ChainError, match="EvidenceLogNotIssuerOperator"):
        log.revoke_record(h.id, digest, 3, sender=police.operator)
    assert log.revocation_of(digest, h.id) is None
    log.revoke_record(h.id, digest, 3, sender=h.operator)
    rev = log.revocation_of(digest, h.id)
    assert rev is not None and rev.reason == 3 and rev.timestamp > 0
    assert log.revocation_of(digest, police.id) is None  # per issuer, not global
    with pytest.raises(ChainError, match="EvidenceLogAlreadyRevoked"):
        log.revoke_record(h.id, digest, 4, sender=h.operator)
    reg.suspend_member(police.id)
    with pytest.raises(ChainError, match="EvidenceLogMemberInactive"):
        log.revoke_record(police.id, digest, 1, sender=police.operator)


@pytest.mark.slow  # every vector through the EVM
def test_shared_vectors_through_the_on_chain_check(embedded_chain: Chain,
                                                   merkle_vectors: dict[str, Any]) -> None:
    """The same vector file gateway.core.merkle passes, through the contract's own verifier."""
    log = embedded_chain.evidence_log(embedded_chain.deploy().log)
    seen = {True: 0, False: 0}
    for v in merkle_vectors["consistency"]:
        got = log.verify_consistency(v["size1"], v["size2"], bytes.fromhex(v["root1"]),
                                     bytes.fromhex(v["root2"]),
                                     [bytes.fromhex(p) for p in v["proof"]])
        assert got == v["valid"], v
        seen[v["valid"]] += 1
    assert seen[True] > 100 and seen[False] > 50


def test_unreachable_node_is_a_clear_error() -> None:
    with pytest.raises(ChainError) as err:
        Chain.connect("http://127.0.0.1:9")
    assert err.value.code == "chain_unreachable" and "127.0.0.1:9" in err.value.msg


@pytest.mark.slow  # runs the Solidity compiler
def test_committed_artifacts_match_a_fresh_compile() -> None:
    if not (ROOT / "node_modules" / "solc").exists():
        pytest.skip("node_modules/solc missing: run `npm ci` (scripts/setup.sh does)")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "compile_contracts.py"),
                           "--check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
