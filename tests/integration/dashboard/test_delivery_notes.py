"""The batch page says when a card's transfer id is still pending or its delivery unknown."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.single_call import TWO_STEP_NOTICE
from tests.integration.dashboard.dashboard_helpers import Spec, store_batch


def test_the_batch_page_counts_ids_pending_and_deliveries_unknown_and_shows_the_notice(
    settings: Settings, browser: httpx.Client
) -> None:
    batch_id = store_batch(
        settings,
        [
            Spec(state=RowState.SENT, asset_id="asset-1"),
            Spec(state=RowState.FAILED, error_code="TIMEOUT", error_detail="no answer"),
        ],
    )
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Row)
            .where(Row.batch_id == batch_id, Row.state == RowState.FAILED)
            .values(ambiguous=True)
        )
        session.execute(update(Batch).where(Batch.id == batch_id).values(notice=TWO_STEP_NOTICE))
    page = browser.get(f"/dashboard/batches/{batch_id}")
    assert page.status_code == 200
    assert TWO_STEP_NOTICE in page.text
    assert "1 sent row is transferred at Centrapay with the transfer id not known yet" in page.text
    assert "1 failed or cancelled row: delivery unknown" in page.text
