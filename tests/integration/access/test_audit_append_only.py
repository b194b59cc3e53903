"""The audit trail is append-only in Postgres itself: an UPDATE or a DELETE is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import Executable, delete, select, text, update
from sqlalchemy.exc import DBAPIError

from distributor.access import audit
from distributor.access.actors import BOOTSTRAP, Action
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import AuditEntry
from distributor.pipeline.clock import utcnow


def _entries(settings: Settings) -> list[tuple[str, str]]:
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(AuditEntry.actor, AuditEntry.action).order_by(AuditEntry.id))
        return [(actor, action) for actor, action in rows]


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEntry).values(actor="someone-else"),
        delete(AuditEntry),
        text("UPDATE audit_log SET details = '{}'"),
        text("DELETE FROM audit_log WHERE action = 'keys.rotate'"),
    ],
    ids=["update", "delete", "sql-update", "sql-delete"],
)
def test_postgres_refuses_to_update_or_delete_an_audit_entry(
    settings: Settings, statement: Executable
) -> None:
    with session_scope(settings.database_url) as session:
        audit.record(session, actor=BOOTSTRAP, action=Action.KEYS_ROTATE, now=utcnow())
    with (
        pytest.raises(DBAPIError, match="audit_log is append-only"),
        session_scope(settings.database_url) as session,
    ):
        session.execute(statement, execution_options={"synchronize_session": False})
    assert _entries(settings) == [("bootstrap", "keys.rotate")]
