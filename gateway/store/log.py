"""The evidence log kept in the database: sequencing records into Merkle leaves, and proofs.

Only the sequencer appends, inside one transaction that holds the ``log_state`` row lock,
so leaves are never appended twice or out of order even with several gateways. Stored
nodes are complete perfect subtrees (gateway.core.merkle), written once and never changed,
which makes them safe to cache in process.

Nodes below :data:`STORED_LEVEL` are not stored: each is the hash of at most 2**(level)
leaves, derived on read from the records' digests by leaf index (one indexed range read),
which keeps the table at a quarter of the leaf count instead of twice it (at 1M records
about 11 bytes a record instead of ~110).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.orm import Session

from gateway.core import merkle
from gateway.core.errors import NotFoundError, ProofError
from gateway.store.bulk import bulk_insert
from gateway.store.tables import NODE_LEVEL_SHIFT, LogState, Node, Record

_CACHE_LIMIT = 100_000
_NODES = cast(Table, Node.__table__)
_RECORDS = cast(Table, Record.__table__)
STORED_LEVEL = 3
"""The lowest level kept in ``merkle_nodes`` (fixed: a database written with one value
holds no nodes below it). An inclusion proof then derives three nodes, from 7 digests."""


def node_id(level: int, index: int) -> int:
    """The ``merkle_nodes`` key of node (level, index)."""
    return level << NODE_LEVEL_SHIFT | index


@dataclass(frozen=True)
class Sequenced:
    """What one sequencing step appended."""

    old_size: int
    new_size: int
    urgent: int


class NodeCache:
    """Process-wide LRU of committed perfect-subtree nodes (immutable once written)."""

    def __init__(self, limit: int = _CACHE_LIMIT) -> None:
        self._d: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._limit = limit

    def get(self, key: tuple[int, int]) -> bytes | None:
        value = self._d.get(key)
        if value is not None:
            self._d.move_to_end(key)
        return value

    def put(self, key: tuple[int, int], value: bytes) -> None:
        self._d[key] = value
        if len(self._d) > self._limit:
            self._d.popitem(last=False)


class EvidenceLogDB:
    """Read and append the Merkle log through a session."""

    def __init__(self, session: Session, cache: NodeCache | None = None) -> None:
        self.s = session
        self.cache = cache if cache is not None else NodeCache()

    def size(self) -> int:
        state = self.s.get(LogState, 1)
        return state.size if state else 0

    def read(self, level: int, index: int) -> bytes:
        key = (level, index)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if level < STORED_LEVEL:
            self._derive_all([key])
            value = self.cache.get(key)
        else:
            value = self.s.scalar(select(Node.hash).where(Node.id == node_id(level, index)))
            if value is not None:
                self.cache.put(key, value)
        if value is None:
            raise NotFoundError(f"log node ({level}, {index}) is missing", code="log_node_missing")
        return value

    def root(self, size: int) -> bytes:
        self.prefetch(lambda read: merkle.tree_root(read, size))
        return merkle.tree_root(self.read, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self.prefetch(lambda read: merkle.inclusion_proof(read, index, size))
        return merkle.inclusion_proof(self.read, index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self.prefetch(lambda read: merkle.consistency_proof(read, size1, size2))
        return merkle.consistency_proof(self.read, size1, size2)

    def prefetch(self, build: Callable[[merkle.NodeReader], object]) -> None:
        """Bring every node ``build`` reads into the cache in at most two queries: one for
        the stored nodes, one for the digests under the derived ones (a proof at 1M leaves
        reads ~40 nodes; one query each cost ~20 ms cold). Which nodes a proof reads does
        not depend on their hashes, so ``build`` is run once with a reader that records
        the keys and answers zeros; unknown keys are left for :meth:`read` to report."""
        wanted: list[tuple[int, int]] = []

        def record(level: int, index: int) -> bytes:
            wanted.append((level, index))
            return bytes(merkle.HASH_SIZE)

        try:
            build(record)
        except ProofError:
            return  # the real run raises it again
        missing = {k for k in wanted if self.cache.get(k) is None}
        stored = {node_id(lv, i): (lv, i) for lv, i in missing if lv >= STORED_LEVEL}
        if stored:
            for nid, value in self.s.execute(select(Node.id, Node.hash)
                                             .where(Node.id.in_(stored))):
                self.cache.put(stored[nid], value)
        self._derive_all([k for k in missing if k[0] < STORED_LEVEL])

    def _derive_all(self, keys: Sequence[tuple[int, int]]) -> None:
        """Low nodes ``keys`` into the cache, from one read of the digests of the
        stored-level blocks that hold them (at most two for a proof: the leaf's and the
        tree's right edge); a node whose leaves are not all in the log yet is left out."""
        if not keys:
            return
        blocks = {(i << lv) >> STORED_LEVEL for lv, i in keys}
        width = 1 << STORED_LEVEL
        digests: dict[int | None, bytes] = {leaf: digest for leaf, digest in self.s.execute(
            select(Record.leaf_index, Record.digest).where(or_(
                *(Record.leaf_index.between(b * width, b * width + width - 1)
                  for b in sorted(blocks)))))}
        for lv, i in keys:
            leaves = [digests.get(j) for j in range(i << lv, (i + 1) << lv)]
            if all(d is not None for d in leaves):
                self.cache.put((lv, i), merkle.root_hash(cast(list[bytes], leaves)))

    def sequence(self, limit: int, ids: Sequence[int] | None = None) -> Sequenced:
        """Append up to ``limit`` accepted records (oldest first) as leaves; with ``ids``,
        only those (the ones whose keys were just re-checked). Rejected records never are.

        Runs inside the caller's transaction: the caller commits, and a crash before the
        commit leaves no trace, so the same records are sequenced again on restart.
        """
        state = self._lock_state()
        old = state.size
        query = select(Record.id, Record.digest, Record.urgent).where(
            Record.leaf_index.is_(None), Record.rejected_at.is_(None))
        if ids is not None:
            query = query.where(Record.id.in_(ids))
        rows = self.s.execute(query.order_by(Record.id).limit(limit)).all()
        if not rows:
            return Sequenced(old, old, 0)
        fresh: dict[tuple[int, int], bytes] = {}

        def read(level: int, index: int) -> bytes:
            return fresh.get((level, index)) or self.read(level, index)

        for offset, row in enumerate(rows):
            for level, idx, h in merkle.completed_nodes(old + offset,
                                                        merkle.leaf_hash(row.digest), read):
                fresh[(level, idx)] = h
        # the DBAPI's executemany: SQLAlchemy's binding costs more than the hashing here
        bulk_insert(self.s, _NODES, ("id", "hash"), [(node_id(lv, i), h) for (lv, i), h
                                                     in fresh.items() if lv >= STORED_LEVEL])
        self._set_leaf_indexes(old, [row.id for row in rows])
        state.size = old + len(rows)
        self.s.flush()
        return Sequenced(old, state.size, sum(1 for r in rows if r.urgent))

    def _set_leaf_indexes(self, old: int, ids: Sequence[int]) -> None:
        """Give the records ``ids`` (ascending) leaves ``old``, ``old + 1``, ...: one UPDATE per
        run of consecutive ids (a whole batch, unless records were rejected in between)
        rather than one statement per record."""
        start = 0
        for end in range(1, len(ids) + 1):
            if end < len(ids) and ids[end] == ids[end - 1] + 1:
                continue
            first, last = ids[start], ids[end - 1]
            self.s.execute(update(_RECORDS).where(_RECORDS.c.id.between(first, last))
                           .values(leaf_index=_RECORDS.c.id + (old + start - first)))
            start = end

    def _lock_state(self) -> LogState:
        state = self.s.scalar(select(LogState).where(LogState.id == 1).with_for_update())
        if state is None:
            state = LogState(id=1, size=0)
            self.s.add(state)
            self.s.flush()
        return state
