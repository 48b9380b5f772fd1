"""webhook secrets encrypted at rest: secret (plaintext) becomes secret_ct (AES-256-GCM)

The migration needs the gateway's master key (``upgrade(engine, master_key=...)``; the
gateway passes ``Settings.master_key_bytes()``) as soon as a table holds a secret; the
format is frozen here, equal to ``Vault.seal_secret`` at the time of writing: 12-byte nonce,
then AES-GCM of the secret under the master key with ``b"claimx webhook secret:" + id``
as associated data.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00.000000
"""
import os

from alembic import context, op
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

AAD = b"claimx webhook secret:"
endpoints = sa.table('webhook_endpoints', sa.column('id', sa.String),
                     sa.column('secret', sa.String), sa.column('secret_ct', sa.LargeBinary))


def _master(rows: list) -> AESGCM | None:
    if not rows:
        return None
    key = context.config.attributes.get("master_key")
    if not key:
        raise RuntimeError("migration 0006 encrypts webhook secrets and needs the gateway's "
                           "master key: run it through the gateway (claimx serve) with "
                           "CLAIMX_MASTER_KEY set")
    return AESGCM(key)


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(endpoints.c.id, endpoints.c.secret)).all()
    master = _master(rows)  # before any change: no key, no half-done migration
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_ct', sa.LargeBinary(length=128), nullable=True))
    for endpoint_id, secret in rows:
        assert master is not None
        nonce = os.urandom(12)
        sealed = nonce + master.encrypt(nonce, secret.encode(), AAD + endpoint_id.encode())
        conn.execute(endpoints.update().where(endpoints.c.id == endpoint_id)
                     .values(secret_ct=sealed))
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.alter_column('secret_ct', existing_type=sa.LargeBinary(length=128),
                              nullable=False)
        batch_op.drop_column('secret')


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(endpoints.c.id, endpoints.c.secret_ct)).all()
    master = _master(rows)
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret', sa.String(length=64), nullable=True))
    for endpoint_id, sealed in rows:
        assert master is not None
        secret = master.decrypt(sealed[:12], sealed[12:], AAD + endpoint_id.encode()).decode()
        conn.execute(endpoints.update().where(endpoints.c.id == endpoint_id)
                     .values(secret=secret))
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('secret_ct')
