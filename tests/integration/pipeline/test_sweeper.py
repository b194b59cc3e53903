"""The sweeper rebuilds the queue from Postgres: no row waits forever for a lost message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select, update

from distributor.broker import CeleryRowQueue, RedisQueueWatch, make_celery
from distributor.config import Settings
from distributor.constants import CELERY_QUEUE, RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.queueing import dispatch
from distributor.pipeline.ready_rows import RETRY_OVERDUE_SECONDS
from distributor.pipeline.sweeper import LOSS_SEEN_MARGIN_SECONDS, REQUEUE_AFTER_SECONDS, sweep
from distributor.vault import vault_from_settings
from tests.factories import make_batch, make_row


class RecordingQueue:
    """A RowQueue that keeps what it was given (the sweeper's output is the test's subject)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []
        self.urgent: list[tuple[int, int]] = []

    def submit(
        self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0, urgent: bool = False
    ) -> None:
        self.rows.extend(rows)
        if urgent:
            self.urgent.extend(rows)

    def note_if_lost(self) -> None:
        """What the sweeper's own dispatches note is not the subject here."""


def _queue_holds_a_message(redis_url: str) -> None:
    """Something waits in the row queue (what it is does not matter to the sweeper)."""
    redis.Redis.from_url(redis_url).lpush(CELERY_QUEUE, "a message of another row")


def _row_as(settings: Settings, card: str, **values: object) -> int:
    """A row of a new running batch, written as ``values`` say (as earlier work left it)."""
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        row = make_row(session, batch=batch, vault=vault_from_settings(settings), card_number=card)
        session.execute(update(Row).where(Row.id == row.id).values(**values))
        return row.id


def _in_flight_row(settings: Settings, *, lease_ago: float, enqueued_ago: float) -> int:
    now = utcnow()
    return _row_as(
        settings,
        "23405500001",
        state=RowState.TRANSFERRING,
        lease_until=now - timedelta(seconds=lease_ago),
        enqueued_at=now - timedelta(seconds=enqueued_ago),
    )


