"""Proofs from the database log: the same hashes as an in-memory tree over the same digests,
read in at most two queries each with a cold node cache (one per node cost ~20 ms at 1M)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from gateway.chain.client import Chain, Deployment
from gateway.config import Settings
from gateway.core import merkle
from gateway.core.errors import NotFoundError
from gateway.services.wiring import build_services
from gateway.store.db import Database
from gateway.store.log import EvidenceLogDB, NodeCache
from gateway.store.tables import Record
from tests.services.anchor_support import publish
from tests.support import admit

N = 300  # full stored subtrees up to level 8 and a ragged right edge


@contextmanager
def selects(database: Database) -> Iterator[list[str]]:
    """The SELECT statements run on ``database`` inside the block."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", count)


def test_proofs_match_a_memory_tree_in_two_queries(chain: Chain, deployment: Deployment,
                                                   database_url: str, tmp_path: Path) -> None:
    services = build_services(Settings(home=tmp_path, anchor_interval_seconds=3600),
                              chain=chain, deployment=deployment, db=Database(database_url))
    publish(services, admit(chain, deployment, "hospital.proofs"), N)
    with services.db.session() as s:
        EvidenceLogDB(s).sequence(N)
    with services.db.session() as s:
        digests = list(s.scalars(select(Record.digest).order_by(Record.leaf_index)))
    tree = merkle.MemoryTree()
    for d in digests:
        tree.append(d)
    rng = random.Random(7)
    cases = [(rng.randrange(size), size) for size in (1, 2, 7, 8, 9, 64, 255, 256, 257, N)
             for _ in range(3)]
    for index, size in cases:
        with services.db.session() as s, selects(services.db) as seen:
            log = EvidenceLogDB(s, NodeCache())
            assert log.inclusion_proof(index, size) == tree.inclusion_proof(index, size)
        assert len(seen) <= 2, (index, size, seen)
        first = max(1, index)
        with services.db.session() as s, selects(services.db) as seen:
            log = EvidenceLogDB(s, NodeCache())
            assert log.consistency_proof(first, size) == tree.consistency_proof(first, size)
            assert log.root(size) == tree.root(size)  # warm from the proof's reads
        assert len(seen) <= 4, (first, size, seen)


def test_a_node_not_yet_in_the_log_is_reported_missing(chain: Chain, deployment: Deployment,
                                                       database_url: str,
                                                       tmp_path: Path) -> None:
    """The prefetch leaves unknown nodes alone: a proof past the log's size still fails
    with log_node_missing, never a made-up hash."""
    services = build_services(Settings(home=tmp_path, anchor_interval_seconds=3600),
                              chain=chain, deployment=deployment, db=Database(database_url))
    publish(services, admit(chain, deployment, "hospital.short"), 5)
    with services.db.session() as s:
        EvidenceLogDB(s).sequence(5)
    with services.db.session() as s:
        log = EvidenceLogDB(s, NodeCache())
        with pytest.raises(NotFoundError) as err:
            log.inclusion_proof(2, 40)
        assert err.value.code == "log_node_missing"
