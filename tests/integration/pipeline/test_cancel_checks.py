"""A cancelled batch never calls a row cancelled whose card may have been delivered: rows
in flight or with an ambiguous last call are looked up first, and end sent or cancelled."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from distributor.broker import RedisQueueWatch
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.steps import advance_row
from distributor.pipeline.sweeper import sweep
from tests.integration.pipeline.recovery_helpers import (
    api_calls,
    load_out_of_band,
    read_row,
    stored_row,
)
from tests.integration.pipeline.test_sweeper import RecordingQueue

CARD = "23409800001"


def _cancelled_row(settings: Settings, **values: object) -> int:
    row_id = stored_row(settings, CARD)
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).where(Row.id == row_id).values(**values))
        batch_id = session.get_one(Row, row_id).batch_id
        session.execute(update(Batch).where(Batch.id == batch_id).values(state="cancelled"))
    return row_id


def _sweep_and_run(settings: Settings, ctx: PipelineContext, watch: RedisQueueWatch) -> list[int]:
    queue = RecordingQueue()
    sweep(database_url=settings.database_url, queue=queue, watch=watch)
    for row_id, _ in queue.urgent:
        assert advance_row(ctx, row_id) is None
    return [row_id for row_id, _ in queue.urgent]


def test_a_row_left_in_flight_by_a_dead_worker_whose_card_went_ends_sent(
    settings: Settings, ctx: PipelineContext, watch: RedisQueueWatch, control: httpx.Client
) -> None:
    load_out_of_band(ctx.client, CARD, transfer=True)
    row_id = _cancelled_row(settings, state="loading", lease_until=utcnow())
    assert _sweep_and_run(settings, ctx, watch) == [row_id]
    row = read_row(settings, row_id)
    assert (row.state, row.transfer_id_pending, row.ambiguous) == ("sent", True, False)
    assert api_calls(control)[1:] == ["GET /api/accounts/{id}/assets"]


def test_an_ambiguous_waiting_row_whose_card_never_went_ends_cancelled_and_not_unknown(
    settings: Settings, ctx: PipelineContext, watch: RedisQueueWatch, control: httpx.Client
) -> None:
    row_id = _cancelled_row(settings, state="pending", ambiguous=True, error_code="TIMEOUT")
    assert _sweep_and_run(settings, ctx, watch) == [row_id]
    row = read_row(settings, row_id)
    assert (row.state, row.ambiguous, row.asset_id) == ("cancelled", False, None)
    assert api_calls(control) == ["GET /api/accounts/{id}/assets"]


def test_a_loaded_row_whose_transfer_answer_was_lost_and_not_applied_ends_cancelled_with_its_asset(
    settings: Settings, ctx: PipelineContext, watch: RedisQueueWatch, control: httpx.Client
) -> None:
    loaded = load_out_of_band(ctx.client, CARD)
    row_id = _cancelled_row(
        settings, state="loaded", asset_id=loaded.asset.id, ambiguous=True, pin_enc=None
    )
    assert _sweep_and_run(settings, ctx, watch) == [row_id]
    row = read_row(settings, row_id)
    assert (row.state, row.asset_id, row.ambiguous) == ("cancelled", loaded.asset.id, False)
    assert api_calls(control)[1:] == ["GET /api/assets/{id}"]


def test_rows_known_not_sent_are_cancelled_at_once_without_a_call(
    settings: Settings, ctx: PipelineContext, watch: RedisQueueWatch, control: httpx.Client
) -> None:
    row_id = _cancelled_row(settings, state="pending")
    assert _sweep_and_run(settings, ctx, watch) == []
    assert read_row(settings, row_id).state == "cancelled"
    assert api_calls(control) == []
