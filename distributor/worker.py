"""The Celery app (``celery -A distributor.worker``) and its thin tasks.

Tasks carry ids only (Flower shows arguments to anyone who opens it); the state lives in
Postgres, so results are ignored and a lost or repeated message is harmless. Messages are
acknowledged late, rejected when a worker is lost, and prefetched one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery, signals

from distributor.config import Settings, get_settings
from distributor.constants import CELERY_QUEUE
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.queueing import dispatch
from distributor.pipeline.steps import advance_row
from distributor.pipeline.sweeper import sweep
from distributor.ratelimit import RedisTokenBucket, bucket_name_for

logger = logging.getLogger(__name__)

TASK_TIME_LIMIT_SECONDS = 600
MAX_COUNTDOWN_SECONDS = 60.0
"""Longer waits are left to the sweeper: a long ETA on Redis outlives visibility_timeout."""
VISIBILITY_TIMEOUT_SECONDS = 3600
ROW_TASK = "distributor.load_and_transfer"


def make_celery(settings: Settings) -> Celery:
    """The Celery app for ``settings``."""
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
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_schedule={
            "sweep": {"task": "distributor.sweep", "schedule": settings.sweep_interval_seconds},
        },
    )
    return celery


settings = get_settings()
app = make_celery(settings)

_context_lock = threading.Lock()
_context: PipelineContext | None = None


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def pipeline_context() -> PipelineContext:
    """This process's pipeline context, built on first use."""
    global _context
    with _context_lock:
        if _context is None:
            settings.require("centrapay_base_url", "centrapay_api_key")
            assert settings.centrapay_base_url and settings.centrapay_api_key
            bucket = RedisTokenBucket(
                _redis(),
                name=bucket_name_for(settings.centrapay_api_key.get_secret_value()),
                rate_per_second=settings.centrapay_rate_per_second,
                burst=settings.centrapay_burst,
            )
            _context = build_context(settings, bucket=bucket, base_url=settings.centrapay_base_url)
        return _context


@signals.worker_shutdown.connect
def _close_context(**_kwargs: Any) -> None:
    global _context
    with _context_lock:
        if _context is not None:
            _context.close()
            _context = None


class CeleryRowQueue:
    """Rows as ``distributor.load_and_transfer`` messages on the broker of ``celery``."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery

    def submit(self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0) -> None:
        """One message per row, carrying only the row and batch ids."""
        with self._celery.producer_or_acquire() as producer:
            for row_id, batch_id in rows:
                self._celery.send_task(
                    ROW_TASK,
                    kwargs={"row_id": row_id, "batch_id": batch_id},
                    countdown=countdown or None,
                    producer=producer,
                )


def queue_is_empty(redis_url: str) -> bool:
    """True when no row message waits in the queue (e.g. after Redis lost its data)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.llen(CELERY_QUEUE)) == 0
    finally:
        client.close()


@app.task(name=ROW_TASK)
def load_and_transfer(*, row_id: int, batch_id: int) -> None:
    """Advance one row of batch ``batch_id``: load its card, then transfer it."""
    delay = advance_row(pipeline_context(), row_id)
    if delay is not None and delay <= MAX_COUNTDOWN_SECONDS:
        CeleryRowQueue(app).submit([(row_id, batch_id)], countdown=delay)


@app.task(name="distributor.dispatch_batch")
def dispatch_batch(*, batch_id: int) -> int:
    """Enqueue every ready row of a batch, in chunks."""
    return dispatch(database_url=settings.database_url, queue=CeleryRowQueue(app), batch_id=batch_id)


@app.task(name="distributor.sweep")
def sweep_rows() -> None:
    """Requeue rows whose lease ran out or whose message was lost; finish settled batches."""
    sweep(
        database_url=settings.database_url,
        queue=CeleryRowQueue(app),
        queue_is_empty=queue_is_empty(settings.redis_url),
    )
