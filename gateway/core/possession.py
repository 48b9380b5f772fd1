"""Proof of possession for a key registration: the new key signs where it is being registered.

A member's operator account registers its signing keys on chain, but an account could copy
somebody else's public key (to claim their signatures) or register a key nobody holds. The
new key therefore signs (member id, key id, chain id, registry address); the registry stores
and emits those bytes, and the gateway, ``claimx verify`` and ``claimx monitor`` check them
here, off chain: the EVM has no Ed25519 precompile (and P-256 only on chains with RIP-7212),
so the contract cannot. Binding chain id and registry address stops replay on another
deployment; binding member id stops a key being claimed for another institution.
"""

from __future__ import annotations

from gateway.core.errors import VerificationError
from gateway.core.keys import PublicKey, SigningKey

DOMAIN = b"claimx key possession v1\x00"


def possession_message(member_id: bytes, key_id: bytes, chain_id: int, registry: str) -> bytes:
    """The exact bytes a new key signs: a fixed domain, then the four values, fixed-width."""
    address = bytes.fromhex(registry.removeprefix("0x").removeprefix("0X"))
    if len(member_id) != 32 or len(key_id) != 32 or len(address) != 20:
        raise ValueError("member id and key id are 32 bytes, a registry address 20")
    return DOMAIN + member_id + key_id + chain_id.to_bytes(32, "big") + address


def prove_possession(key: SigningKey, member_id: bytes, chain_id: int, registry: str) -> bytes:
    """The proof a registration carries: ``key`` signs its own registration."""
    return key.sign(possession_message(member_id, key.key_id, chain_id, registry))


def verify_possession(public: PublicKey, member_id: bytes, key_id: bytes, chain_id: int,
                      registry: str, proof: bytes) -> None:
    """Raise unless ``proof`` is ``public``'s signature over this very registration."""
    if public.key_id != key_id:
        raise VerificationError("registered key id is not the hash of the registered public key",
                                code="key_id_mismatch")
    try:
        public.verify(proof, possession_message(member_id, key_id, chain_id, registry))
    except VerificationError as exc:
        raise VerificationError("the key's proof of possession does not verify: the account "
                                "that registered it may not hold it", code="bad_possession_proof"
                                ) from exc
