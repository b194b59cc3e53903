"""The outbox of completion notifications: recorded with the state change, claimed to send.

``record`` runs inside the transaction that moves a batch to done, paused or cancelled
(``pipeline.batch_control``), so a notification exists exactly when the change commits,
once whichever worker made it. Senders (``notifications``) take a row with ``claim``, a
compare-and-set with an expiry, so two workers never POST one notification at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from distributor.batches import batch_counts
from distributor.constants import BatchEvent, RowState
from distributor.models import Notification, Row
from distributor.progress import UNKNOWN_ERROR_CODE

_UNSENT = and_(Notification.sent_at.is_(None), Notification.given_up_at.is_(None))


def failed_by_error_code(session: Session, batch_id: int) -> dict[str, int]:
    """The batch's failed rows by error code, most frequent first."""
    code = func.coalesce(Row.error_code, UNKNOWN_ERROR_CODE)
    query = (
        select(code, func.count())
        .where(Row.batch_id == batch_id, Row.state == RowState.FAILED)
        .group_by(code)
    )
    found = {str(error): int(count) for error, count in session.execute(query)}
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


def record(
    session: Session, *, batch_id: int, event: BatchEvent, reason: str | None, now: datetime
) -> None:
    """Add the notification of ``event``, with the batch's counts as they are now."""
    session.execute(
        insert(Notification).values(
            batch_id=batch_id,
            event=event,
            reason=reason,
            counts=batch_counts(session, batch_id),
            failed=failed_by_error_code(session, batch_id),
            created_at=now,
        )
    )


def take_due(session: Session, *, now: datetime, lost_after: timedelta, limit: int) -> list[int]:
    """Ids of unsent notifications that no queued message is for, marked due now.

    A notification whose next attempt was due more than ``lost_after`` ago lost its
    message (Redis restarted, a worker died) and is taken again. Rows another
    transaction holds are skipped (Postgres).
    """
    query = (
        select(Notification.id)
        .where(
            _UNSENT,
            or_(Notification.due_at.is_(None), Notification.due_at < now - lost_after),
        )
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(ids))
            .values(due_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def ready(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Ids of unsent notifications whose next attempt is due (standalone mode)."""
    query = (
        select(Notification.id)
        .where(_UNSENT, or_(Notification.due_at.is_(None), Notification.due_at <= now))
        .order_by(Notification.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def unsent_count(session: Session) -> int:
    """How many notifications are neither sent nor given up."""
    return session.scalar(select(func.count()).select_from(Notification).where(_UNSENT)) or 0


def give_up_older_than(session: Session, *, before: datetime, now: datetime) -> int:
    """Give up unsent notifications made before ``before``: news too old to be worth it."""
    statement = (
        update(Notification)
        .where(_UNSENT, Notification.created_at < before)
        .values(given_up_at=now, last_error="too old to send")
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def claim(
    session: Session, *, notification_id: int, now: datetime, hold: timedelta
) -> Notification | None:
    """The notification, counted as one more attempt and held for ``hold``; None when it is
    sent, given up, or held by another sender."""
    statement = (
        update(Notification)
        .where(
            Notification.id == notification_id,
            _UNSENT,
            or_(Notification.claimed_until.is_(None), Notification.claimed_until < now),
        )
        .values(claimed_until=now + hold, attempts=Notification.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.execute(
        select(Notification).where(Notification.id == notification_id)
    ).scalar_one()


def mark_sent(session: Session, *, notification_id: int, now: datetime) -> None:
    """The receiver accepted the notification."""
    _finish(session, notification_id, sent_at=now, due_at=None, last_error=None)


def mark_failed(
    session: Session,
    *,
    notification_id: int,
    error: str,
    retry_at: datetime | None,
    now: datetime,
) -> None:
    """An attempt failed: try again at ``retry_at``, or (None) give up."""
    if retry_at is None:
        _finish(session, notification_id, given_up_at=now, due_at=None, last_error=error)
    else:
        _finish(session, notification_id, due_at=retry_at, last_error=error)


def _finish(session: Session, notification_id: int, **values: object) -> None:
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )


def for_batch(session: Session, batch_id: int) -> Sequence[Notification]:
    """The batch's notifications, oldest first."""
    query = select(Notification).where(Notification.batch_id == batch_id)
    return list(session.scalars(query.order_by(Notification.id)))
