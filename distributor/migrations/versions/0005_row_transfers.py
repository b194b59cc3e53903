"""row_transfers: every transfer a row had before a resend

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-17 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('row_transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transfer_id', sa.String(length=64), nullable=True),
    sa.Column('transfer_status', sa.String(length=16), nullable=True),
    sa.Column('recipient_masked', sa.String(length=320), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['row_id'], ['rows.id'], name=op.f('fk_row_transfers_row_id_rows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_row_transfers'))
    )
    op.create_index('ix_row_transfers_row_id', 'row_transfers', ['row_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_row_transfers_row_id', table_name='row_transfers')
    op.drop_table('row_transfers')
