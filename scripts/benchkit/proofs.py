"""Proof build and verify times on a grown log: what an auditor's request costs the gateway.

Each sample builds a proof the way the API does (gateway.services.receipts.inclusion and
gateway.services.records.consistency, in a fresh session) with a cold process node cache, the
worst case of a request for an old record, then verifies it as a client does
(gateway.core.merkle). The leaves and sizes are drawn at random over the whole log.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass

from sqlalchemy import select

from gateway.core import merkle
from gateway.services.receipts import inclusion
from gateway.services.records import consistency
from gateway.services.wiring import Services
from gateway.store.log import NodeCache
from gateway.store.tables import Record


@dataclass(frozen=True)
class ProofTimes:
    """p95 milliseconds over the samples."""

    inclusion_build_ms: float
    inclusion_verify_ms: float
    consistency_build_ms: float
    consistency_verify_ms: float


def proof_times(services: Services, size: int, samples: int = 30,
                seed: int = 1) -> ProofTimes:
    """p95 build and verify times of ``samples`` inclusion and consistency proofs at ``size``
    (the anchored size of the log)."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {"ib": [], "iv": [], "cb": [], "cv": []}
    for _ in range(samples):
        _one_inclusion(services, rng.randrange(size), times)
        first = rng.randrange(1, size)
        _one_consistency(services, first, rng.randrange(first, size + 1), times)
    return ProofTimes(*(_p95(times[k]) for k in ("ib", "iv", "cb", "cv")))


def _one_inclusion(services: Services, leaf: int, times: dict[str, list[float]]) -> None:
    t0 = time.perf_counter()
    with services.db.session() as s:
        rec = s.scalar(select(Record).where(Record.leaf_index == leaf))
        assert rec is not None
        inc = inclusion(s, rec, NodeCache())
    t1 = time.perf_counter()
    merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(inc.digest)), inc.leaf_index,
                            inc.tree_head.size, [bytes.fromhex(p) for p in inc.inclusion_proof],
                            bytes.fromhex(inc.tree_head.root))
    times["ib"].append(t1 - t0)
    times["iv"].append(time.perf_counter() - t1)


def _one_consistency(services: Services, first: int, second: int,
                     times: dict[str, list[float]]) -> None:
    t0 = time.perf_counter()
    with services.db.session() as s:
        got = consistency(s, NodeCache(), first, second)
    t1 = time.perf_counter()
    merkle.verify_consistency(first, second, [bytes.fromhex(p) for p in got["proof"]],
                              bytes.fromhex(got["root1"]), bytes.fromhex(got["root2"]))
    times["cb"].append(t1 - t0)
    times["cv"].append(time.perf_counter() - t1)


def _p95(seconds: list[float]) -> float:
    return round(1000 * statistics.quantiles(seconds, n=20)[-1], 3)
