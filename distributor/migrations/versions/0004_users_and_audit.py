"""users with roles, four-eyes approval of batches, the audit trail

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-16 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES_0003 = "state IN ('queued', 'scheduled', 'running', 'paused', 'cancelled', 'done')"
STATES_0004 = (
    "state IN ('queued', 'awaiting_approval', 'scheduled', 'running', 'paused', 'cancelled', 'done')"
)
ROLES = "role IN ('viewer', 'operator', 'approver', 'admin')"
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

# Append-only on Postgres: an entry, once written, can be neither changed nor removed
# (TRUNCATE, an administrator's tool, is not a row change and stays possible).
APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql
"""
APPEND_ONLY_TRIGGER = """
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
"""


def _batch_states(condition: str, state_type: sa.String) -> None:
    # batch_alter_table: SQLite cannot alter a CHECK constraint, so the table is copied.
    with op.batch_alter_table('batches') as batch_op:
        batch_op.drop_constraint(op.f('ck_batches_state'), type_='check')
        batch_op.alter_column('state', type_=state_type, existing_nullable=False)
        batch_op.create_check_constraint(op.f('ck_batches_state'), condition)


def upgrade() -> None:
    _batch_states(STATES_0004, sa.String(length=32))
    op.create_table('users',
    sa.Column('id', Id, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('token_rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint(ROLES, name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_users_token_hash'))
    )
    op.create_table('batch_approvals',
    sa.Column('batch_id', Id, nullable=False),
    sa.Column('uploaded_by', sa.String(length=64), nullable=False),
    sa.Column('start_when_approved', sa.Boolean(), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved', sa.Boolean(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_batch_approvals_batch_id_batches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', name=op.f('pk_batch_approvals'))
    )
    op.create_table('audit_log',
    sa.Column('id', Id, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('actor_role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('batch_id', Id, nullable=True),
    sa.Column('subject', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_actor', 'audit_log', ['actor'], unique=False)
    op.create_index('ix_audit_log_batch_id', 'audit_log', ['batch_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(APPEND_ONLY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER audit_log_append_only ON audit_log')
        op.execute('DROP FUNCTION audit_log_append_only()')
    op.drop_index('ix_audit_log_batch_id', table_name='audit_log')
    op.drop_index('ix_audit_log_actor', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_table('batch_approvals')
    op.drop_table('users')
    op.execute("UPDATE batches SET state = 'cancelled' WHERE state = 'awaiting_approval'")
    _batch_states(STATES_0003, sa.String(length=16))
