"""Migration 0012 (compact records): rows of the 0010 layout read through the new code
exactly as before (envelopes, fields, proofs), revert to the same bytes, and apply again."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import DateTime, Engine, bindparam, select, text

from gateway.core import merkle
from gateway.core.canonical import canonical_bytes
from gateway.core.envelope import PAYLOAD_TYPE, Envelope, Signature
from gateway.core.packet import KINDS
from gateway.core.types import KeyId, hex32
from gateway.services.publish import Checked, store_checked
from gateway.services.records import metadata
from gateway.store.db import Database, downgrade, upgrade
from gateway.store.log import EvidenceLogDB
from gateway.store.tables import KIND_CODES, Base, Record
from gateway.store.vault import DEV_MASTER_KEY, Vault, envelope_json

N = 13  # leaves: full nodes up to level 3 and a ragged right edge
KEY_ID = hashlib.sha256(b"key").digest()
ISSUER = hashlib.sha256(b"hospital").digest()


def _packet(i: int) -> bytes:
    return canonical_bytes({"schema": "claimx.packet/1", "kind": "hospital.invoice",
                            "issuer": hex32(ISSUER), "issued_at": "2026-01-02T03:04:05Z",
                            "subject": hashlib.sha256(b"s%d" % i).hexdigest(),
                            "body": {"n": i}, "salt": "x" * 22, "attachments": [],
                            "urgent": False})


def _seal_0010(payload: bytes, digest: bytes) -> bytes:
    """0010's in-row form: wrapped data key, then the raw packet encrypted."""
    data_key = AESGCM.generate_key(256)
    ct = b"\3" * 12 + AESGCM(data_key).encrypt(b"\3" * 12, payload, digest)
    return b"\4" * 12 + AESGCM(DEV_MASTER_KEY).encrypt(b"\4" * 12, data_key, digest) + ct


def _meta(i: int) -> str:
    """Each stored form of 0010: base64 signature, the usual envelope as JSON (before the
    compaction), and an unusual envelope."""
    sig = base64.b64encode(hashlib.sha512(b"%d" % i).digest()).decode()
    usual = {"payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": hex32(KEY_ID), "sig": sig}]}
    if i % 3 == 0:
        return sig
    if i % 3 == 1:
        return json.dumps(usual)
    return json.dumps({**usual, "payloadType": "application/json"})


def _old_layout(engine: Engine) -> dict[bytes, dict[str, Any]]:
    """N sequenced records and one pending, erased one, inserted as 0010 stored them."""
    tree, expected = merkle.MemoryTree(), {}
    with engine.begin() as conn:
        for i in range(N + 1):
            payload = _packet(i)
            digest = hashlib.sha256(payload).digest()
            erased, leaf = i == N, (None if i == N else tree.append(digest))
            conn.execute(text(
                "INSERT INTO records (digest, issuer, key_id, kind, subject, issued_at, urgent, "
                "accepted_at, leaf_index, envelope_meta, payload_ct, source_sha256) VALUES "
                "(:d, :iss, :k, 'hospital.invoice', :s, '2026-01-02T03:04:05Z', :u, :at, :leaf, "
                ":m, :ct, :src)").bindparams(bindparam("at", type_=DateTime(timezone=True))), {
                "d": digest, "iss": ISSUER, "k": KEY_ID, "u": i == 2,
                "s": json.loads(payload)["subject"],
                "at": datetime(2026, 1, 2, 3, 4, 5, 123456 * (i % 2), tzinfo=UTC),
                "leaf": leaf, "m": _meta(i), "ct": None if erased else _seal_0010(payload, digest),
                "src": os.urandom(32).hex() if i % 2 else None})
            meta = _meta(i)
            env = json.loads(meta) if meta.startswith("{") else {
                "payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": hex32(KEY_ID), "sig": meta}]}
            expected[digest] = {**env, "payload": base64.b64encode(payload).decode()}
        conn.execute(text("INSERT INTO merkle_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                     [{"l": lv, "i": ix, "h": h} for (lv, ix), h in tree.nodes.items()])
        conn.execute(text("INSERT INTO log_state (id, size) VALUES (1, :n)"), {"n": N})
    return expected


def _checked(payload: bytes) -> Checked:
    key = Ed25519PrivateKey.generate()
    env = Envelope(payload, (Signature(KeyId(KEY_ID), key.sign(b"x")),))
    return Checked(env, env.packet(), env.digest, KEY_ID)


def _open_0010(stored: bytes, digest: bytes) -> bytes:
    """What 0010's vault did with an in-row key."""
    wrapped, ct = stored[:60], stored[60:]
    data_key = AESGCM(DEV_MASTER_KEY).decrypt(wrapped[:12], wrapped[12:], digest)
    return AESGCM(data_key).decrypt(ct[:12], ct[12:], digest)


def _utc(value: str | datetime) -> datetime:
    """A timestamp as 0010 returned it: SQLite's text without an offset, or PostgreSQL's."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _snapshot(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        return (conn.execute(text("SELECT * FROM records ORDER BY id")).all(),
                conn.execute(text("SELECT level, idx, hash FROM merkle_nodes "
                                  "ORDER BY level, idx")).all())


def _meaning(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows by column name, each envelope meta as the fields it stands for (a usual
    envelope kept as JSON by 0010 reverts to its compact form, the same envelope)."""
    out = []
    for row in rows:
        r = dict(row._mapping)
        m = r.pop("envelope_meta")
        r["envelope"] = json.loads(m) if m.startswith("{") else {
            "payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": hex32(KEY_ID), "sig": m}]}
        out.append(r)
    return out