def test_a_row_whose_lease_ran_out_is_requeued_once_per_expiry(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    row_id = _in_flight_row(settings, lease_ago=5, enqueued_ago=60)
    _queue_holds_a_message(settings.redis_url)
    first, second = RecordingQueue(), RecordingQueue()
    sweep(database_url=settings.database_url, queue=first, watch=watch)
    sweep(database_url=settings.database_url, queue=second, watch=watch)
    assert [row for row, _ in first.rows] == [row_id]
    assert first.urgent == first.rows, "a dead worker's row goes ahead of the backlog"
    assert second.rows == [], "requeued again while its message may still be queued"


def test_an_expired_row_whose_requeue_message_was_lost_is_requeued_again(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    lost_long_ago = REQUEUE_AFTER_SECONDS + 60
    row_id = _in_flight_row(settings, lease_ago=lost_long_ago + 30, enqueued_ago=lost_long_ago)
    queue = RecordingQueue()
    sweep(database_url=settings.database_url, queue=queue, watch=watch)
    assert [row for row, _ in queue.rows] == [row_id]


def test_an_expired_row_requeued_moments_ago_is_left_to_its_message(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    _in_flight_row(settings, lease_ago=20, enqueued_ago=1)
    queue = RecordingQueue()
    sweep(database_url=settings.database_url, queue=queue, watch=watch)
    assert queue.rows == []


def _waiting_rows(
    settings: Settings,
    count: int,
    *,
    enqueued_ago: float | None,
    wait: float = 0,
    card_prefix: str = "2340660",
) -> int:
    """A batch of ``count`` pending rows enqueued ``enqueued_ago`` seconds ago (None: never),
    due in ``wait`` seconds; its id."""
    now = utcnow()
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        for index in range(count):
            make_row(
                session,
                batch=batch,
                vault=vault,
                card_number=f"{card_prefix}{index:04d}",
                line_no=index + 1,
            )
        enqueued = None if enqueued_ago is None else now - timedelta(seconds=enqueued_ago)
        session.execute(
            update(Row)
            .where(Row.batch_id == batch.id)
            .values(
                enqueued_at=enqueued,
                not_before=(now + timedelta(seconds=wait)) if wait else None,
            )
        )
        return batch.id


def test_a_redis_that_lost_its_data_has_every_waiting_row_sent_again_at_the_next_sweep(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    # Enqueued a moment ago, and messages of other rows still queued: only the missing
    # sentinel tells that Redis lost these rows' messages.
    _waiting_rows(settings, 3, enqueued_ago=1)
    redis.Redis.from_url(settings.redis_url).flushdb()
    _queue_holds_a_message(settings.redis_url)
    rebuild, after = RecordingQueue(), RecordingQueue()
    report = sweep(database_url=settings.database_url, queue=rebuild, watch=watch)
    sweep(database_url=settings.database_url, queue=after, watch=watch)
    assert (len(rebuild.rows), report.forgotten) == (3, 3)
    assert after.rows == [], "a second sweep sent the rebuilt rows again"


def _row_coming_back(settings: Settings, *, due_ago: float, enqueued_ago: float) -> int:
    """A row released for another attempt whose wait ended ``due_ago`` seconds ago, its
    last dispatch ``enqueued_ago`` seconds ago (its retry went as a countdown message)."""
    now = utcnow()
    return _row_as(
        settings,
        "23405600001",
        load_attempts=1,
        ambiguous=True,
        not_before=now - timedelta(seconds=due_ago),
        enqueued_at=now - timedelta(seconds=enqueued_ago),
    )


def test_a_row_whose_retry_message_was_lost_goes_ahead_of_the_backlog_once_overdue(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    # Its countdown message died with a worker; the backlog's messages are still queued.
    row_id = _row_coming_back(
        settings, due_ago=RETRY_OVERDUE_SECONDS + 1, enqueued_ago=RETRY_OVERDUE_SECONDS + 60
    )
    _queue_holds_a_message(settings.redis_url)
    first, second = RecordingQueue(), RecordingQueue()
    sweep(database_url=settings.database_url, queue=first, watch=watch)
    sweep(database_url=settings.database_url, queue=second, watch=watch)
    assert first.urgent == [(row_id, first.rows[0][1])] and first.rows == first.urgent
    assert second.rows == [], "sent again before its new message could run"


def test_a_row_whose_retry_fell_due_moments_ago_is_left_to_its_message(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    _row_coming_back(settings, due_ago=1, enqueued_ago=60)
    _queue_holds_a_message(settings.redis_url)
    queue = RecordingQueue()
    sweep(database_url=settings.database_url, queue=queue, watch=watch)
    assert queue.rows == []


def test_a_row_under_way_forgotten_by_a_rebuild_goes_ahead_of_the_backlog(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    row_id = _row_coming_back(settings, due_ago=1, enqueued_ago=60)
    redis.Redis.from_url(settings.redis_url).flushdb()
    _queue_holds_a_message(settings.redis_url)
    first, second = RecordingQueue(), RecordingQueue()
    sweep(database_url=settings.database_url, queue=first, watch=watch)
    sweep(database_url=settings.database_url, queue=second, watch=watch)
    assert [row for row, _ in first.urgent] == [row_id], "sent behind the backlog"
    assert second.rows == []


def test_rows_dispatched_after_redis_lost_its_data_are_not_sent_again_by_the_rebuild(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    # A new or flushed Redis, and a batch dispatched before the first sweep: its messages
    # went to the Redis as it is now. Only rows marked before the loss was seen go again.
    _waiting_rows(settings, 2, enqueued_ago=LOSS_SEEN_MARGIN_SECONDS + 5)
    redis.Redis.from_url(settings.redis_url).flushdb()
    fresh = _waiting_rows(settings, 3, enqueued_ago=None, card_prefix="2340670")
    dispatch(
        database_url=settings.database_url,
        queue=CeleryRowQueue(make_celery(settings)),
        batch_id=fresh,
    )
    rebuild = RecordingQueue()
    report = sweep(database_url=settings.database_url, queue=rebuild, watch=watch)
    assert (len(rebuild.rows), report.forgotten) == (2, 2)
    assert fresh not in {batch_id for _, batch_id in rebuild.rows}
    assert watch.loss_seen_at() is None, "the rebuild is done: the next loss is a new one"


def test_a_loss_seen_while_a_rebuild_is_under_way_is_not_recorded(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    redis.Redis.from_url(settings.redis_url).flushdb()
    assert watch.claim_rebuild()
    CeleryRowQueue(make_celery(settings)).note_if_lost()
    assert watch.loss_seen_at() is None


def test_a_row_waiting_out_a_backoff_when_redis_lost_its_data_is_sent_when_due(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    _waiting_rows(settings, 1, enqueued_ago=1, wait=60)
    redis.Redis.from_url(settings.redis_url).flushdb()
    _queue_holds_a_message(settings.redis_url)
    early = RecordingQueue()
    sweep(database_url=settings.database_url, queue=early, watch=watch)
    assert early.rows == [], "sent before its wait was over"
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).values(not_before=utcnow() - timedelta(seconds=1)))
    due = RecordingQueue()
    sweep(database_url=settings.database_url, queue=due, watch=watch)
    assert len(due.rows) == 1


def test_an_intact_queue_is_not_rebuilt(settings: Settings, watch: RedisQueueWatch) -> None:
    _waiting_rows(settings, 2, enqueued_ago=1)
    _queue_holds_a_message(settings.redis_url)
    queue = RecordingQueue()
    report = sweep(database_url=settings.database_url, queue=queue, watch=watch)
    assert (queue.rows, report.forgotten) == ([], 0)


def test_a_rebuild_claimed_by_another_sweeper_is_left_to_it(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    _waiting_rows(settings, 2, enqueued_ago=1)
    redis.Redis.from_url(settings.redis_url).flushdb()
    assert watch.claim_rebuild(), "the first sweeper to ask rebuilds"
    assert not watch.claim_rebuild(), "a second one at the same time does not"


def test_a_failed_submit_leaves_the_rows_to_the_next_sweep(
    settings: Settings, watch: RedisQueueWatch
) -> None:
    _waiting_rows(settings, 2, enqueued_ago=1)
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).values(enqueued_at=None))

    class Refusing(RecordingQueue):
        def submit(
            self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0, urgent: bool = False
        ) -> None:
            raise redis.ConnectionError("Redis is down")

    with pytest.raises(redis.ConnectionError):
        sweep(database_url=settings.database_url, queue=Refusing(), watch=watch)
    with session_scope(settings.database_url) as session:
        marked = list(session.scalars(select(Row.enqueued_at).where(Row.enqueued_at.is_not(None))))
    assert marked == [], "rows marked enqueued although no message went out"
    queue = RecordingQueue()
    sweep(database_url=settings.database_url, queue=queue, watch=watch)
    assert len(queue.rows) == 2
