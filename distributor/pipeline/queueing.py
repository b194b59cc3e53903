"""Handing rows to whatever runs them: Celery on Redis, or a thread pool in standalone mode."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from distributor.constants import DISPATCH_CHUNK_ROWS
from distributor.db import session_scope
from distributor.pipeline import ready_rows
from distributor.pipeline.clock import utcnow


class RowQueue(Protocol):
    """Somewhere to send row ids to be advanced."""

    def submit(
        self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0, urgent: bool = False
    ) -> None:
        """Run ``advance_row`` for each (row id, batch id), after ``countdown`` seconds;
        ``urgent`` ones ahead of the rows already waiting."""

    def note_if_lost(self) -> None:
        """Called before rows are marked enqueued: if the queue lost what it held and has
        not been rebuilt since, record now as the moment that was seen."""


class QueueWatch(Protocol):
    """What the sweeper asks about a ``RowQueue``: is it empty, and did it lose its data."""

    def is_empty(self) -> bool:
        """True when no row message waits in the queue."""

    def claim_rebuild(self) -> bool:
        """True, for one caller only, once the queue has lost the messages it held."""

    def loss_seen_at(self) -> datetime | None:
        """When a dispatch first found the queue lost (``RowQueue.note_if_lost``), if one
        did: rows marked enqueued since then were not in the messages lost."""

    def rebuilt(self) -> None:
        """The caller has marked the rows of the lost messages to be sent again."""


def dispatch(
    *,
    database_url: str,
    queue: RowQueue,
    batch_id: int | None,
    enqueued_before: datetime | None = None,
    limit: int | None = None,
    under_way_only: bool = False,
) -> int:
    """Send every ready row (of one batch, or all running batches) to ``queue``, in chunks.

    ``under_way_only``: only rows under way whose message is lost (a lease run out, a
    retry overdue or forgotten), sent as urgent.

    Returns how many rows were sent. Each chunk is taken (``FOR UPDATE SKIP LOCKED``, so
    two sweepers at once never send one row twice), sent and marked enqueued in its own
    short transaction, so a large batch neither holds a long transaction nor one huge
    message. The messages go out before the mark is committed: a queue that refuses them
    (Redis down) leaves the rows unmarked for the next sweep, not marked and lost.
    """
    sent = 0
    after_id = 0
    queue.note_if_lost()
    while limit is None or sent < limit:
        chunk = DISPATCH_CHUNK_ROWS if limit is None else min(DISPATCH_CHUNK_ROWS, limit - sent)
        now = utcnow()
        with session_scope(database_url) as session:
            rows = ready_rows.ready_row_ids(
                session,
                batch_id=batch_id,
                now=now,
                after_id=after_id,
                limit=chunk,
                enqueued_before=enqueued_before,
                lock=True,
                under_way_only=under_way_only,
            )
            if not rows:
                break
            ready_rows.mark_enqueued(session, row_ids=[row_id for row_id, _ in rows], now=now)
            queue.submit(rows, urgent=under_way_only)
        sent += len(rows)
        after_id = rows[-1][0]
    return sent
