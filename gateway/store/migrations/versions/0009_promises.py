"""acceptance promises, their extensions and signed rejections

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 13:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'promises',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('promise_id', sa.LargeBinary(length=32), nullable=False),
        sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
        sa.Column('issuer', sa.LargeBinary(length=32), nullable=False),
        sa.Column('deadline', sa.BigInteger(), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.Column('rejection', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_promises')),
        sa.UniqueConstraint('promise_id', name=op.f('uq_promises_promise_id')),
    )
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_promises_digest'), ['digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_promises_issuer'), ['issuer'], unique=False)
        batch_op.create_index(batch_op.f('ix_promises_deadline'), ['deadline'], unique=False)
    op.create_table(
        'promise_extensions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('promise_row', sa.Integer(), nullable=False),
        sa.Column('extended_at', sa.BigInteger(), nullable=False),
        sa.Column('deadline', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['promise_row'], ['promises.id'],
                                name=op.f('fk_promise_extensions_promise_row_promises')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_promise_extensions')),
    )
    with op.batch_alter_table('promise_extensions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_promise_extensions_promise_row'), ['promise_row'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('promise_extensions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_promise_extensions_promise_row'))
    op.drop_table('promise_extensions')
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_promises_deadline'))
        batch_op.drop_index(batch_op.f('ix_promises_issuer'))
        batch_op.drop_index(batch_op.f('ix_promises_digest'))
    op.drop_table('promises')
