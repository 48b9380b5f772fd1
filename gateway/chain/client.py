"""The chain client: with its private helpers (``_chain_contracts``, ``_chain_errors``) the
only code that imports web3.

One :class:`Chain` talks to the in-process EVM (eth-tester with py-evm: the embedded
default) or to any JSON-RPC node (anvil in tests, a Besu QBFT consortium in production).
Transactions go out from the node's unlocked accounts (eth-tester, anvil) or are signed
here with local keys (Besu, which keeps no keys). Every failure becomes a
:class:`~gateway.core.errors.ChainError`; contract custom errors are decoded through the ABIs
(web3.py hands back only raw revert data) into their names and arguments.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from gateway.chain.breaker import CircuitBreaker
from gateway.chain.contracts import EvidenceLogClient, Governor, Registry
from gateway.chain.errors import ErrorDecoder, as_chain_error
from gateway.chain.models import (
    KEY_STATUS,
    AnchorResult,
    KeyState,
    MemberInfo,
    Revocation,
    TreeHead,
)
from gateway.core.errors import ChainError, ChainUnavailableError, InputError

__all__ = ["KEY_STATUS", "AnchorResult", "Chain", "Deployment", "EvidenceLogClient", "KeyState",
           "MemberInfo", "Registry", "Revocation", "TreeHead", "artifact"]

_PACKAGE = Path(__file__).resolve().parents[1]  # gateway/
_ART_DIRS = (_PACKAGE.parent / "contracts" / "build", _PACKAGE / "_contracts_build")
FUNDING_WEI = 10**18
"""Test ether for a new local account: plenty for its gas, and small enough that the
node's default accounts (10,000 ether on anvil) fund thousands of them in one test run."""
DEFAULT_TIMEOUT = 3.0
"""Seconds one JSON-RPC request may take; a node slower than this counts as down."""


