"""promise batches: one signature per publish call (claimx.promise/2), a narrow leaf row
per record, and the extensions and rejections of batched promises

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'promise_batches',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('accepted_at', sa.BigInteger(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('root', sa.LargeBinary(length=32), nullable=False),
        sa.Column('signer', sa.LargeBinary(length=32), nullable=False),
        sa.Column('signer_key_id', sa.LargeBinary(length=32), nullable=False),
        sa.Column('signature', sa.LargeBinary(length=128), nullable=False),
        sa.Column('merge_delay', sa.Integer(), nullable=False),
        sa.Column('urgent_merge_delay', sa.Integer(), nullable=False),
        sa.Column('first_deadline', sa.BigInteger(), nullable=False),
        sa.Column('last_deadline', sa.BigInteger(), nullable=False),
        sa.Column('keys', sa.LargeBinary(), nullable=False),
        sa.Column('leaves', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_promise_batches')),
    )
    with op.batch_alter_table('promise_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_promise_batches_last_deadline'), ['last_deadline'],
                              unique=False)
    op.create_table(
        'promise_leaves',
        sa.Column('record_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('batch_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['batch_id'], ['promise_batches.id'],
                                name=op.f('fk_promise_leaves_batch_id_promise_batches')),
        sa.PrimaryKeyConstraint('record_id', name=op.f('pk_promise_leaves')),
    )
    op.create_table(
        'promise_marks',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=False),
        sa.Column('batch_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('deadline', sa.BigInteger(), nullable=True),
        sa.Column('document', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['batch_id'], ['promise_batches.id'],
                                name=op.f('fk_promise_marks_batch_id_promise_batches')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_promise_marks')),
    )
    with op.batch_alter_table('promise_marks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_promise_marks_record_id'), ['record_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_promise_marks_batch_id'), ['batch_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_promise_marks_deadline'), ['deadline'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('promise_marks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_promise_marks_deadline'))
        batch_op.drop_index(batch_op.f('ix_promise_marks_batch_id'))
        batch_op.drop_index(batch_op.f('ix_promise_marks_record_id'))
    op.drop_table('promise_marks')
    op.drop_table('promise_leaves')
    with op.batch_alter_table('promise_batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_promise_batches_last_deadline'))
    op.drop_table('promise_batches')
