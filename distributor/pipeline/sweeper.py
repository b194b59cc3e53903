"""The sweeper: Postgres is the truth, the queue is disposable, and this rebuilds it.

Run periodically by beat (every SWEEP_INTERVAL_SECONDS). Each run:

- notices that the queue lost its data (Redis restarted, flushed, failed over: it keeps
  nothing on disk) and then forgets when every unsettled row was enqueued (but rows a
  dispatch marked after it found the loss), so that this run and the next ones send each
  again: the queue is whole again within a sweep or two, not when it happens to run empty;
- sends every row never enqueued (or forgotten), and every row whose lease ran out (its
  worker died: a SIGKILLed worker's message is acked anyway on Redis);
- sends ahead of the backlog each row under way (a backoff, a lost answer) whose next
  attempt's message was lost with a worker or a Redis: forgotten, or overdue;
- when the queue is empty, also every ready row not enqueued recently (a message lost
  some other way, e.g. held in the memory of a worker that was killed);
- sends the rows of cancelled batches whose card may have gone (an ambiguous last call,
  a worker that died mid-call) to be looked up before they are called cancelled;
- closes batches that have nothing left.

A row sent twice is harmless: the compare-and-set lets only one message take it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from distributor.constants import BatchState
from distributor.db import session_scope
from distributor.models import Batch
from distributor.pipeline import batch_control, ready_rows
from distributor.pipeline.clock import utcnow
from distributor.pipeline.queueing import QueueWatch, RowQueue, dispatch

logger = logging.getLogger(__name__)

LOSS_SEEN_MARGIN_SECONDS = 5.0
"""Rows marked enqueued this long before a dispatch found the queue lost are sent again
too: a margin for the clocks of hosts (a message lost with its row marked late by a fast
clock would otherwise wait for the queue to run empty)."""
REQUEUE_AFTER_SECONDS = 30.0
"""A ready row enqueued this long ago, with the queue empty, lost its message."""
SWEEP_MAX_ROWS = 20_000
"""Rows one sweep sends at most; a rebuild of a larger queue goes on at the next sweep."""
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class SweepReport:
    """What one sweep did: rows sent, batches closed, and rows to send again (a rebuild)."""

    requeued: int
    finished_batches: int
    forgotten: int = 0
    checked: int = 0
    """Rows of cancelled batches sent to be looked up before they end."""


def sweep(*, database_url: str, queue: RowQueue, watch: QueueWatch) -> SweepReport:
    """Rebuild a lost queue, requeue lost rows and finish settled batches.

    Safe to run on any number of hosts at once: one of them rebuilds a lost queue, and
    a row is taken by one dispatch only.
    """
    now = utcnow()
    forgotten = 0
    if watch.claim_rebuild():
        seen = watch.loss_seen_at()
        before = None if seen is None else seen - timedelta(seconds=LOSS_SEEN_MARGIN_SECONDS)
        with session_scope(database_url) as session:
            forgotten = ready_rows.forget_enqueued(session, before=before)
        # After the commit: a sweeper that dies before it leaves the claim to expire, and
        # the next one forgets again; a Redis lost again meanwhile makes this a no-op.
        watch.rebuilt()
        logger.warning(
            "sweep: the queue lost its messages (Redis restarted or flushed); "
            "%d unsettled rows will be sent again",
            forgotten,
        )
    with session_scope(database_url) as session:
        for batch_id in session.scalars(
            select(Batch.id).where(Batch.state == BatchState.CANCELLED)
        ):
            batch_control.cancel_idle_rows(session, batch_id=batch_id, now=now)
    checks = _send_checks(database_url=database_url, queue=queue, now=now)
    # While messages are still queued, a waiting row that was enqueued is not lost: only
    # rows never enqueued (or forgotten above) and expired leases are.
    enqueued_before = now - timedelta(seconds=REQUEUE_AFTER_SECONDS) if watch.is_empty() else NEVER
    # Rows under way first, ahead of the backlog (see CeleryRowQueue): a worker that died
    # mid-call, and rows whose next attempt's message was lost (ready_rows._lost_under_way).
    requeued = dispatch(
        database_url=database_url,
        queue=queue,
        batch_id=None,
        enqueued_before=enqueued_before,
        limit=SWEEP_MAX_ROWS,
        under_way_only=True,
    )
    requeued += dispatch(
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
        # One transaction per batch: finishing takes the batch's lock (see batch_control).
        with session_scope(database_url) as session:
            finished += batch_control.finish_if_settled(session, batch_id=batch_id, now=now)
    if requeued or finished or checks:
        logger.info(
            "sweep: requeued %d rows, finished %d batches, %d cancelled rows to look up",
            requeued,
            finished,
            checks,
        )
    return SweepReport(
        requeued=requeued, finished_batches=finished, forgotten=forgotten, checked=checks
    )


def _send_checks(*, database_url: str, queue: RowQueue, now: datetime) -> int:
    """Send the rows of cancelled batches whose card may have gone, to be looked up."""
    with session_scope(database_url) as session:
        rows = ready_rows.rows_to_check(
            session,
            now=now,
            limit=SWEEP_MAX_ROWS,
            sent_again_after=timedelta(seconds=REQUEUE_AFTER_SECONDS),
        )
        if rows:
            ready_rows.mark_enqueued(session, row_ids=[row_id for row_id, _ in rows], now=now)
            queue.submit(rows, urgent=True)
    return len(rows)
