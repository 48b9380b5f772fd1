"""request clock: when an overdue evidence request was announced

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('evidence_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overdue_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_evidence_requests_clock', ['status', 'due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('evidence_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_evidence_requests_clock')
        batch_op.drop_column('overdue_at')
