"""Handing rows to whatever runs them: Celery on Redis, or a thread pool in standalone mode."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from distributor.constants import DISPATCH_CHUNK_ROWS
from distributor.db import session_scope
from distributor.pipeline import batch_control
from distributor.pipeline.clock import utcnow


class RowQueue(Protocol):
    """Somewhere to send row ids to be advanced."""

    def submit(self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0) -> None:
        """Run ``advance_row`` for each (row id, batch id), after ``countdown`` seconds."""


def dispatch(
    *,
    database_url: str,
    queue: RowQueue,
    batch_id: int | None,
    enqueued_before: datetime | None = None,
    limit: int | None = None,
) -> int:
    """Send every ready row (of one batch, or all running batches) to ``queue``, in chunks.

    Returns how many rows were sent. Each chunk is marked enqueued in its own short
    transaction, so a large batch neither holds a long transaction nor one huge message.
    """
    sent = 0
    after_id = 0
    while limit is None or sent < limit:
        chunk = DISPATCH_CHUNK_ROWS if limit is None else min(DISPATCH_CHUNK_ROWS, limit - sent)
        now = utcnow()
        with session_scope(database_url) as session:
            rows = batch_control.ready_row_ids(
                session,
                batch_id=batch_id,
                now=now,
                after_id=after_id,
                limit=chunk,
                enqueued_before=enqueued_before,
            )
            if not rows:
                break
            batch_control.mark_enqueued(session, row_ids=[row_id for row_id, _ in rows], now=now)
        queue.submit(rows)
        sent += len(rows)
        after_id = rows[-1][0]
    return sent
