"""Which calls count for a batch: a look at a sent row's transfer and a reclaim count for the
row's batch; a row goes on whatever becomes of its counts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from centrapay_sandbox.server import SandboxHandle
from distributor.answer_log import AnswerLog, on_behalf_of
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline import reclaim, tracking
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.steps import advance_row
from distributor.ratelimit.local import LocalTokenBucket
from distributor.vault import vault_from_settings
from tests.conftest import SANDBOX_ACCOUNT
from tests.factories import load_row, make_batch, make_row
from tests.integration.answer_log.answer_helpers import recorded_totals
from tests.integration.tracking.tracking_helpers import send_card
from tests.processes import free_port


@pytest.fixture
def sandbox_settings(settings: Settings, sandbox: SandboxHandle) -> Settings:
    """The test's settings, calling the sandbox."""
    return settings.model_copy(
        update={"centrapay_base_url": sandbox.base_url, "centrapay_account_id": SANDBOX_ACCOUNT}
    )


def _context(settings: Settings, answers: AnswerLog) -> PipelineContext:
    return build_context(
        settings,
        bucket=LocalTokenBucket(rate_per_second=1000.0, burst=100),
        base_url=settings.centrapay_base_url or "",
        answers=answers,
    )


@pytest.fixture
def reader(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test's Redis database, to read the answer log."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _batch_of(settings: Settings, row_id: int) -> int:
    with session_scope(settings.database_url) as session:
        return load_row(session, row_id).batch_id


def test_a_look_at_a_sent_rows_transfer_counts_for_the_rows_batch(
    sandbox_settings: Settings, reader: redis.Redis
) -> None:
    ctx = _context(sandbox_settings, AnswerLog.to_redis(sandbox_settings.redis_url))
    try:
        row_id = send_card(ctx, sandbox_settings, card="23405500001", recipient="+64221231234")
        assert tracking.refresh_transfer(ctx, row_id) is not None
    finally:
        ctx.close()
    assert recorded_totals(reader, _batch_of(sandbox_settings, row_id)) == {"2xx": 1}


def test_a_reclaims_cancels_count_for_the_batch(
    sandbox_settings: Settings, reader: redis.Redis
) -> None:
    ctx = _context(sandbox_settings, AnswerLog.to_redis(sandbox_settings.redis_url))
    try:
        row_id = send_card(ctx, sandbox_settings, card="23405500002", recipient="+64221231234")
    finally:
        ctx.close()
    batch_id = _batch_of(sandbox_settings, row_id)
    client = reclaim.reclaim_client(sandbox_settings)
    try:
        result = reclaim.reclaim(
            database_url=sandbox_settings.database_url,
            client=client,
            batch_id=batch_id,
            older_than=timedelta(0),
        )
    finally:
        client.close()
    assert result.reclaimed == [row_id]
    assert recorded_totals(reader, batch_id) == {"2xx": 1}


def test_rows_are_sent_while_the_answer_log_cannot_reach_redis(
    sandbox_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    vault = vault_from_settings(sandbox_settings)
    with session_scope(sandbox_settings.database_url) as session:
        batch = make_batch(session)
        rows = [
            make_row(session, batch=batch, vault=vault, card_number=f"2340660000{i}", line_no=i)
            for i in range(1, 6)
        ]
        batch_id, row_ids = batch.id, [row.id for row in rows]
    nowhere = AnswerLog.to_redis(f"redis://127.0.0.1:{free_port()}/0")
    ctx = _context(sandbox_settings, nowhere)
    caplog.set_level(logging.WARNING, logger="distributor.answer_log")
    try:
        with on_behalf_of(batch_id):
            for row_id in row_ids:
                assert advance_row(ctx, row_id) is None
                nowhere.flush()
    finally:
        ctx.close()
    with session_scope(sandbox_settings.database_url) as session:
        states = {session.get_one(Row, row_id).state for row_id in row_ids}
    assert states == {"sent"}
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
