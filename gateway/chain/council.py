"""The consortium council: a k-of-n Safe multisig (v1.4.1) that governs the registry.

Safe was chosen over a council contract of our own because it is the multisig institutions
already hold keys for, it is audited, and its published bytecode (solc 0.7.6) has no PUSH0,
so it runs wherever our Paris-compiled contracts run. A council action is a ``SafeTx``; each
owner signs its EIP-712 hash offline; anyone sends ``execTransaction`` once ``threshold``
owners have signed, with the signatures sorted by owner address as Safe requires.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from gateway.chain.client import Chain, Deployment
from gateway.chain.errors import as_chain_error
from gateway.core.errors import ChainError, InputError

ZERO = "0x0000000000000000000000000000000000000000"
SENTINEL = "0x0000000000000000000000000000000000000001"
"""Head of Safe's owner linked list: the ``prevOwner`` of the first owner."""

SAFE_TX_TYPES = {
    "EIP712Domain": [{"name": "chainId", "type": "uint256"},
                     {"name": "verifyingContract", "type": "address"}],
    "SafeTx": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"},
               {"name": "data", "type": "bytes"}, {"name": "operation", "type": "uint8"},
               {"name": "safeTxGas", "type": "uint256"}, {"name": "baseGas", "type": "uint256"},
               {"name": "gasPrice", "type": "uint256"}, {"name": "gasToken", "type": "address"},
               {"name": "refundReceiver", "type": "address"},
               {"name": "nonce", "type": "uint256"}],
}


@dataclass(frozen=True)
class SafeTx:
    """One council action as Safe hashes it; no refunds, plain calls (operation 0)."""

    chain_id: int
    safe: str
    to: str
    data: str
    nonce: int
    value: int = 0
    operation: int = 0
    safe_tx_gas: int = 0
    base_gas: int = 0
    gas_price: int = 0
    gas_token: str = ZERO
    refund_receiver: str = ZERO

    def typed_data(self) -> dict[str, Any]:
        """The EIP-712 message owners sign (Safe 1.4.1's domain: chain id and Safe address)."""
        return {"types": SAFE_TX_TYPES, "primaryType": "SafeTx",
                "domain": {"chainId": self.chain_id, "verifyingContract": self.safe},
                "message": {"to": self.to, "value": self.value,
                            "data": bytes.fromhex(self.data.removeprefix("0x")),
                            "operation": self.operation, "safeTxGas": self.safe_tx_gas,
                            "baseGas": self.base_gas, "gasPrice": self.gas_price,
                            "gasToken": self.gas_token, "refundReceiver": self.refund_receiver,
                            "nonce": self.nonce}}

    def hash(self) -> bytes:
        """The SafeTx hash (what ``getTransactionHash`` answers on chain)."""
        signable = encode_typed_data(full_message=self.typed_data())
        return bytes(Web3.keccak(b"\x19" + signable.version + signable.header + signable.body))

    def sign(self, account: LocalAccount) -> bytes:
        """An owner's 65-byte signature (r, s, v with v 27/28: Safe's plain ECDSA type)."""
        signed = account.sign_typed_data(full_message=self.typed_data())
        return bytes(signed.signature)

    def signer_of(self, signature: bytes) -> str:
        """The address that made ``signature`` over this SafeTx."""
        signable = encode_typed_data(full_message=self.typed_data())
        return str(Account.recover_message(signable, signature=signature))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> SafeTx:
        try:
            return cls(**{k: obj[k] for k in cls.__dataclass_fields__ if k in obj})
        except TypeError as exc:
            raise InputError(f"not a SafeTx: {exc}", code="bad_proposal") from exc


