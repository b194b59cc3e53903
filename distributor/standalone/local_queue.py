"""An in-process row queue: a thread pool plus a timer heap for countdowns.

It runs the same ``advance_row`` as the Celery task. Waiting rows sit in the heap, not in
a thread, so a long 429 or backoff never holds a worker.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

logger = logging.getLogger(__name__)

RowRunner = Callable[[int], float | None]
"""Advances one row; returns seconds until it should run again, or None."""


class LocalRowQueue:
    """Runs submitted rows on ``threads`` threads, each after its countdown."""

    def __init__(self, run_row: RowRunner, *, threads: int) -> None:
        self._run_row = run_row
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="row")
        self._due: list[tuple[float, int, int, int]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._running = 0
        self._closed = False
        self._timer = threading.Thread(target=self._release_due, name="row-timer", daemon=True)
        self._timer.start()

    def submit(
        self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0, urgent: bool = False
    ) -> None:
        """Run each (row id, batch id) after ``countdown`` seconds.

        ``urgent`` changes nothing here: rows go to the threads as they fall due, and no
        backlog of another process stands in front of them.
        """
        due = time.monotonic() + countdown
        with self._ready:
            for row_id, batch_id in rows:
                heapq.heappush(self._due, (due, next(self._order), row_id, batch_id))
            self._ready.notify()

    def idle(self) -> bool:
        """True when nothing is waiting or running."""
        with self._ready:
            return not self._due and self._running == 0

    def is_empty(self) -> bool:
        """True when nothing is waiting or running (the sweeper's question)."""
        return self.idle()

    def note_if_lost(self) -> None:
        """Nothing to do: this queue is never lost while its process runs."""

    def claim_rebuild(self) -> bool:
        """Never: this queue lives and dies with the process that sweeps it."""
        return False

    def loss_seen_at(self) -> datetime | None:
        """Never (see ``claim_rebuild``)."""
        return None

    def rebuilt(self) -> None:
        """Nothing to do (see ``claim_rebuild``)."""

    def close(self) -> None:
        """Stop releasing rows, and wait for the running ones to finish their step."""
        with self._ready:
            self._closed = True
            self._due.clear()
            self._ready.notify()
        self._timer.join()
        self._pool.shutdown(wait=True)

    def _release_due(self) -> None:
        with self._ready:
            while not self._closed:
                if not self._due:
                    self._ready.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._ready.wait(timeout=wait)
                    continue
                _, _, row_id, batch_id = heapq.heappop(self._due)
                self._running += 1
                self._pool.submit(self._run, row_id, batch_id)

    def _run(self, row_id: int, batch_id: int) -> None:
        try:
            delay = self._run_row(row_id)
        except Exception:
            # The row keeps its lease; the sweeper takes it again when the lease runs out.
            logger.exception("row %s of batch %s failed unexpectedly", row_id, batch_id)
            delay = None
        with self._ready:
            self._running -= 1
        if delay is not None:
            self.submit([(row_id, batch_id)], countdown=delay)
