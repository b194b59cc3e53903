"""batches and rows

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 12:14:36.840832
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('pause_reason', sa.Text(), nullable=True),
    sa.Column('asset_type', sa.String(length=32), nullable=False),
    sa.Column('issuer', sa.String(length=32), nullable=False),
    sa.Column('sender_name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'paused', 'cancelled', 'done')", name=op.f('ck_batches_state')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches'))
    )
    op.create_table('rows',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=True),
    sa.Column('recipient_masked', sa.String(length=320), nullable=True),
    sa.Column('card_key', sa.String(length=64), nullable=True),
    sa.Column('card_number_enc', sa.LargeBinary(), nullable=True),
    sa.Column('card_masked', sa.String(length=32), nullable=True),
    sa.Column('pin_enc', sa.LargeBinary(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('sender_name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('asset_type', sa.String(length=32), nullable=True),
    sa.Column('issuer', sa.String(length=32), nullable=True),
    sa.Column('asset_id', sa.String(length=64), nullable=True),
    sa.Column('transfer_id', sa.String(length=64), nullable=True),
    sa.Column('transfer_status', sa.String(length=16), nullable=True),
    sa.Column('load_attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('transfer_attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('retryable', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('transfer_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'loading', 'loaded', 'transferring', 'sent', 'failed', 'invalid', 'duplicate', 'cancelled')", name=op.f('ck_rows_state')),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_rows_batch_id_batches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rows'))
    )
    op.create_index('ix_rows_batch_id_state', 'rows', ['batch_id', 'state'], unique=False)
    op.create_index('ix_rows_state_lease_until', 'rows', ['state', 'lease_until'], unique=False)
    op.create_index('uq_rows_live_card_key', 'rows', ['card_key'], unique=True, postgresql_where=sa.text("state IN ('pending', 'loading', 'loaded', 'transferring', 'sent')"), sqlite_where=sa.text("state IN ('pending', 'loading', 'loaded', 'transferring', 'sent')"))


def downgrade() -> None:
    op.drop_index('uq_rows_live_card_key', table_name='rows', postgresql_where=sa.text("state IN ('pending', 'loading', 'loaded', 'transferring', 'sent')"), sqlite_where=sa.text("state IN ('pending', 'loading', 'loaded', 'transferring', 'sent')"))
    op.drop_index('ix_rows_state_lease_until', table_name='rows')
    op.drop_index('ix_rows_batch_id_state', table_name='rows')
    op.drop_table('rows')
    op.drop_table('batches')