class Council:
    """A deployed Safe: its owners, threshold, nonce, proposals and execution."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.c = chain.contract_at("SafeL2", address)
        self.address = str(self.c.address)

    def owners(self) -> list[str]:
        return [str(a) for a in self.chain.call(self.c.functions.getOwners())]

    def threshold(self) -> int:
        return int(self.chain.call(self.c.functions.getThreshold()))

    def nonce(self) -> int:
        return int(self.chain.call(self.c.functions.nonce()))

    def propose(self, to: str, data: str, nonce: int | None = None) -> SafeTx:
        """A SafeTx calling ``to`` with ``data`` at the Safe's next nonce (or ``nonce``)."""
        return SafeTx(self.chain.chain_id, self.address, Web3.to_checksum_address(to), data,
                      self.nonce() if nonce is None else nonce)

    def onchain_hash(self, tx: SafeTx) -> bytes:
        return bytes(self.chain.call(self.c.functions.getTransactionHash(
            tx.to, tx.value, bytes.fromhex(tx.data.removeprefix("0x")), tx.operation,
            tx.safe_tx_gas, tx.base_gas, tx.gas_price, tx.gas_token, tx.refund_receiver,
            tx.nonce)))

    def execute(self, tx: SafeTx, signatures: dict[str, bytes], *,
                sender: str | None = None, check: bool = True) -> Any:
        """Send ``execTransaction`` with ``signatures`` (owner -> signature) sorted by owner.

        With ``check`` it refuses first, here, what the Safe would refuse: too few signatures
        or a signer that is not an owner (a removed council member).
        """
        if check:
            self._check(tx, signatures)
        ordered = sorted(signatures.items(), key=lambda item: int(item[0], 16))
        packed = b"".join(sig for _, sig in ordered)
        call = self.c.functions.execTransaction(
            tx.to, tx.value, bytes.fromhex(tx.data.removeprefix("0x")), tx.operation,
            tx.safe_tx_gas, tx.base_gas, tx.gas_price, tx.gas_token, tx.refund_receiver, packed)
        receipt = self.chain.transact(call, sender)
        failures = self.c.events.ExecutionFailure().process_receipt(receipt, errors=DISCARD)
        if failures:
            raise ChainError("the council's transaction executed but its call failed",
                             code="council_call_failed")
        return receipt

    def _check(self, tx: SafeTx, signatures: dict[str, bytes]) -> None:
        if tx.nonce != self.nonce():
            raise InputError(f"proposal is for council nonce {tx.nonce}, the Safe is at "
                             f"{self.nonce()}: it was executed already or another went first",
                             code="stale_proposal")
        owners = {o.lower() for o in self.owners()}
        for owner, sig in signatures.items():
            if tx.signer_of(sig).lower() != owner.lower():
                raise InputError(f"signature listed for {owner} was made by another key",
                                 code="bad_council_signature")
            if owner.lower() not in owners:
                raise InputError(f"{owner} is not a council member (removed?)",
                                 code="not_council_member")
        if len(signatures) < self.threshold():
            raise InputError(f"{len(signatures)} of {self.threshold()} required council "
                             "signatures", code="not_enough_signatures")

    # -- council membership (calls on the Safe itself) -----------------------------------

    def add_owner_data(self, owner: str, threshold: int) -> str:
        return str(self.c.encode_abi("addOwnerWithThreshold",
                                     [Web3.to_checksum_address(owner), threshold]))

    def remove_owner_data(self, owner: str, threshold: int) -> str:
        owners = [o.lower() for o in self.owners()]
        if owner.lower() not in owners:
            raise InputError(f"{owner} is not a council member", code="not_council_member")
        i = owners.index(owner.lower())
        prev = SENTINEL if i == 0 else self.owners()[i - 1]
        return str(self.c.encode_abi("removeOwner", [prev, Web3.to_checksum_address(owner),
                                                     threshold]))

    def change_threshold_data(self, threshold: int) -> str:
        return str(self.c.encode_abi("changeThreshold", [threshold]))


class CouncilSigner:
    """A council whose owner keys this process holds (development only): signs and executes."""

    def __init__(self, council: Council, keys: list[LocalAccount]) -> None:
        self.council, self.keys = council, keys

    def execute(self, call: Any) -> Any:
        """Run a registry call through the Safe, signed by the first ``threshold`` keys."""
        target = str(call.address)
        try:
            call.call({"from": self.council.address})  # decoded revert reason, before signing
            data = call._encode_transaction_data()
        except Exception as exc:
            raise as_chain_error(exc, self.council.chain.decoder) from exc
        return self.run(target, data)

    def run(self, to: str, data: str) -> Any:
        tx = self.council.propose(to, data)
        chosen = self.keys[: self.council.threshold()]
        return self.council.execute(tx, {k.address: tx.sign(k) for k in chosen})


