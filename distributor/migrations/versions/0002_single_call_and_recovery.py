"""single call, fenced leases and constant-cost recovery

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('batches', sa.Column('notice', sa.Text(), nullable=True))
    op.add_column('rows', sa.Column('lease_token', sa.Integer(), server_default='0', nullable=False))
    op.add_column('rows', sa.Column('ambiguous', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.create_table('centrapay_accounts',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('single_call_refused_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('transfers_tail_key', sa.Text(), nullable=True),
    sa.Column('transfers_gap_key', sa.Text(), nullable=True),
    sa.Column('transfers_order', sa.String(length=8), nullable=True),
    sa.Column('transfers_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_centrapay_accounts'))
    )
    op.create_table('sent_transfers',
    sa.Column('transfer_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('asset_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('transfer_id', name=op.f('pk_sent_transfers'))
    )
    op.create_index('ix_sent_transfers_asset_id', 'sent_transfers', ['asset_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sent_transfers_asset_id', table_name='sent_transfers')
    op.drop_table('sent_transfers')
    op.drop_table('centrapay_accounts')
    op.drop_column('rows', 'ambiguous')
    op.drop_column('rows', 'lease_token')
    op.drop_column('batches', 'notice')