@functools.cache
def artifact(name: str) -> dict[str, Any]:
    """A compiled contract (ABI, bytecode) from contracts/build (or the wheel's copy)."""
    for folder in _ART_DIRS:
        path = folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
    raise ChainError(f"compiled artifact {name}.json not found in contracts/build; run "
                     "`python scripts/compile_contracts.py`", code="no_artifact")


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live; written by ``claimx deploy``, read by the gateway."""

    chain_id: int
    registry: str
    log: str
    admin: str
    """The deployer's account: it anchors (EvidenceLog's ANCHOR_ROLE). With a ``council`` it
    holds no other power; without one (test deployments) it also governs the registry."""
    council: str | None = None
    """The Safe multisig that governs the registry and the log, when there is one."""
    development_council: bool = False
    """The council's owner keys were made by ``claimx deploy`` for development: refused in
    production."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        """Parse a deployment file, refusing anything but its four fields' shapes."""
        try:
            obj = json.loads(text)
            council = obj.get("council")
            dep = cls(int(obj["chain_id"]), str(obj["registry"]), str(obj["log"]),
                      str(obj["admin"]), None if council is None else str(council),
                      bool(obj.get("development_council", False)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"not a claimx deployment file ({type(exc).__name__}: {exc})",
                             code="bad_deployment") from exc
        for field in ("registry", "log", "admin", "council"):
            value = getattr(dep, field)
            if value is not None and not Web3.is_address(value):
                raise InputError(f"deployment field {field!r} is not an Ethereum address",
                                 code="bad_deployment")
        return dep


class GuardedHTTPProvider(HTTPProvider):
    """web3's HTTP provider with one short timeout, no hidden retries, and a circuit breaker.

    A transport failure (refused, reset, timed out, HTTP error) is a
    :class:`ChainUnavailableError`; a JSON-RPC answer, even an error, means the node is up.
    """

    def __init__(self, url: str, *, timeout: float, breaker: CircuitBreaker) -> None:
        super().__init__(url, request_kwargs={"timeout": timeout},
                         exception_retry_configuration=None)
        self.breaker = breaker

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        self.breaker.before()
        try:
            response: RPCResponse = super().make_request(method, params)
        except (requests.RequestException, OSError) as exc:
            self.breaker.failure(exc, timed_out=isinstance(exc, requests.Timeout))
            raise ChainUnavailableError(f"the chain node did not answer {method} "
                                        f"({type(exc).__name__})",
                                        retry_after=self.breaker.retry_after()) from exc
        self.breaker.success()
        return response


class Chain:
    """A web3 connection, its sending accounts and the error decoder for our contracts."""

    def __init__(self, w3: Web3, *, description: str, local: LocalAccount | None = None,
                 breaker: CircuitBreaker | None = None) -> None:
        self.w3 = w3
        self.description = description
        self.breaker = breaker or CircuitBreaker()
        """Open while the node is down (the embedded EVM's never opens); read by /readyz."""
        self._local: dict[str, LocalAccount] = {}
        # One nonce per transaction: two threads of this process (the anchor worker, a
        # registration, the push worker) signing for the same account must not both read the
        # same pending count. The node assigns nonces itself only for its own accounts.
        self._nonce_lock = threading.Lock()
        self.councils: dict[str, Governor] = {}
        """Council signers this process holds (development councils only), by registry
        address: :meth:`registry` attaches them, so dev flows admit members through the Safe."""
        self._primary = local.address if local is not None else None
        if local is not None:
            self._local[local.address] = local
        self.decoder = ErrorDecoder([artifact("MemberRegistry")["abi"],
                                     artifact("EvidenceLog")["abi"]])
        try:
            self.chain_id = int(w3.eth.chain_id)
        except Exception as exc:
            hint = (f"cannot reach the chain at {description}; is the node running and the URL "
                    "right?")
            if isinstance(exc, ChainUnavailableError):
                raise ChainError(hint, code="chain_unreachable") from exc
            raise as_chain_error(exc, self.decoder, hint) from exc

    @classmethod
    def embedded(cls) -> Chain:
        """An in-process EVM (eth-tester + py-evm): no network, gone when the process ends."""
        return cls(Web3(EthereumTesterProvider()), description="in-process EVM")

    @classmethod
    def connect(cls, rpc_url: str, private_key: str | None = None, *,
                timeout: float = DEFAULT_TIMEOUT) -> Chain:
        """Any JSON-RPC node; with ``private_key`` transactions are signed here (Besu).

        Each request waits at most ``timeout`` seconds and is never retried behind the
        caller's back; repeated failures open the chain's circuit breaker.
        """
        breaker = CircuitBreaker()
        w3 = Web3(GuardedHTTPProvider(rpc_url, timeout=timeout, breaker=breaker))
        local = Account.from_key(private_key) if private_key else None
        return cls(w3, description=rpc_url, local=local, breaker=breaker)

    @property
    def accounts(self) -> list[str]:
        """Accounts that can send: local keys first, then the node's unlocked accounts."""
        return [*self._local, *[str(a) for a in self.w3.eth.accounts]]

    @property
    def default_sender(self) -> str:
        """The configured private key's account, else the node's first unlocked account."""
        if self._primary is not None:
            return self._primary
        accounts = [str(a) for a in self.w3.eth.accounts]
        if not accounts:
            raise ChainError("no account to send from: pass a private key "
                             "(CLAIMX_ANCHOR_PRIVATE_KEY) for a node without unlocked accounts",
                             code="no_account")
        return accounts[0]

    def now(self) -> int:
        """Timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_number(self) -> int:
        """Number of the latest block (a restored local node may be behind the database)."""
        return int(self.w3.eth.block_number)

    def has_code(self, address: str) -> bool:
        """Whether a contract lives at ``address`` (a deployment file may name another chain)."""
        try:
            return len(self.w3.eth.get_code(Web3.to_checksum_address(address))) > 0
        except Exception as exc:
            raise as_chain_error(exc, self.decoder) from exc

    def new_funded_account(self) -> str:
        """A fresh account with test ether (embedded and dev nodes), signed for locally."""
        acct: LocalAccount = Account.create()
        self._local[acct.address] = acct
        self.send_value(acct.address, FUNDING_WEI)
        return str(acct.address)

    def private_key_of(self, address: str) -> str:
        """The 0x private key of a local account made here (to hand a dev member its operator)."""
        return "0x" + bytes(self._local[address].key).hex()

    def add_local(self, private_key: str) -> str:
        """Sign for the account of ``private_key`` here too (an institution's operator)."""
        acct: LocalAccount = Account.from_key(private_key)
        self._local[acct.address] = acct
        return str(acct.address)

    def send_value(self, to: str, wei: int) -> None:
        tx = {"from": self.default_sender, "to": to, "value": wei}
        self._wait(self._send_tx(tx))

    def deploy(self, admin: str | None = None, *, council: str | None = None,
               development_council: bool = False) -> Deployment:
        """Deploy MemberRegistry and EvidenceLog.

        ``admin`` (default: the sender) anchors. ``council`` (a Safe) governs both contracts
        and the deployer keeps no other role; without it ``admin`` governs too, which only
        tests and benchmarks should want (``claimx deploy`` always makes a council).
        """
        sender = self.default_sender
        admin = admin or sender
        governor = council or admin
        registry = self._deploy("MemberRegistry", sender, governor)
        log = self._deploy("EvidenceLog", sender, registry, governor, admin)
        return Deployment(self.chain_id, registry, log, admin, council, development_council)

    def registry(self, address: str) -> Registry:
        contract = self._contract("MemberRegistry", address)
        return Registry(self, contract, self.councils.get(str(contract.address)))

    def contract_at(self, name: str, address: str) -> Contract:
        """A web3 contract for a committed artifact (``SafeL2``, ...) at ``address``."""
        return self._contract(name, address)

    def deploy_artifact(self, name: str, *args: Any) -> str:
        """Deploy a committed artifact from the default sender; returns its address."""
        return self._deploy(name, self.default_sender, *args)

    def evidence_log(self, address: str) -> EvidenceLogClient:
        return EvidenceLogClient(self, self._contract("EvidenceLog", address))

    # -- transactions ------------------------------------------------------------------

    def transact(self, call: Any, sender: str | None = None, *, gas: int | None = None) -> Any:
        """Send a contract call from ``sender`` and wait for it; returns the receipt.

        Without ``gas`` the call is first simulated (surfacing a revert reason before any
        gas is spent) and the node estimates the limit. With a fixed ``gas`` limit neither
        happens (each re-runs the call: most of an anchor's latency on the in-process EVM);
        a transaction that reverts anyway is simulated afterwards for its reason."""
        sender = sender or self.default_sender
        try:
            if gas is None:
                call.call({"from": sender})  # surfaces the revert reason before spending gas
                tx = call.build_transaction({"from": sender})
            else:
                tx = call.build_transaction({"from": sender, "gas": gas})
        except Exception as exc:
            raise as_chain_error(exc, self.decoder) from exc
        try:
            return self._wait(self._send_tx(tx))
        except ChainError as reverted:
            if gas is None or reverted.code != "tx_reverted":
                raise
            try:
                call.call({"from": sender})
            except Exception as exc:
                raise as_chain_error(exc, self.decoder) from exc
            raise

    def _send_tx(self, tx: dict[str, Any]) -> bytes:
        sender = tx["from"]
        try:
            local = self._local.get(sender)
            if local is None:
                return bytes(self.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
            tx.setdefault("chainId", self.chain_id)
            if "gas" not in tx:
                tx["gas"] = self.w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
            if "gasPrice" not in tx and "maxFeePerGas" not in tx:
                tx["gasPrice"] = self.w3.eth.gas_price
            with self._nonce_lock:
                tx.setdefault("nonce", self.w3.eth.get_transaction_count(sender, "pending"))
                signed = local.sign_transaction(tx)
                return bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        except Exception as exc:
            raise as_chain_error(exc, self.decoder) from exc

    def _wait(self, tx_hash: bytes) -> Any:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)  # type: ignore[arg-type]
        except Exception as exc:
            raise as_chain_error(exc, self.decoder) from exc
        if receipt["status"] != 1:
            raise ChainError(f"transaction {tx_hash.hex()} reverted", code="tx_reverted")
        return receipt

    def _deploy(self, name: str, sender: str, *args: Any) -> str:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        try:
            tx = factory.constructor(*args).build_transaction({"from": sender})
        except Exception as exc:
            raise as_chain_error(exc, self.decoder) from exc
        receipt = self._wait(self._send_tx(tx))
        return str(receipt["contractAddress"])

    def _contract(self, name: str, address: str) -> Contract:
        try:
            checksum = Web3.to_checksum_address(address)
        except ValueError as exc:
            raise ChainError(f"{address!r} is not an Ethereum address",
                             code="bad_address") from exc
        if not self.w3.eth.get_code(checksum):
            raise ChainError(f"no contract at {checksum} on {self.description} (chain "
                             f"{self.chain_id}): wrong address, or not deployed there",
                             code="no_contract")
        return self.w3.eth.contract(address=checksum, abi=artifact(name)["abi"])

    def call(self, fn: Any) -> Any:
        try:
            return fn.call()
        except Exception as exc:
            raise as_chain_error(exc, self.decoder) from exc
