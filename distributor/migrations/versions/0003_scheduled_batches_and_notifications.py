"""scheduled batches and the outbox of completion notifications

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES_0002 = "state IN ('queued', 'running', 'paused', 'cancelled', 'done')"
STATES_0003 = "state IN ('queued', 'scheduled', 'running', 'paused', 'cancelled', 'done')"
UNSENT = "sent_at IS NULL AND given_up_at IS NULL"


def _batch_states(condition: str) -> None:
    # batch_alter_table: SQLite cannot alter a CHECK constraint, so the table is copied
    # (on Postgres the constraint is simply dropped and added).
    with op.batch_alter_table('batches') as batch_op:
        batch_op.drop_constraint(op.f('ck_batches_state'), type_='check')
        batch_op.create_check_constraint(op.f('ck_batches_state'), condition)


def upgrade() -> None:
    op.add_column('batches', sa.Column('start_at', sa.DateTime(timezone=True), nullable=True))
    _batch_states(STATES_0003)
    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('failed', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('given_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_notifications_batch_id_batches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    op.create_index('ix_notifications_unsent', 'notifications', ['id'], unique=False, postgresql_where=sa.text(UNSENT), sqlite_where=sa.text(UNSENT))


def downgrade() -> None:
    op.drop_index('ix_notifications_unsent', table_name='notifications', postgresql_where=sa.text(UNSENT), sqlite_where=sa.text(UNSENT))
    op.drop_table('notifications')
    op.execute("UPDATE batches SET state = 'queued' WHERE state = 'scheduled'")
    _batch_states(STATES_0002)
    op.drop_column('batches', 'start_at')
