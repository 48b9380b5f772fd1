"""Migration 0012 (compact records): rows of the 0010 layout read through the new code
exactly as before (envelopes, fields, proofs), revert to the same bytes, and apply again."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import DateTime, Engine, bindparam, inspect, select, text

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

CHUNK = 5000  # rows 0012 rewrites at a time
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


def _old_layout(engine: Engine, n: int = N) -> dict[bytes, dict[str, Any]]:
    """``n`` sequenced records and one pending, erased one, inserted as 0010 stored them
    (0011 kept that layout); returns each digest's envelope as published."""
    tree, expected, rows = merkle.MemoryTree(), {}, []
    for i in range(n + 1):
        payload = _packet(i)
        digest = hashlib.sha256(payload).digest()
        erased, leaf = i == n, (None if i == n else tree.append(digest))
        rows.append({
            "d": digest, "iss": ISSUER, "k": KEY_ID, "u": i == 2,
            "s": json.loads(payload)["subject"],
            "at": datetime(2026, 1, 2, 3, 4, 5, 123456 * (i % 2), tzinfo=UTC),
            "leaf": leaf, "m": _meta(i), "ct": None if erased else _seal_0010(payload, digest),
            "src": os.urandom(32).hex() if i % 2 else None})
        meta = _meta(i)
        env = json.loads(meta) if meta.startswith("{") else {
            "payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": hex32(KEY_ID), "sig": meta}]}
        expected[digest] = {**env, "payload": base64.b64encode(payload).decode()}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO records (digest, issuer, key_id, kind, subject, issued_at, urgent, "
            "accepted_at, leaf_index, envelope_meta, payload_ct, source_sha256) VALUES "
            "(:d, :iss, :k, 'hospital.invoice', :s, '2026-01-02T03:04:05Z', :u, :at, :leaf, "
            ":m, :ct, :src)").bindparams(bindparam("at", type_=DateTime(timezone=True))), rows)
        conn.execute(text("INSERT INTO merkle_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                     [{"l": lv, "i": ix, "h": h} for (lv, ix), h in tree.nodes.items()])
        conn.execute(text("INSERT INTO log_state (id, size) VALUES (1, :n)"), {"n": n})
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
        return (list(conn.execute(text("SELECT * FROM records ORDER BY id"))),
                list(conn.execute(text("SELECT level, idx, hash FROM merkle_nodes "
                                       "ORDER BY level, idx"))))


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


def _assert_reads_as_0010(database: Database, expected: dict[bytes, dict[str, Any]],
                          before: list[Any], sizes: list[int] | None = None,
                          ) -> dict[bytes, dict[str, Any]]:
    """Every record of ``_old_layout`` reads through the current code as 0010 held it:
    roots and proofs (at every size and leaf, or at ``sizes`` for three leaves each), each
    envelope, each row's fields; returns each sequenced record's view (API JSON)."""
    digests = list(expected)[:-1]  # the last is pending
    n, vault, tree, views = len(digests), Vault(DEV_MASTER_KEY), merkle.MemoryTree(), {}
    for d in digests:
        tree.append(d)
    with database.session() as s:
        log = EvidenceLogDB(s)
        assert log.root(n) == tree.root()
        for size in sizes or range(1, n + 1):
            assert log.root(size) == tree.root(size)
            for i in range(size) if sizes is None else {0, size // 2, size - 1}:
                assert log.inclusion_proof(i, size) == tree.inclusion_proof(i, size)
            assert log.consistency_proof(size, n) == tree.consistency_proof(size, n)
        records = {rec.digest: rec for rec in s.scalars(select(Record))}
        assert records.keys() == expected.keys()
        for digest, envelope in expected.items():
            rec = records[digest]
            if rec.leaf_index is None:
                assert rec.erased_at is None and rec.subject == json.loads(
                    base64.b64decode(envelope["payload"]))["subject"]
                continue
            assert envelope_json(vault, s, rec) == envelope
            views[digest] = metadata(s, rec)
    with database.session() as s:  # every field reads as 0010 held it
        rows = s.scalars(select(Record).order_by(Record.id)).all()
        for old, row in zip(before, rows, strict=True):
            o = old._mapping
            assert (row.subject, row.source_sha256) == (o["subject"], o["source_sha256"])
            assert row.accepted_at == _utc(o["accepted_at"])
            if row.digest in views:
                assert views[row.digest]["accepted_at"] == _utc(o["accepted_at"]).isoformat()
    return views


def test_0010_rows_read_through_0012_and_revert(database_url: str) -> None:
    database = Database(database_url, migrate=False)
    try:
        upgrade(database.engine, "0010")
        expected = _old_layout(database.engine)
        before = _snapshot(database.engine)
        upgrade(database.engine)
        views = _assert_reads_as_0010(database, expected, before[0])
        fresh = _packet(99)  # sealed by 0012's code: key wrap, the row's fields cut out
        with database.session() as s:
            store_checked(s, Vault(DEV_MASTER_KEY), [_checked(fresh)])
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


KILLED_UPGRADE = """
import sys, time
from sqlalchemy import event
from gateway.store.db import make_engine, upgrade

engine, rows_done = make_engine(sys.argv[1]), False


@event.listens_for(engine, "after_cursor_execute")
def _pause(conn, cursor, statement, *args):
    # once one chunk's rows are rewritten and some of the next chunk's payloads written,
    # say how far the rewrite got (as the upgrade's own transaction sees it) and wait
    global rows_done
    rows_done = rows_done or statement.startswith("UPDATE records SET subject_b")
    if rows_done and statement.startswith("INSERT INTO record_payloads"):
        cursor.execute("SELECT (SELECT count(*) FROM record_payloads), "
                       "(SELECT count(subject_b) FROM records)")
        print(*cursor.fetchone(), flush=True)
        time.sleep(600)


upgrade(engine)
"""


def _schema(engine: Engine) -> tuple[str, dict[str, Any]]:
    """The revision, and each table's columns and indexes."""
    found = inspect(engine)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    return version, {t: ([c["name"] for c in found.get_columns(t)],
                         sorted(str(i["name"]) for i in found.get_indexes(t)))
                     for t in sorted(found.get_table_names())}


@pytest.mark.slow  # 12,000 rows: ~7 s on SQLite
def test_0012_killed_halfway_leaves_0011_and_runs_again(database_url: str) -> None:
    """A process killed while 0012 rewrites rows (SIGKILL, after one 5,000-row chunk and
    part of the next) leaves the database at 0011 with every row, table and index as it
    was, and the next upgrade completes with every record reading as before."""
    n = 2 * CHUNK + 2000
    database = Database(database_url, migrate=False)
    try:
        upgrade(database.engine, "0011")
        expected = _old_layout(database.engine, n)
        before, schema = _snapshot(database.engine), _schema(database.engine)
        payloads, rewritten = map(int, _killed_at_its_pause(KILLED_UPGRADE, database_url))
        assert CHUNK < payloads < n and rewritten == CHUNK  # killed inside the row rewrite
        assert _schema(database.engine) == schema
        assert _snapshot(database.engine) == before
        upgrade(database.engine)
        assert _schema(database.engine)[0] == "0012"
        _assert_reads_as_0010(database, expected, before[0],
                              [1, 2, 7, 8, 9, CHUNK - 1, CHUNK, CHUNK + 1, 8192, n - 1, n])
    finally:
        database.engine.dispose()


KILLED_DOWNGRADE = """
import sys, time
from sqlalchemy import event
from gateway.store.db import downgrade, make_engine
from gateway.store.vault import DEV_MASTER_KEY

engine, rows_done = make_engine(sys.argv[1]), False


@event.listens_for(engine, "after_cursor_execute")
def _pause(conn, cursor, statement, *args):
    # once one chunk's rows are restored to 0011's columns and the next chunk's payloads
    # read, say how many rows the downgrade's own transaction sees restored, and wait
    global rows_done
    if rows_done and "FROM record_payloads" in statement:
        cursor.execute("SELECT count(payload_ct) FROM records")
        print(*cursor.fetchone(), flush=True)
        time.sleep(600)
    rows_done = rows_done or (statement.startswith("UPDATE records SET")
                              and "payload_ct" in statement)


downgrade(engine, "0011", master_key=DEV_MASTER_KEY)
"""


@pytest.mark.slow  # 12,000 rows: ~10 s on SQLite
def test_0012_downgrade_killed_halfway_leaves_0012_and_runs_again(database_url: str) -> None:
    """A downgrade killed (SIGKILL) while it restores 0011's rows, after one 5,000-row chunk,
    leaves the database at 0012 with every row and index as it was, still serving every
    record; the next downgrade completes and gives back 0011's rows."""
    n = 2 * CHUNK + 2000
    database = Database(database_url, migrate=False)
    try:
        upgrade(database.engine, "0011")
        expected = _old_layout(database.engine, n)
        at_0011 = _snapshot(database.engine)
        upgrade(database.engine)
        before, schema = _all_rows(database.engine), _schema(database.engine)
        (restored,) = map(int, _killed_at_its_pause(KILLED_DOWNGRADE, database_url))
        assert restored == CHUNK  # killed inside the row restore
        assert _schema(database.engine) == schema
        assert _all_rows(database.engine) == before
        _assert_reads_as_0010(database, expected, at_0011[0], [1, CHUNK, CHUNK + 1, n - 1])
        downgrade(database.engine, "0011", master_key=DEV_MASTER_KEY)
        after = _snapshot(database.engine)
        assert _schema(database.engine)[0] == "0011"
        assert _meaning(after[0]) == _meaning(at_0011[0]) and after[1] == at_0011[1]
    finally:
        database.engine.dispose()


def _all_rows(engine: Engine) -> dict[str, list[Any]]:
    """Every table's rows, in one order whatever order the database returns them in."""
    with engine.connect() as conn:
        return {t: sorted(conn.execute(text(f"SELECT * FROM {t}")), key=repr)
                for t in inspect(conn).get_table_names()}


def _killed_at_its_pause(script: str, database_url: str) -> list[str]:
    """Run a migration ``script`` in a child process, read the progress line it prints at
    its pause, SIGKILL it there and return the line's fields."""
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", script, database_url], cwd=root, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])})
    assert child.stdout is not None
    try:
        progress = child.stdout.readline()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL, f"the migration ended: {child.returncode}"
    return progress.split()


def test_every_kind_has_a_stored_code() -> None:
    assert set(KINDS) <= set(KIND_CODES)
    assert len(set(KIND_CODES)) == len(KIND_CODES)
