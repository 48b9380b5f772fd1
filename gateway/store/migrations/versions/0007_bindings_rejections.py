"""claimant key bindings, subject-wide withdrawals, records rejected at logging time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rejected_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reject_code', sa.String(length=32), nullable=True))
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimant_key', sa.LargeBinary(length=32), nullable=True))
        batch_op.add_column(sa.Column('binding_digest', sa.LargeBinary(length=32),
                                      nullable=True))
    op.create_table(
        'identity_bindings',
        sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
        sa.Column('subject', sa.String(length=64), nullable=False),
        sa.Column('claimant_key', sa.LargeBinary(length=32), nullable=False),
        sa.Column('attester', sa.LargeBinary(length=32), nullable=False),
        sa.Column('attester_key_id', sa.LargeBinary(length=32), nullable=False),
        sa.Column('attested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by', sa.LargeBinary(length=32), nullable=True),
        sa.PrimaryKeyConstraint('digest', name=op.f('pk_identity_bindings')),
    )
    op.create_index(op.f('ix_identity_bindings_subject'), 'identity_bindings', ['subject'])
    op.create_index(op.f('ix_identity_bindings_claimant_key'), 'identity_bindings',
                    ['claimant_key'])
    op.create_table(
        'claimant_withdrawals',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('subject', sa.String(length=64), nullable=False),
        sa.Column('insurer', sa.LargeBinary(length=32), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimant_key', sa.LargeBinary(length=32), nullable=True),
        sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_claimant_withdrawals')),
        sa.UniqueConstraint('digest', name=op.f('uq_claimant_withdrawals_digest')),
    )
    op.create_index(op.f('ix_claimant_withdrawals_subject'), 'claimant_withdrawals',
                    ['subject'])


def downgrade() -> None:
    op.drop_index(op.f('ix_claimant_withdrawals_subject'), table_name='claimant_withdrawals')
    op.drop_table('claimant_withdrawals')
    op.drop_index(op.f('ix_identity_bindings_claimant_key'), table_name='identity_bindings')
    op.drop_index(op.f('ix_identity_bindings_subject'), table_name='identity_bindings')
    op.drop_table('identity_bindings')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_column('binding_digest')
        batch_op.drop_column('claimant_key')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('reject_code')
        batch_op.drop_column('rejected_at')
