"""The sweeper rebuilds the queue from Postgres: no row waits forever for a lost message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import update

from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.sweeper import REQUEUE_AFTER_SECONDS, sweep
from distributor.vault import vault_from_settings
from tests.factories import make_batch, make_row


class RecordingQueue:
    """A RowQueue that keeps what it was given (the sweeper's output is the test's subject)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []

    def submit(self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0) -> None:
        self.rows.extend(rows)


def _in_flight_row(settings: Settings, *, lease_ago: float, enqueued_ago: float) -> int:
    now = utcnow()
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        row = make_row(
            session, batch=batch, vault=vault_from_settings(settings), card_number="23405500001"
        )
        session.execute(
            update(Row)
            .where(Row.id == row.id)
            .values(
                state=RowState.TRANSFERRING,
                lease_until=now - timedelta(seconds=lease_ago),
                enqueued_at=now - timedelta(seconds=enqueued_ago),
            )
        )
        return row.id


def test_a_row_whose_lease_ran_out_is_requeued_once_per_expiry(settings: Settings) -> None:
    row_id = _in_flight_row(settings, lease_ago=5, enqueued_ago=60)
    first, second = RecordingQueue(), RecordingQueue()
    sweep(database_url=settings.database_url, queue=first, queue_is_empty=False)
    sweep(database_url=settings.database_url, queue=second, queue_is_empty=False)
    assert [row for row, _ in first.rows] == [row_id]
    assert second.rows == [], "requeued again while its message may still be queued"


def test_an_expired_row_whose_requeue_message_was_lost_is_requeued_again(
    settings: Settings,
) -> None:
    lost_long_ago = REQUEUE_AFTER_SECONDS + 60
    row_id = _in_flight_row(settings, lease_ago=lost_long_ago + 30, enqueued_ago=lost_long_ago)
    queue = RecordingQueue()
    sweep(database_url=settings.database_url, queue=queue, queue_is_empty=True)
    assert [row for row, _ in queue.rows] == [row_id]


def test_an_expired_row_requeued_moments_ago_is_left_to_its_message(settings: Settings) -> None:
    _in_flight_row(settings, lease_ago=20, enqueued_ago=1)
    queue = RecordingQueue()
    sweep(database_url=settings.database_url, queue=queue, queue_is_empty=True)
    assert queue.rows == []
