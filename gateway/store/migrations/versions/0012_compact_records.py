"""compact records (issue 14): payload and signature move to record_payloads, subject and
source hash become 32-byte blobs, issuer and key id a reference to signers (each pair
stored once), accepted_at integer microseconds, kind a small code,
three unused indexes go, the pending index covers only pending rows, and merkle_nodes
keeps levels 3 and up under one integer key (lower nodes are derived from the digests).

The stored forms are frozen here, equal to gateway.store.vault.stored_meta and
gateway.store.log at the time of writing: the usual envelope's meta is its raw signature
(unless that starts with ``{``), any other the JSON of its fields; a node's key is
``level << 40 | index``. Sealed payloads are copied as they are behind the form byte
``0x00`` (every older form still reads). Payloads sealed after 0012 (form ``0x01``: key
wrap, fields cut out) are sealed again in 0010's form on downgrade, which needs the master
key (``downgrade(engine, ..., master_key=...)``) once there are any.

All or nothing: the rows are rewritten in chunks of CHUNK, but every chunk, the DDL around
them and the version stamp are one transaction (env.py calls gateway.store.db.
begin_migration), so a process killed halfway leaves 0011 exactly as it was and the next
upgrade starts over. On PostgreSQL that holds by itself (transactional DDL); on SQLite it
needs the explicit BEGIN, without which the DDL ahead of the first INSERT committed on its
own (tests/store/test_compact_records.py kills an upgrade in its second chunk).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 16:30:00.000000
"""
import base64
import hashlib
import json
import os
import zlib
from datetime import UTC, datetime, timedelta

from alembic import context, op
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from gateway.store.payload_codec import dictionary


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

