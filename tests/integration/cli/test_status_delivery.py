"""``distributor status`` says what Centrapay is known to have done with every card."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.single_call import TWO_STEP_NOTICE
from tests.integration.cli.cli_helpers import Rows, flat, run, store_batch

pytestmark = pytest.mark.usefixtures("environment")


def test_status_counts_transfer_ids_pending_and_deliveries_unknown_and_shows_the_notice(
    settings: Settings,
) -> None:
    rows = [
        Rows(count=3, state=RowState.SENT, transfer_status="created"),
        Rows(count=2, state=RowState.FAILED, error_code="TIMEOUT"),
    ]
    batch_id = store_batch(settings, rows)
    with session_scope(settings.database_url) as session:
        first_sent = session.scalars(
            select(Row.id).where(Row.batch_id == batch_id, Row.state == RowState.SENT)
        ).first()
        session.execute(
            update(Row).where(Row.id == first_sent).values(transfer_id=None, transfer_status=None)
        )
        session.execute(
            update(Row)
            .where(Row.batch_id == batch_id, Row.state == RowState.FAILED)
            .values(ambiguous=True)
        )
        session.execute(update(Batch).where(Batch.id == batch_id).values(notice=TWO_STEP_NOTICE))
    code, out, err = run("status", str(batch_id))
    assert (code, err) == (0, "")
    shown = flat(out)
    assert f"note: {TWO_STEP_NOTICE}" in shown
    assert "delivery unknown: 2 failed or cancelled rows lost an answer" in shown
    assert "│ created │ 2 │" in shown
    assert "│ transfer id pending │ 1 │" in shown
    assert "not recorded" not in shown
