"""The delivery column: one rule, the same in SQL (reports, counts) and in Python (rows)."""

from __future__ import annotations

import itertools

from sqlalchemy import insert, select

from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.delivery import delivery_column, delivery_of
from distributor.models import Row
from tests.factories import make_batch


def test_every_state_flag_and_transfer_id_reads_the_same_in_sql_and_python(
    settings: Settings,
) -> None:
    combos = list(itertools.product(RowState, (None, "transfer-1"), (False, True)))
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        session.execute(
            insert(Row),
            [
                {
                    "batch_id": batch.id,
                    "line_no": line,
                    "state": state,
                    "transfer_id": transfer_id,
                    "ambiguous": ambiguous,
                }
                for line, (state, transfer_id, ambiguous) in enumerate(combos, start=1)
            ],
        )
        read = session.execute(
            select(Row, delivery_column()).where(Row.batch_id == batch.id).order_by(Row.line_no)
        ).all()
        by_sql = {row.line_no: delivery for row, delivery in read}
        by_python = {row.line_no: delivery_of(row) for row, _ in read}
    assert by_sql == by_python
    assert set(by_sql.values()) == {
        "",
        "transferred",
        "transferred, transfer id pending",
        "not transferred",
        "unknown: an answer was lost",
    }
