"""The naive design: one transaction per record (``NaiveDigestStore.record(digest)``, the
cheapest honest per-record write), timed on a sample of records.

Two ways to send: the plainest (send one, wait for its receipt, then the next) and
pipelined (sign and send every transaction with explicit nonces and a fixed gas limit,
then wait for all receipts), which is as fast as one sender can go on a real node.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from gateway.chain.client import Chain, artifact


@dataclass(frozen=True)
class NaiveRun:
    records_per_s: float
    gas_per_record: int
    sample: int


def _store(chain: Chain) -> Any:
    art = artifact("NaiveDigestStore")
    factory = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    receipt = chain.w3.eth.wait_for_transaction_receipt(
        factory.constructor().transact({"from": chain.default_sender}))
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])


def _digest(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def send_and_wait(chain: Chain, sample: int) -> NaiveRun:
    """Records/s and gas per record sending each transaction and waiting for it."""
    store, sender = _store(chain), chain.default_sender
    gas = 0
    start = time.perf_counter()
    for i in range(sample):
        tx = store.functions.record(_digest(i)).transact({"from": sender})
        gas += chain.w3.eth.wait_for_transaction_receipt(tx)["gasUsed"]
    return NaiveRun(sample / (time.perf_counter() - start), gas // sample, sample)


def pipelined(chain: Chain, sample: int) -> NaiveRun:
    """Records/s with every transaction sent before any receipt is awaited."""
    store, sender = _store(chain), chain.default_sender
    w3 = chain.w3
    limit = int(store.functions.record(_digest(0)).estimate_gas({"from": sender}) * 1.2)
    nonce = w3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending")
    price = w3.eth.gas_price
    start = time.perf_counter()
    hashes = [store.functions.record(_digest(1_000_000 + i)).transact(
        {"from": sender, "gas": limit, "nonce": nonce + i, "gasPrice": price})
        for i in range(sample)]
    gas = sum(w3.eth.wait_for_transaction_receipt(h)["gasUsed"] for h in hashes)
    return NaiveRun(sample / (time.perf_counter() - start), gas // sample, sample)
