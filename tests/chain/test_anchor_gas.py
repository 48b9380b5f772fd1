"""The fixed gas limit of an anchor holds for the longest consistency proof a log can need."""

from __future__ import annotations

import hashlib

from gateway.chain.client import Chain
from gateway.chain.contracts import ANCHOR_GAS_LIMIT
from gateway.core import merkle

SIZE = 1 << 12


def _tree(size: int) -> dict[tuple[int, int], bytes]:
    nodes: dict[tuple[int, int], bytes] = {}
    for i in range(size):
        leaf = merkle.leaf_hash(hashlib.sha256(i.to_bytes(8, "big")).digest())
        for level, idx, h in merkle.completed_nodes(i, leaf, lambda lv, ix: nodes[(lv, ix)]):
            nodes[(level, idx)] = h
    return nodes


def test_anchor_gas_limit_covers_the_longest_uint64_proof(embedded_chain: Chain) -> None:
    """Two anchors with proofs of different lengths give the gas per proof hash; at that rate
    a proof of 128 hashes (more than any uint64 log needs) still fits the fixed limit with a
    margin of 1.5, and both anchors went through with that limit."""
    nodes = _tree(SIZE)

    def read(level: int, idx: int) -> bytes:
        return nodes[(level, idx)]

    log = embedded_chain.evidence_log(embedded_chain.deploy().log)
    first = log.anchor(1, merkle.tree_root(read, 1), [])
    assert first.gas_used < ANCHOR_GAS_LIMIT
    short_to, long_to = 2, SIZE - 1  # 1 -> 2: one hash; 2 -> 4095: the most for this size
    short = merkle.consistency_proof(read, 1, short_to)
    r1 = log.anchor(short_to, merkle.tree_root(read, short_to), short)
    long = merkle.consistency_proof(read, short_to, long_to)
    r2 = log.anchor(long_to, merkle.tree_root(read, long_to), long)
    assert len(long) > len(short) + 8
    per_hash = (r2.gas_used - r1.gas_used) / (len(long) - len(short))
    worst = r1.gas_used + per_hash * (128 - len(short))
    assert worst * 1.5 < ANCHOR_GAS_LIMIT, (r1.gas_used, r2.gas_used, per_hash, worst)
