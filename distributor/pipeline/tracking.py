"""After ``sent``: follow each transfer at Centrapay until it is claimed or returned.

Beat polls the rows whose status is not final (``poll_due``), and Centrapay's webhook asks
for one row to be looked at again; either way the status recorded is the one Centrapay
answers to our own ``GET``, written with a compare-and-set that never moves it backwards.
Every ``GET`` takes a token from the shared bucket, so a poll run looks at no more rows than
a small share of the bucket's tokens, and stops when no token comes within
TOKEN_WAIT_MAX_SECONDS: sending cards comes first. With many open transfers the poll cycles
through them, oldest first, at that share of the rate; the webhook is what makes updates
prompt. What this reads and writes in Postgres is ``pipeline.transfer_status``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import select

from distributor.answer_log import on_behalf_of
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.errors import CentrapayRejected, DistributorError
from distributor.models import Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.transfer_status import (
    TRANSFER_STATUS_ORDER,
    due_for_poll,
    record_transfer_status,
)

logger = logging.getLogger(__name__)

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


def refresh_transfer(ctx: PipelineContext, row_id: int) -> str | None:
    """Fetch the row's transfer from Centrapay and record its status; the status now held.

    None when the row is not sent. A transfer Centrapay refuses to show (a 4xx) is recorded
    as looked at, so it goes to the back of the poll queue. Any other error of the client
    (TokenWaitTooLong, a timeout, a 5xx, a 401) is raised, with nothing recorded.
    """
    with session_scope(ctx.database_url) as session:
        found = session.execute(
            select(Row.transfer_id, Row.batch_id).where(
                Row.id == row_id, Row.state == RowState.SENT
            )
        ).first()
    if found is None or found.transfer_id is None:
        return None
    transfer_id: str = found.transfer_id
    status: str | None
    try:
        with on_behalf_of(found.batch_id):
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