PAYLOAD_TYPE = "application/vnd.claimx.packet+json"
SHIFT = 40
STORED_LEVEL = 3
CHUNK = 5000
KIND_CODES = (  # gateway.store.tables.KIND_CODES as of this revision
    "hospital.admission_summary", "hospital.discharge_summary", "hospital.invoice",
    "hospital.diagnosis", "hospital.lab_report", "hospital.procedure",
    "police.accident_determination", "police.incident_report", "civil.death_certificate",
    "attachment", "payer.adjudication", "payer.coverage", "identity.binding",
    "identity.binding_revoked", "insurer.consent", "exchange.access",
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

old_records = sa.table(
    'records', sa.column('id', sa.Integer), sa.column('key_id', sa.LargeBinary),
    sa.column('issuer', sa.LargeBinary), sa.column('kind', sa.String),
    sa.column('issued_at', sa.String),
    sa.column('subject', sa.String), sa.column('source_sha256', sa.String),
    sa.column('accepted_at', sa.DateTime(timezone=True)), sa.column('envelope_meta', sa.Text),
    sa.column('payload_ct', sa.LargeBinary), sa.column('subject_b', sa.LargeBinary),
    sa.column('source_b', sa.LargeBinary), sa.column('accepted_us', sa.BigInteger),
    sa.column('kind_code', sa.SmallInteger),
    sa.column('leaf_index', sa.BigInteger), sa.column('digest', sa.LargeBinary))
payloads = sa.table('record_payloads', sa.column('record_id', sa.Integer),
                    sa.column('meta', sa.LargeBinary), sa.column('sealed', sa.LargeBinary))


def _meta_to_db(text: str, key_id: bytes) -> bytes:
    meta = json.loads(text) if text.startswith("{") else {
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": "0x" + key_id.hex(), "sig": text}]}
    sigs = meta.get("signatures")
    if (meta.keys() == {"payloadType", "signatures"} and meta["payloadType"] == PAYLOAD_TYPE
            and isinstance(sigs, list) and len(sigs) == 1 and isinstance(sigs[0], dict)
            and sigs[0].keys() == {"keyid", "sig"} and sigs[0]["keyid"] == "0x" + key_id.hex()
            and isinstance(sigs[0]["sig"], str)):
        try:
            raw = base64.b64decode(sigs[0]["sig"], validate=True)
        except ValueError:
            raw = None
        if raw is not None and base64.b64encode(raw).decode() == sigs[0]["sig"] \
                and raw[:1] != b"{":
            return raw
    return json.dumps(meta, separators=(",", ":")).encode()


def _meta_from_db(meta: bytes, key_id: bytes) -> str:
    """The text 0010 stored: the base64 signature for the usual envelope, else JSON."""
    if meta[:1] == b"{":
        return meta.decode()
    return base64.b64encode(meta).decode()


def _reseal_0010(sealed: bytes | None, row: sa.Row, master: bytes | None) -> bytes | None:
    """``record_payloads.sealed`` in the form 0010 reads."""
    if sealed is None:
        return None
    sealed = bytes(sealed)
    if sealed[:1] == b"\0":
        return sealed[1:]
    if master is None:
        raise RuntimeError("downgrading 0012 seals payloads again and needs the gateway's "
                           "master key: downgrade(engine, revision, master_key=...)")
    digest = bytes(row.digest)
    plain = AESGCM(aes_key_unwrap(master, sealed[1:41])).decrypt(bytes(12), sealed[41:], digest)
    if plain[:1] in (b"\0", b"\1"):
        d = zlib.decompressobj(-15, dictionary(plain[1]))
        body = d.decompress(plain[2:]) + d.flush()
        if plain[:1] == b"\1":  # put back the row's fields (gateway.store.payload_codec)
            known = [("issued_at", row.issued_at), ("issuer", "0x" + bytes(row.issuer).hex()),
                     ("kind", KIND_CODES[row.kind_code])]
            if row.source_b is not None:
                known.append(("sha256", bytes(row.source_b).hex()))
            known.append(("subject", bytes(row.subject_b).hex()))
            for key, value in reversed(known):
                needle = b'"%s":""' % key.encode()
                at = body.rfind(needle) + len(needle) - 1
                body = body[:at] + value.encode() + body[at:]
        plain = body
    if hashlib.sha256(plain).digest() != digest:
        raise RuntimeError(f"record {row.id}: its row does not rebuild its payload")
    data_key, nonce, wrap_nonce = AESGCM.generate_key(256), os.urandom(12), os.urandom(12)
    wrapped = wrap_nonce + AESGCM(master).encrypt(wrap_nonce, data_key, digest)
    return wrapped + nonce + AESGCM(data_key).encrypt(nonce, plain, digest)


def _micros(at: datetime) -> int:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return (at - EPOCH) // _MICRO


def _chunks(conn: sa.Connection, *columns: sa.ColumnElement) -> object:
    last = 0
    while True:
        rows = conn.execute(sa.select(old_records.c.id, *columns)
                            .where(old_records.c.id > last)
                            .order_by(old_records.c.id).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def upgrade() -> None:
    conn = op.get_bind()
    op.create_table('record_payloads',
                    sa.Column('record_id', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('meta', sa.LargeBinary(), nullable=False),
                    sa.Column('sealed', sa.LargeBinary(), nullable=True),
                    sa.PrimaryKeyConstraint('record_id', name=op.f('pk_record_payloads')))
    for name in ('ix_records_pending', 'ix_records_issuer', 'ix_records_kind',
                 'ix_records_subject', 'ix_records_source_sha256'):
        op.drop_index(name, table_name='records')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject_b', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('source_b', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('accepted_us', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('kind_code', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('signer', sa.Integer(), nullable=True))
    op.create_table('signers',
                    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
                    sa.Column('issuer', sa.LargeBinary(length=32), nullable=False),
                    sa.Column('key_id', sa.LargeBinary(length=32), nullable=False),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_signers')),
                    sa.UniqueConstraint('issuer', 'key_id', name='uq_signers_issuer_key_id'))
    op.execute('INSERT INTO signers (issuer, key_id) SELECT DISTINCT issuer, key_id FROM records')
    op.execute('UPDATE records SET signer = (SELECT id FROM signers WHERE signers.issuer = '
               'records.issuer AND signers.key_id = records.key_id)')
    c = old_records.c
    for rows in _chunks(conn, c.key_id, c.subject, c.source_sha256, c.accepted_at,
                        c.envelope_meta, c.payload_ct, c.kind):
        conn.execute(payloads.insert(), [
            {"record_id": r.id, "meta": _meta_to_db(r.envelope_meta, r.key_id),
             "sealed": None if r.payload_ct is None else b"\0" + r.payload_ct} for r in rows])
        conn.execute(old_records.update().where(c.id == sa.bindparam('rid')).values(
            subject_b=sa.bindparam('sb'), source_b=sa.bindparam('srcb'),
            accepted_us=sa.bindparam('us'), kind_code=sa.bindparam('kc')), [
            {"rid": r.id, "sb": bytes.fromhex(r.subject),
             "srcb": None if r.source_sha256 is None else bytes.fromhex(r.source_sha256),
             "us": _micros(r.accepted_at), "kc": KIND_CODES.index(r.kind)} for r in rows])
    with op.batch_alter_table('records', schema=None) as batch_op:
        for name in ('envelope_meta', 'payload_ct', 'subject', 'source_sha256', 'accepted_at',
                     'kind', 'issuer', 'key_id'):
            batch_op.drop_column(name)
        batch_op.alter_column('signer', nullable=False, existing_type=sa.Integer())
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.alter_column('kind_code', new_column_name='kind', nullable=False,
                              existing_type=sa.SmallInteger())
        batch_op.alter_column('subject_b', new_column_name='subject', nullable=False,
                              existing_type=sa.LargeBinary(length=32))
        batch_op.alter_column('source_b', new_column_name='source_sha256', nullable=True,
                              existing_type=sa.LargeBinary(length=32))
        batch_op.alter_column('accepted_us', new_column_name='accepted_at', nullable=False,
                              existing_type=sa.BigInteger())
    op.create_index('ix_records_subject', 'records', ['subject'])
    op.create_index('ix_records_pending', 'records', ['urgent'],
                    sqlite_where=sa.text('leaf_index IS NULL'),
                    postgresql_where=sa.text('leaf_index IS NULL'))
    _nodes_up(conn)


def _rename_old_nodes(conn: sa.Connection, old_pk: str) -> None:
    op.rename_table('merkle_nodes', 'merkle_nodes_old')
    if conn.dialect.name == 'postgresql':  # constraint names are schema-wide there
        op.execute(f'ALTER TABLE merkle_nodes_old RENAME CONSTRAINT {old_pk} '
                   'TO pk_merkle_nodes_old')


def _nodes_up(conn: sa.Connection) -> None:
    _rename_old_nodes(conn, 'pk_merkle_nodes')
    op.create_table('merkle_nodes',
                    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              autoincrement=False, nullable=False),
                    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_merkle_nodes')))
    op.execute(f'INSERT INTO merkle_nodes (id, hash) SELECT level * {1 << SHIFT} + idx, hash '
               f'FROM merkle_nodes_old WHERE level >= {STORED_LEVEL}')
    op.drop_table('merkle_nodes_old')


def _nodes_down(conn: sa.Connection) -> None:
    _rename_old_nodes(conn, 'pk_merkle_nodes')
    op.create_table('merkle_nodes',
                    sa.Column('level', sa.Integer(), nullable=False),
                    sa.Column('idx', sa.BigInteger(), nullable=False),
                    sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
                    sa.PrimaryKeyConstraint('level', 'idx', name=op.f('pk_merkle_nodes')))
    op.execute(f'INSERT INTO merkle_nodes (level, idx, hash) SELECT id / {1 << SHIFT}, '
               f'id % {1 << SHIFT}, hash FROM merkle_nodes_old')
    op.drop_table('merkle_nodes_old')
    nodes = sa.table('merkle_nodes', sa.column('level', sa.Integer),
                     sa.column('idx', sa.BigInteger), sa.column('hash', sa.LargeBinary))
    size = conn.execute(sa.text('SELECT size FROM log_state WHERE id = 1')).scalar() or 0
    block = 1 << STORED_LEVEL
    for start in range(0, size, CHUNK * block):  # aligned: each chunk holds whole nodes
        digests = [bytes(d) for d in conn.execute(
            sa.select(old_records.c.digest)
            .where(old_records.c.leaf_index >= start,
                   old_records.c.leaf_index < min(size, start + CHUNK * block))
            .order_by(old_records.c.leaf_index)).scalars()]
        level = [hashlib.sha256(b"\0" + d).digest() for d in digests]
        rows = []
        for lv in range(STORED_LEVEL):
            base = start >> lv
            rows += [{"level": lv, "idx": base + i, "hash": h} for i, h in enumerate(level)]
            level = [hashlib.sha256(b"\1" + level[i] + level[i + 1]).digest()
                     for i in range(0, len(level) - 1, 2)]
        if rows:
            conn.execute(nodes.insert(), rows)


def downgrade() -> None:
    conn = op.get_bind()
    _nodes_down(conn)
    op.drop_index('ix_records_pending', table_name='records')
    op.drop_index('ix_records_subject', table_name='records')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.alter_column('subject', new_column_name='subject_b',
                              existing_type=sa.LargeBinary(length=32))
        batch_op.alter_column('source_sha256', new_column_name='source_b',
                              existing_type=sa.LargeBinary(length=32))
        batch_op.alter_column('accepted_at', new_column_name='accepted_us',
                              existing_type=sa.BigInteger())
        batch_op.alter_column('kind', new_column_name='kind_code',
                              existing_type=sa.SmallInteger())
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('issuer', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('key_id', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('subject', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('source_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('envelope_meta', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('payload_ct', sa.LargeBinary(), nullable=True))
    for name in ('issuer', 'key_id'):
        op.execute(f'UPDATE records SET {name} = (SELECT {name} FROM signers '
                   'WHERE signers.id = records.signer)')
    c = old_records.c
    master = context.config.attributes.get("master_key")
    for rows in _chunks(conn, c.key_id, c.subject_b, c.source_b, c.accepted_us, c.digest,
                        c.issuer, c.kind_code, c.issued_at):
        found = {r.record_id: r for r in conn.execute(
            sa.select(payloads).where(payloads.c.record_id.in_([r.id for r in rows])))}
        conn.execute(old_records.update().where(c.id == sa.bindparam('rid')).values(
            subject=sa.bindparam('s'), source_sha256=sa.bindparam('src'),
            accepted_at=sa.bindparam('at'), envelope_meta=sa.bindparam('m'),
            payload_ct=sa.bindparam('ct'), kind=sa.bindparam('k')), [
            {"rid": r.id, "s": bytes(r.subject_b).hex(), "k": KIND_CODES[r.kind_code],
             "src": None if r.source_b is None else bytes(r.source_b).hex(),
             "at": EPOCH + r.accepted_us * _MICRO,
             "m": _meta_from_db(bytes(found[r.id].meta), r.key_id) if r.id in found else "{}",
             "ct": _reseal_0010(found[r.id].sealed, r, master) if r.id in found else None}
            for r in rows])
    with op.batch_alter_table('records', schema=None) as batch_op:
        for name in ('subject_b', 'source_b', 'accepted_us', 'kind_code', 'signer'):
            batch_op.drop_column(name)
        for name in ('issuer', 'key_id'):
            batch_op.alter_column(name, nullable=False, existing_type=sa.LargeBinary(length=32))
        batch_op.alter_column('kind', nullable=False, existing_type=sa.String(length=64))
        batch_op.alter_column('subject', nullable=False, existing_type=sa.String(length=64))
        batch_op.alter_column('accepted_at', nullable=False,
                              existing_type=sa.DateTime(timezone=True))
        batch_op.alter_column('envelope_meta', nullable=False, server_default='{}',
                              existing_type=sa.Text())
    op.drop_table('record_payloads')
    op.drop_table('signers')
    op.create_index('ix_records_pending', 'records', ['leaf_index', 'urgent'])
    op.create_index('ix_records_issuer', 'records', ['issuer'])
    op.create_index('ix_records_kind', 'records', ['kind'])
    op.create_index('ix_records_subject', 'records', ['subject'])
    op.create_index('ix_records_source_sha256', 'records', ['source_sha256'])
