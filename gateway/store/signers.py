"""Signers (issuer, key id) by their small ids, made on first use (gateway.store.tables.Signer).

Resolved per batch inside the caller's transaction, never cached across transactions: an id
seen in a transaction that rolls back may name nothing, or on SQLite another pair later.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.store.tables import Signer

Pair = tuple[bytes, bytes]


def signer_ids(s: Session, pairs: Iterable[Pair]) -> dict[Pair, int]:
    """The id of each (issuer, key_id), inserting the ones not seen before."""
    wanted = set(pairs)
    if not wanted:
        return {}
    found = _lookup(s, wanted)
    missing = wanted - found.keys()
    if missing:
        dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
        s.execute(dialect.insert(Signer).on_conflict_do_nothing(),
                  [{"issuer": i, "key_id": k} for i, k in sorted(missing)])
        found |= _lookup(s, missing)
    return found


def _lookup(s: Session, pairs: set[Pair]) -> dict[Pair, int]:
    rows = s.execute(select(Signer.issuer, Signer.key_id, Signer.id).where(
        tuple_(Signer.issuer, Signer.key_id).in_(sorted(pairs))))
    return {(bytes(i), bytes(k)): sid for i, k, sid in rows}
