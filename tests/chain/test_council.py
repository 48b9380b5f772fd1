"""The k-of-n council: a Safe governs the registry; the deployer alone can do nothing.

Each attack is tried on a real EVM (in-process and anvil): one signature of a 2-of-3 council,
the deployer acting alone, a removed council member signing, a key registered by anyone but
the member's own operator, a proof of possession that does not verify.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from gateway.chain.client import Chain, Deployment
from gateway.chain.council import Council, deploy_with_council
from gateway.core.errors import ChainError, InputError, VerificationError
from gateway.core.keys import SigningKey
from gateway.core.possession import prove_possession, verify_possession
from gateway.core.types import KeyAlgorithm, Role, member_id

pytestmark = pytest.mark.slow


@pytest.fixture
def council_of_3(chain: Chain) -> tuple[Deployment, Council, list[LocalAccount]]:
    owners: list[LocalAccount] = sorted((Account.create() for _ in range(3)),
                                        key=lambda a: int(a.address, 16))
    d = deploy_with_council(chain, [o.address for o in owners], 2)
    assert d.council is not None
    return d, Council(chain, d.council), owners


def _admit_call(chain: Chain, d: Deployment, slug: str, operators: list[str]) -> Any:
    reg = chain.registry(d.registry)
    return reg.c.functions.admitMember(member_id(slug), int(Role.HOSPITAL), slug, operators)


def test_one_signature_does_nothing_two_admit(chain: Chain, council_of_3: Any) -> None:
    d, council, owners = council_of_3
    reg = chain.registry(d.registry)
    tx = council.propose(d.registry, _admit_call(chain, d, "hospital.k", [])
                         ._encode_transaction_data())
    assert tx.hash() == council.onchain_hash(tx)  # our EIP-712 hash is the Safe's
    one = {owners[0].address: tx.sign(owners[0])}
    with pytest.raises(InputError, match="1 of 2"):
        council.execute(tx, one)
    with pytest.raises(ChainError, match="GS020"):  # and the Safe itself refuses it too
        council.execute(tx, one, check=False)
    assert reg.members() == [] and council.nonce() == 0
    two = {**one, owners[2].address: tx.sign(owners[2])}
    council.execute(tx, two)
    assert [m.name for m in reg.members()] == ["hospital.k"] and council.nonce() == 1
    with pytest.raises(InputError, match="nonce"):  # a replay of the executed proposal
        council.execute(tx, two)


def test_deployer_alone_cannot_admit_suspend_or_add_a_key(chain: Chain,
                                                          council_of_3: Any) -> None:
    d, council, owners = council_of_3
    deployer = chain.default_sender
    reg = chain.registry(d.registry)
    assert not reg.is_council(deployer) and reg.is_council(council.address)
    op = chain.new_funded_account()
    tx = council.propose(d.registry, _admit_call(chain, d, "hospital.d", [op])
                         ._encode_transaction_data())
    council.execute(tx, {o.address: tx.sign(o) for o in owners[:2]})
    hid, key = member_id("hospital.d"), SigningKey.generate()
    proof = prove_possession(key, hid, chain.chain_id, reg.address)
    attempts = [
        (lambda: reg.admit_member(member_id("rogue"), Role.HOSPITAL, "r", [deployer],
                                  sender=deployer), "AccessControlUnauthorizedAccount"),
        (lambda: reg.suspend_member(hid, sender=deployer), "AccessControlUnauthorizedAccount"),
        (lambda: reg.add_key(hid, key.key_id, key.algorithm, key.public.raw, proof=proof,
                             sender=deployer), "MemberRegistryNotOperator"),
        (lambda: reg.add_operator(hid, deployer, sender=deployer), "MemberRegistryNotOperator"),
        (lambda: reg.revoke_key(hid, b"\x01" * 32, 1, sender=deployer),
         "MemberRegistryNotOperator"),
    ]
    for attempt, error in attempts:
        with pytest.raises(ChainError) as err:
            attempt()
        assert err.value.name == error
    log = chain.evidence_log(d.log)
    with pytest.raises(ChainError, match="AccessControlUnauthorizedAccount"):
        log.grant_anchorer(deployer)  # the log's governing role is the council's too
    assert reg.keys_of(hid) == [] and reg.member(hid).active
    reg.register_key(hid, key, sender=op)  # the hospital's own operator can
    assert reg.key_status_at(hid, key.key_id, chain.now() + 1).valid
    verify_possession(key.public, hid, key.key_id, chain.chain_id, reg.address,
                      reg.proof_of(key.key_id))


def test_removed_council_member_cannot_sign(chain: Chain, council_of_3: Any) -> None:
    d, council, owners = council_of_3
    removed = owners[1]
    tx = council.propose(council.address, council.remove_owner_data(removed.address, 2))
    council.execute(tx, {o.address: tx.sign(o) for o in owners[:2]})
    assert removed.address not in council.owners() and council.threshold() == 2
    tx = council.propose(d.registry, _admit_call(chain, d, "hospital.r", [])
                         ._encode_transaction_data())
    sigs = {o.address: tx.sign(o) for o in (owners[0], removed)}
    with pytest.raises(InputError, match="not a council member"):
        council.execute(tx, sigs)
    with pytest.raises(ChainError, match="GS026"):  # the Safe refuses the removed owner
        council.execute(tx, sigs, check=False)
    assert chain.registry(d.registry).members() == []


def test_threshold_change_and_added_owner(chain: Chain, council_of_3: Any) -> None:
    d, council, owners = council_of_3
    newcomer: LocalAccount = Account.create()
    tx = council.propose(council.address, council.add_owner_data(newcomer.address, 3))
    council.execute(tx, {o.address: tx.sign(o) for o in owners[:2]})
    assert council.threshold() == 3 and newcomer.address in council.owners()
    tx = council.propose(d.registry, _admit_call(chain, d, "hospital.t", [])
                         ._encode_transaction_data())
    with pytest.raises(InputError, match="2 of 3"):
        council.execute(tx, {o.address: tx.sign(o) for o in owners[:2]})
    council.execute(tx, {o.address: tx.sign(o) for o in [*owners[:2], newcomer]})
    assert chain.registry(d.registry).member(member_id("hospital.t")).role == Role.HOSPITAL


def test_possession_proof_binds_member_key_chain_and_registry(chain: Chain,
                                                              deployment: Deployment) -> None:
    key, other = SigningKey.generate(KeyAlgorithm.ECDSA_P256), SigningKey.generate()
    hid = member_id("hospital.pop")
    proof = prove_possession(key, hid, chain.chain_id, deployment.registry)
    verify_possession(key.public, hid, key.key_id, chain.chain_id, deployment.registry, proof)
    wrong = [(key.public, member_id("police.pop"), key.key_id, chain.chain_id,
              deployment.registry), (key.public, hid, key.key_id, chain.chain_id + 1,
                                     deployment.registry),
             (key.public, hid, key.key_id, chain.chain_id, deployment.log),
             (other.public, hid, key.key_id, chain.chain_id, deployment.registry)]
    for pub, mid, kid, cid, reg in wrong:
        with pytest.raises(VerificationError):
            verify_possession(pub, mid, kid, cid, reg, proof)
