"""The sweeper: Postgres is the truth, the queue is disposable, and this rebuilds it.

Run periodically by beat. It sends again every row whose lease ran out (its worker died,
or Celery lost the message: a SIGKILLed worker's message is acked anyway on Redis), and,
when the queue is empty, every ready row not enqueued recently (Redis was flushed or
restarted: it keeps nothing on disk). It also closes batches that have nothing left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.models import Batch
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow
from distributor.pipeline.queueing import RowQueue, dispatch

logger = logging.getLogger(__name__)

REQUEUE_AFTER_SECONDS = 30.0
"""A ready row enqueued this long ago, with the queue empty, lost its message."""
SWEEP_MAX_ROWS = 20_000
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class SweepReport:
    """What one sweep did."""

    requeued: int
    finished_batches: int


def sweep(*, database_url: str, queue: RowQueue, queue_is_empty: bool) -> SweepReport:
    """Requeue lost rows and finish settled batches; safe to run on any number of hosts."""
    now = utcnow()
    with session_scope(database_url) as session:
        for batch_id in session.scalars(
            select(Batch.id).where(Batch.state == BatchState.CANCELLED)
        ):
            batch_control.cancel_idle_rows(session, batch_id=batch_id, now=now)
    # While messages are still queued, a waiting row that was enqueued is not lost: only
    # rows never enqueued (and expired leases) are.
    enqueued_before = now - timedelta(seconds=REQUEUE_AFTER_SECONDS) if queue_is_empty else NEVER
    requeued = dispatch(
        database_url=database_url,
        queue=queue,
        batch_id=None,
        enqueued_before=enqueued_before,
        limit=SWEEP_MAX_ROWS,
    )
    finished = 0
    with session_scope(database_url) as session:
        running = list(session.scalars(select(Batch.id).where(Batch.state == BatchState.RUNNING)))
        for batch_id in running:
            finished += batch_control.finish_if_settled(session, batch_id=batch_id, now=now)
    if requeued or finished:
        logger.info("sweep: requeued %d rows, finished %d batches", requeued, finished)
    return SweepReport(requeued=requeued, finished_batches=finished)
