"""lease fencing and confirmations: leases get an epoch (the fencing token), anchors the
epoch they were written under and whether the chain has confirmed them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 13:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('epoch', sa.BigInteger(), nullable=False,
                                      server_default='0'))
    with op.batch_alter_table('anchors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fence', sa.BigInteger(), nullable=True))
        # anchors written before this revision were reported anchored at once: keep them so
        batch_op.add_column(sa.Column('confirmed', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('anchors', schema=None) as batch_op:
        batch_op.drop_column('confirmed')
        batch_op.drop_column('fence')
    with op.batch_alter_table('leases', schema=None) as batch_op:
        batch_op.drop_column('epoch')
