"""The producer side of Celery: the app's configuration and how work is put on the queue.

Kept apart from ``worker`` (which defines the tasks and reads settings at import) so the
API, the CLI and tests can enqueue for any settings by task name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import redis
from celery import Celery
from kombu import Exchange, Queue

from distributor.config import Settings
from distributor.constants import CELERY_QUEUE
from distributor.pipeline.tracking import poll_period_seconds

ROW_TASK = "distributor.load_and_transfer"
DISPATCH_TASK = "distributor.dispatch_batch"
SWEEP_TASK = "distributor.sweep"
POLL_TASK = "distributor.poll_transfers"
REFRESH_TASK = "distributor.refresh_transfer"
TASK_TIME_LIMIT_SECONDS = 600
VISIBILITY_TIMEOUT_SECONDS = 3600
"""Redis redelivers a message unacked this long; countdowns stay far below it."""
ROW_QUEUE = Queue(CELERY_QUEUE, Exchange(CELERY_QUEUE, type="direct"), routing_key=CELERY_QUEUE)


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for ``settings`` (the worker's, or a producer's)."""
    celery = Celery("distributor", broker=settings.redis_url)
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=CELERY_QUEUE,
        task_time_limit=TASK_TIME_LIMIT_SECONDS,
        worker_prefetch_multiplier=1,
        worker_pool="threads",
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        beat_schedule={
            "sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_seconds},
            "poll-transfers": {
                "task": POLL_TASK,
                "schedule": poll_period_seconds(settings.transfer_poll_interval_seconds),
            },
        },
    )
    return celery


class CeleryRowQueue:
    """Rows as ``distributor.load_and_transfer`` messages on the broker of ``celery``."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def submit(self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0) -> None:
        """One message per row, carrying only the row and batch ids."""
        with self._celery.producer_or_acquire() as producer:
            # Declared on every submit, not once per process: on Redis a queue's binding is
            # a key, and a flushed or restarted Redis drops it, after which kombu routes
            # messages nowhere while its own cache still says "declared".
            ROW_QUEUE.bind(producer.channel).declare()
            for row_id, batch_id in rows:
                self._celery.send_task(
                    ROW_TASK,
                    kwargs={"row_id": row_id, "batch_id": batch_id},
                    countdown=countdown or None,
                    producer=producer,
                )


def batch_dispatcher(celery: Celery) -> Callable[[int], None]:
    """``dispatch(batch_id)``: ask a worker to enqueue the batch's ready rows."""

    def dispatch(batch_id: int) -> None:
        celery.send_task(DISPATCH_TASK, kwargs={"batch_id": batch_id})

    return dispatch


def queue_is_empty(redis_url: str) -> bool:
    """True when no row message waits in the queue (e.g. after Redis lost its data)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return cast(int, client.llen(CELERY_QUEUE)) == 0
    finally:
        client.close()
