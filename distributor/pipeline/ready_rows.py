"""Which rows go to the queue now, and the mark of when each last went (``enqueued_at``).

The queries behind ``queueing.dispatch`` and the sweeper: the rows of running batches a
task could take (waiting rows whose wait is over, in-flight rows whose lease ran out),
the rows of cancelled batches to look up before they end, and the ``enqueued_at`` mark
that keeps a row from being sent again while its message is still queued, forgotten all
at once when the queue loses its messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from distributor.constants import UNSETTLED_STATES, BatchState, RowState
from distributor.models import Batch, Row

RETRY_OVERDUE_SECONDS = 10.0
"""A row waiting for another attempt whose wait ended this long ago without a message
having taken it lost that message (see ``_lost_under_way``); sent again at most this often."""


def ready_row_ids(
    session: Session,
    *,
    batch_id: int | None,
    now: datetime,
    after_id: int,
    limit: int,
    enqueued_before: datetime | None = None,
    lock: bool = False,
    under_way_only: bool = False,
) -> list[tuple[int, int]]:
    """(row id, batch id) of rows of running batches that a task could take now, by id.

    In-flight rows whose lease ran out and that were not enqueued since; and waiting rows
    whose wait is over, all of them, or with ``enqueued_before`` only those never
    enqueued or last enqueued before then (which also takes expired rows again). With
    ``lock``, the rows are locked until commit and rows another transaction holds are
    skipped (Postgres; SQLite has one writer anyway). ``under_way_only``: only rows under
    way whose message is lost (``_lost_under_way``).
    """
    waiting = and_(
        Row.state.in_([RowState.PENDING, RowState.LOADED]),
        or_(Row.not_before.is_(None), Row.not_before <= now),
    )
    if enqueued_before is not None:
        waiting = and_(waiting, or_(Row.enqueued_at.is_(None), Row.enqueued_at < enqueued_before))
    # An expired row is sent once per expiry (not enqueued since its lease was taken); and,
    # like a waiting row, again when its last message is older than ``enqueued_before``:
    # that message was lost (a Redis restart right after the sweep requeued the row).
    not_enqueued_since = or_(Row.enqueued_at.is_(None), Row.enqueued_at < Row.lease_until)
    if enqueued_before is not None:
        not_enqueued_since = or_(not_enqueued_since, Row.enqueued_at < enqueued_before)
    expired = and_(
        Row.state.in_([RowState.LOADING, RowState.TRANSFERRING]),
        Row.lease_until < now,
        not_enqueued_since,
    )
    query = (
        select(Row.id, Row.batch_id)
        .join(Batch, Batch.id == Row.batch_id)
        .where(
            Batch.state == BatchState.RUNNING,
            Row.id > after_id,
            or_(expired, _lost_under_way(now)) if under_way_only else or_(waiting, expired),
        )
        .order_by(Row.id)
        .limit(limit)
    )
    if batch_id is not None:
        query = query.where(Row.batch_id == batch_id)
    if lock:
        query = query.with_for_update(skip_locked=True, of=Row)
    return [(row_id, row_batch) for row_id, row_batch in session.execute(query)]


def _lost_under_way(now: datetime) -> ColumnElement[bool]:
    """Waiting rows under way (a step tried before: a backoff, a loaded card, a lost answer)
    whose wait is over and whose message is lost: forgotten by a rebuild, or overdue.

    Such a row's next attempt went as an urgent message with a countdown, which a worker
    holds in memory until it falls due: killed, or with Redis lost, the message is gone.
    Sent with the backlog, the row would wait minutes behind it, and the lookup a lost
    answer needs is sure only before the recipient claims the card.
    """
    overdue = now - timedelta(seconds=RETRY_OVERDUE_SECONDS)
    under_way = or_(Row.state == RowState.LOADED, Row.not_before.is_not(None), Row.ambiguous)
    lost = or_(Row.enqueued_at.is_(None), and_(Row.not_before < overdue, Row.enqueued_at < overdue))
    return and_(
        Row.state.in_([RowState.PENDING, RowState.LOADED]),
        or_(Row.not_before.is_(None), Row.not_before <= now),
        under_way,
        lost,
    )


def mark_enqueued(session: Session, *, row_ids: Sequence[int], now: datetime) -> None:
    """Remember when these rows were last handed to the queue."""
    session.execute(
        update(Row)
        .where(Row.id.in_(row_ids))
        .values(enqueued_at=now)
        .execution_options(synchronize_session=False)
    )


def forget_enqueued(session: Session, *, before: datetime | None = None) -> int:
    """Forget when unsettled rows were last enqueued (all, or those ``before`` a moment):
    the queue lost those messages.

    The sweeper then sends each again as soon as it is ready (a row waiting out a backoff,
    once the wait is over; a row in flight, once its lease runs out). Returns the rows.
    """
    enqueued = Row.enqueued_at.is_not(None) if before is None else Row.enqueued_at < before
    statement = (
        update(Row)
        .where(Row.state.in_(UNSETTLED_STATES), enqueued)
        .values(enqueued_at=None)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def rows_to_check(
    session: Session, *, now: datetime, limit: int, sent_again_after: timedelta
) -> list[tuple[int, int]]:
    """(row id, batch id) of rows of cancelled batches to look up before they end.

    Waiting rows whose last call was ambiguous, and in-flight rows whose worker died; each
    once per change, and again when its message is older than ``sent_again_after``.
    """
    unsure = or_(
        and_(
            Row.state.in_([RowState.PENDING, RowState.LOADED]),
            Row.ambiguous,
            or_(Row.not_before.is_(None), Row.not_before <= now),
        ),
        and_(Row.state.in_([RowState.LOADING, RowState.TRANSFERRING]), Row.lease_until < now),
    )
    not_sent = or_(
        Row.enqueued_at.is_(None),
        Row.enqueued_at < Row.updated_at,
        Row.enqueued_at < now - sent_again_after,
    )
    query = (
        select(Row.id, Row.batch_id)
        .join(Batch, Batch.id == Row.batch_id)
        .where(Batch.state == BatchState.CANCELLED, unsure, not_sent)
        .order_by(Row.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Row)
    )
    return [(row_id, batch_id) for row_id, batch_id in session.execute(query)]