def test_0010_rows_read_through_0012_and_revert(database_url: str) -> None:
    database = Database(database_url, migrate=False)
    try:
        upgrade(database.engine, "0010")
        expected = _old_layout(database.engine)
        before = _snapshot(database.engine)
        views = {}
        upgrade(database.engine)
        vault, tree = Vault(DEV_MASTER_KEY), merkle.MemoryTree()
        for d in list(expected)[:N]:
            tree.append(d)
        with database.session() as s:
            log = EvidenceLogDB(s)
            assert log.root(N) == tree.root()
            for size in range(1, N + 1):
                assert log.root(size) == tree.root(size)
                for i in range(size):
                    assert log.inclusion_proof(i, size) == tree.inclusion_proof(i, size)
                assert log.consistency_proof(size, N) == tree.consistency_proof(size, N)
            for digest, envelope in expected.items():
                rec = s.scalars(select(Record).where(Record.digest == digest)).one()
                if rec.leaf_index is None:
                    assert rec.erased_at is None and rec.subject == json.loads(
                        base64.b64decode(envelope["payload"]))["subject"]
                    continue
                assert envelope_json(vault, s, rec) == envelope
                views[digest] = metadata(s, rec)
        with database.session() as s:  # every field reads as 0010 held it
            rows = s.scalars(select(Record).order_by(Record.id)).all()
            for old, row in zip(before[0], rows, strict=True):
                o = old._mapping
                assert (row.subject, row.source_sha256) == (o["subject"], o["source_sha256"])
                assert row.accepted_at == _utc(o["accepted_at"])
                if row.digest in views:
                    assert views[row.digest]["accepted_at"] == _utc(o["accepted_at"]).isoformat()
        fresh = _packet(99)  # sealed by 0012's code: key wrap, the row's fields cut out
        with database.session() as s:
            store_checked(s, vault, [_checked(fresh)])
        downgrade(database.engine, "0010", master_key=DEV_MASTER_KEY)
        after = _snapshot(database.engine)
        assert _meaning(after[0][:-1]) == _meaning(before[0]) and after[1] == before[1]
        assert _open_0010(after[0][-1]._mapping["payload_ct"], hashlib.sha256(fresh).digest()) \
            == fresh
        upgrade(database.engine)
        with database.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert views  # the record view (API JSON) was built from the migrated rows
    finally:
        database.engine.dispose()


def test_every_kind_has_a_stored_code() -> None:
    assert set(KINDS) <= set(KIND_CODES)
    assert len(set(KIND_CODES)) == len(KIND_CODES)
