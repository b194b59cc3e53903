"""A sent row's transfer status as Postgres holds it: rows due for a look, and recording one.

The status only ever moves forward (``TRANSFER_STATUS_ORDER``), written with a
compare-and-set, so a poll, a webhook's look and a reclaim answering at once cannot move
it backwards. Asking Centrapay is ``pipeline.tracking``; this module only reads and writes
rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, false, func, or_, select, update
from sqlalchemy.orm import Session

from distributor.constants import FINAL_TRANSFER_STATUSES, RowState, TransferStatus
from distributor.models import Row

TRANSFER_STATUS_ORDER: dict[str, int] = {
    TransferStatus.CREATED: 0,
    TransferStatus.SENT: 1,
    TransferStatus.EXPIRED: 2,
    TransferStatus.CLAIMED: 3,
    TransferStatus.RETURNED: 3,
    TransferStatus.CANCELLED: 3,
}
"""How far along each status is: a status is only ever replaced by one further along."""


def _not_final() -> ColumnElement[bool]:
    return or_(Row.transfer_status.is_(None), Row.transfer_status.not_in(FINAL_TRANSFER_STATUSES))


def due_for_poll(session: Session, *, now: datetime, interval: timedelta, limit: int) -> list[int]:
    """Ids of sent rows whose transfer is not final and not looked at for ``interval``.

    Oldest first. A row never polled counts as looked at when it was sent: the create
    answer gave its status then. A row whose transfer id is still pending waits for the
    transfer-id sync (``pipeline.transfer_ids``), which brings its status too.
    """
    last_seen = func.coalesce(Row.transfer_checked_at, Row.sent_at)
    query = (
        select(Row.id)
        .where(
            Row.state == RowState.SENT,
            Row.transfer_id.is_not(None),
            _not_final(),
            or_(last_seen.is_(None), last_seen <= now - interval),
        )
        .order_by(last_seen.asc().nulls_first(), Row.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def find_tracked_row(session: Session, transfer_id: str) -> tuple[int, int] | None:
    """(row id, batch id) of the sent row holding ``transfer_id`` while it is not final."""
    query = select(Row.id, Row.batch_id).where(
        Row.transfer_id == transfer_id, Row.state == RowState.SENT, _not_final()
    )
    found = session.execute(query).first()
    return None if found is None else (found[0], found[1])


def _moves_to(status: str) -> ColumnElement[bool]:
    """True for a stored status that ``status`` is further along than."""
    rank = TRANSFER_STATUS_ORDER.get(status)
    if rank is None:
        return false()
    earlier = [known for known, known_rank in TRANSFER_STATUS_ORDER.items() if known_rank < rank]
    return or_(Row.transfer_status.is_(None), Row.transfer_status.in_(earlier))


def record_transfer_status(
    session: Session, *, row_id: int, transfer_id: str, status: str | None, now: datetime
) -> str | None:
    """Record that the row's transfer was looked at ``now`` and showed ``status``.

    A compare-and-set on a sent row holding ``transfer_id``: the status only moves forward
    (never out of claimed or returned); ``status`` None records the look alone. Returns the
    status the row holds afterwards, or None when it is not such a row.
    """
    moves = false() if status is None else _moves_to(status)
    statement = (
        update(Row)
        .where(Row.id == row_id, Row.state == RowState.SENT, Row.transfer_id == transfer_id)
        .values(
            transfer_checked_at=now,
            transfer_status=case((moves, status), else_=Row.transfer_status),
            updated_at=case((moves, now), else_=Row.updated_at),
        )
        .returning(Row.transfer_status)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).scalar_one_or_none()


def transfer_summary(session: Session, batch_id: int) -> dict[str, int]:
    """The batch's sent rows by transfer status, every status present (0 when none)."""
    counts = dict.fromkeys((str(status) for status in TransferStatus), 0)
    query = (
        select(Row.transfer_status, func.count())
        .where(
            Row.batch_id == batch_id, Row.state == RowState.SENT, Row.transfer_status.is_not(None)
        )
        .group_by(Row.transfer_status)
    )
    for status, count in session.execute(query).tuples():
        counts[str(status)] = count
    return counts
