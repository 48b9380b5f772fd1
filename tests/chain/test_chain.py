"""The chain client itself: local signing (the Besu path), deployment files, addresses and the
decoding of revert data into ChainErrors."""

from __future__ import annotations

import secrets

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak
from web3.exceptions import ContractCustomError

from gateway.chain.client import Chain, Deployment, artifact
from gateway.chain.errors import ErrorDecoder, as_chain_error
from gateway.core.errors import ChainError, InputError
from gateway.core.types import Role, member_id


def _signer(chain: Chain, key: str) -> Chain:
    """A client that signs with ``key`` itself: over JSON-RPC exactly as against Besu."""
    if chain.description.startswith("http"):
        return Chain.connect(chain.description, private_key=key)
    return Chain(chain.w3, description=chain.description, local=Account.from_key(key))


def test_local_key_signs_and_is_the_default_sender(chain: Chain) -> None:
    key = "0x" + secrets.token_hex(32)
    address = Account.from_key(key).address
    chain.send_value(address, 10**19)
    signer = _signer(chain, key)
    assert signer.default_sender == address and signer.accounts[0] == address
    dep = signer.deploy()
    assert dep.admin == address and dep.chain_id == chain.chain_id
    hospital = member_id("hospital.local-signer")
    signer.registry(dep.registry).admit_member(hospital, Role.HOSPITAL, "h", [])
    assert signer.registry(dep.registry).member(hospital).role == Role.HOSPITAL
    # the node's own unlocked account is not the admin of these contracts
    with pytest.raises(ChainError) as err:
        chain.registry(dep.registry).suspend_member(hospital)
    assert err.value.name == "AccessControlUnauthorizedAccount"
    assert chain.default_sender.lower() in str(err.value).lower()


def test_deployment_file_round_trip_and_refusals(chain: Chain) -> None:
    dep = chain.deploy()
    assert Deployment.from_json(dep.to_json()) == dep
    for bad in ("{", "[]", '{"chain_id": 1}',
                dep.to_json().replace(dep.log, "0x1234")):
        with pytest.raises(InputError) as err:
            Deployment.from_json(bad)
        assert err.value.code == "bad_deployment"


def test_wrong_addresses_are_named_before_any_call(chain: Chain) -> None:
    with pytest.raises(ChainError) as err:
        chain.registry("0xnot-an-address")
    assert err.value.code == "bad_address"
    with pytest.raises(ChainError) as err:
        chain.evidence_log(chain.new_funded_account())  # an account, no code
    assert err.value.code == "no_contract" and "not deployed" in err.value.msg


def _decoder() -> ErrorDecoder:
    return ErrorDecoder([artifact("MemberRegistry")["abi"], artifact("EvidenceLog")["abi"]])


def test_decoder_names_custom_errors_with_their_arguments() -> None:
    """What web3 raises for a custom error over JSON-RPC: only the raw revert data."""
    data = "0x" + (keccak(text="EvidenceLogNotConsistent(uint64,uint64)")[:4] + encode(
        ["uint64", "uint64"], [4, 3])).hex()
    err = as_chain_error(ContractCustomError(data, data=data), _decoder())
    assert err.name == "EvidenceLogNotConsistent" and err.error_args == (4, 3)
    assert err.msg == "EvidenceLogNotConsistent(oldSize=4, newSize=3)"
    assert err.code == "contract_error"


def test_decoder_handles_require_strings_panics_and_unknown_selectors() -> None:
    decoder = _decoder()
    reason = bytes.fromhex("08c379a0") + encode(["string"], ["no"])
    assert decoder.decode(reason) is not None
    assert str(decoder.decode(reason)) == "Error(message=no)"
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    decoded = decoder.decode(panic)
    assert decoded is not None and decoded.name == "Panic" and decoded.error_args == (0x11,)
    assert decoder.decode(bytes.fromhex("deadbeef") + b"\x00" * 32) is None
    truncated = decoder.decode(reason[:10])
    assert truncated is not None and "undecodable" in truncated.msg
    generic = as_chain_error(ValueError("something else"), decoder)
    assert generic.code == "chain_error" and generic.name is None


def test_unreachable_node_names_the_url_and_a_hint() -> None:
    with pytest.raises(ChainError) as err:
        Chain.connect("http://127.0.0.1:9", private_key="0x" + "11" * 32)
    assert err.value.code == "chain_unreachable"
    assert "http://127.0.0.1:9" in err.value.msg and "running" in err.value.msg
