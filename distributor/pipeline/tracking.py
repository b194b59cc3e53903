"""After ``sent``: follow each transfer at Centrapay until it is claimed or returned.

Beat polls the rows whose status is not final (``poll_due``), and Centrapay's webhook asks
for one row to be looked at again; either way the status recorded is the one Centrapay
answers to our own ``GET``, written with a compare-and-set that never moves it backwards.
Every ``GET`` takes a token from the shared bucket, so a poll run looks at no more rows than
a small share of the bucket's tokens, and stops when no token comes within
TOKEN_WAIT_MAX_SECONDS: sending cards comes first. With many open transfers the poll cycles
through them, oldest first, at that share of the rate; the webhook is what makes updates
prompt.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, false, func, or_, select, update
from sqlalchemy.orm import Session

from distributor.constants import FINAL_TRANSFER_STATUSES, RowState, TransferStatus
from distributor.db import session_scope
from distributor.errors import CentrapayRejected, DistributorError
from distributor.models import Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext

logger = logging.getLogger(__name__)

TRANSFER_STATUS_ORDER: dict[str, int] = {
    TransferStatus.CREATED: 0,
    TransferStatus.SENT: 1,
    TransferStatus.EXPIRED: 2,
    TransferStatus.CLAIMED: 3,
    TransferStatus.RETURNED: 3,
    TransferStatus.CANCELLED: 3,
}
"""How far along each status is: a status is only ever replaced by one further along."""

POLL_RUNS_PER_INTERVAL = 4
"""Beat polls this often per TRANSFER_POLL_INTERVAL_SECONDS, so a row falling due waits at
most a quarter interval more (with one run per interval it would wait a whole one)."""
POLL_BUCKET_SHARE = 0.1
"""Polling takes at most this share of the bucket's tokens; the rest is for sending rows."""
POLL_RUN_MAX_SECONDS = 60.0
"""A run stops after this long (or one poll period, if shorter), done or not."""


def poll_period_seconds(interval_seconds: float) -> float:
    """Seconds between two poll runs for a poll interval of ``interval_seconds``."""
    return interval_seconds / POLL_RUNS_PER_INTERVAL


def poll_limit(*, rate_per_second: float, interval_seconds: float) -> int:
    """Rows one poll run may look at: POLL_BUCKET_SHARE of the tokens of one poll period."""
    tokens = rate_per_second * poll_period_seconds(interval_seconds)
    return max(1, int(tokens * POLL_BUCKET_SHARE))


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


def refresh_transfer(ctx: PipelineContext, row_id: int) -> str | None:
    """Fetch the row's transfer from Centrapay and record its status; the status now held.

    None when the row is not sent. A transfer Centrapay refuses to show (a 4xx) is recorded
    as looked at, so it goes to the back of the poll queue. Any other error of the client
    (TokenWaitTooLong, a timeout, a 5xx, a 401) is raised, with nothing recorded.
    """
    with session_scope(ctx.database_url) as session:
        transfer_id = session.scalar(
            select(Row.transfer_id).where(Row.id == row_id, Row.state == RowState.SENT)
        )
    if transfer_id is None:
        return None
    status: str | None
    try:
        status = ctx.client.get_transfer(transfer_id).status
    except CentrapayRejected as error:
        logger.warning(
            "row %s: Centrapay will not show transfer %s: %s", row_id, transfer_id, error.code
        )
        status = None
    if status is not None and status not in TRANSFER_STATUS_ORDER:
        logger.warning("row %s: transfer %s has an unknown status %r", row_id, transfer_id, status)
        status = None
    with session_scope(ctx.database_url) as session:
        return record_transfer_status(
            session, row_id=row_id, transfer_id=transfer_id, status=status, now=utcnow()
        )


def poll_due(ctx: PipelineContext, *, interval_seconds: float, limit: int) -> int:
    """Refresh up to ``limit`` rows due for a poll, oldest first; how many were refreshed.

    The run stops at the first error that is not about one transfer (no token soon enough,
    Centrapay down or refusing our key), after one poll period, or when the process shuts
    down: the rows left wait for the next run.
    """
    period = poll_period_seconds(interval_seconds)
    deadline = time.monotonic() + min(period, POLL_RUN_MAX_SECONDS)
    with session_scope(ctx.database_url) as session:
        due = due_for_poll(
            session, now=utcnow(), interval=timedelta(seconds=interval_seconds), limit=limit
        )
    refreshed = 0
    for row_id in due:
        if ctx.stopping.is_set() or time.monotonic() > deadline:
            break
        try:
            refresh_transfer(ctx, row_id)
        except DistributorError as error:
            logger.info("transfer poll stopped after %d of %d rows: %s", refreshed, len(due), error)
            break
        refreshed += 1
    return refreshed


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