def deploy_council(chain: Chain, owners: list[str], threshold: int) -> Council:
    """Deploy the Safe singleton, its proxy factory and fallback handler, and one Safe proxy."""
    if not 1 <= threshold <= len(owners):
        raise InputError(f"threshold {threshold} must be between 1 and the {len(owners)} "
                         "council members", code="bad_threshold")
    if len({o.lower() for o in owners}) != len(owners):
        raise InputError("council members must be distinct", code="bad_council")
    singleton = chain.deploy_artifact("SafeL2")
    factory = chain.contract_at("SafeProxyFactory", chain.deploy_artifact("SafeProxyFactory"))
    handler = chain.deploy_artifact("CompatibilityFallbackHandler")
    setup = chain.contract_at("SafeL2", singleton).encode_abi("setup", [
        [Web3.to_checksum_address(o) for o in owners], threshold, ZERO, b"", handler, ZERO, 0,
        ZERO])
    receipt = chain.transact(factory.functions.createProxyWithNonce(singleton, setup, 0))
    created = factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)
    if len(created) != 1:
        raise ChainError("Safe proxy factory emitted no ProxyCreation", code="missing_event")
    return Council(chain, str(created[0]["args"]["proxy"]))


def deploy_with_council(chain: Chain, owners: list[str], threshold: int, *,
                        development: bool = False, anchorer: str | None = None) -> Deployment:
    """Deploy a council Safe, then the registry and log governed by it alone."""
    council = deploy_council(chain, owners, threshold)
    return chain.deploy(anchorer, council=council.address, development_council=development)


def dev_council(chain: Chain, size: int = 3, threshold: int = 2
                ) -> tuple[Deployment, CouncilSigner]:
    """A development deployment with a fresh ``threshold``-of-``size`` council whose keys
    are returned (and attached to ``chain``, so its registries admit through the Safe)."""
    keys: list[LocalAccount] = [Account.create() for _ in range(size)]
    deployment = deploy_with_council(chain, [k.address for k in keys], threshold,
                                     development=True)
    signer = attach_council(chain, deployment, keys)
    # a little test ether lets eth_call run "from" the Safe on the in-process EVM, which
    # checks balances even for calls: that preflight yields the registry's decoded error
    chain.send_value(signer.council.address, 10**18)
    return deployment, signer


def attach_council(chain: Chain, deployment: Deployment,
                   keys: list[LocalAccount]) -> CouncilSigner:
    """Let ``chain.registry(deployment.registry)`` govern through these council keys."""
    if deployment.council is None:
        raise InputError("this deployment has no council", code="no_council")
    signer = CouncilSigner(Council(chain, deployment.council), keys)
    chain.councils[Web3.to_checksum_address(deployment.registry)] = signer
    return signer


def dev_keys_path(deployment_file: Path) -> Path:
    """Where ``claimx deploy`` writes a development council's owner keys: next to the file."""
    return deployment_file.with_name(deployment_file.stem + ".council-keys.json")


def write_dev_keys(path: Path, council: str, threshold: int, keys: list[LocalAccount]) -> None:
    """Write development owner keys (mode 0600): they are the whole council's power."""
    body = {"development": True, "council": council, "threshold": threshold,
            "owners": [{"address": k.address, "private_key": "0x" + bytes(k.key).hex()}
                       for k in keys]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(body, indent=2) + "\n")


def load_dev_keys(path: Path) -> list[LocalAccount]:
    """The owner keys of a development council, as written by :func:`write_dev_keys`."""
    try:
        body = json.loads(path.read_text())
        return [Account.from_key(o["private_key"]) for o in body["owners"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read development council keys {path}: {exc}",
                         code="bad_council_keys") from exc
