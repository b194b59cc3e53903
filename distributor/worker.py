"""The Celery worker (``celery -A distributor.worker``): thin tasks over the pipeline.

Tasks carry ids only (Flower shows arguments to anyone who opens it); the state lives in
Postgres, so results are ignored and a lost or repeated message is harmless.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import prometheus_client
import redis
from celery import signals

from distributor.broker import (
    DISPATCH_TASK,
    POLL_TASK,
    REFRESH_TASK,
    ROW_TASK,
    SWEEP_TASK,
    CeleryRowQueue,
    make_celery,
    queue_is_empty,
)
from distributor.config import get_settings
from distributor.errors import DistributorError
from distributor.pipeline import tracking
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.queueing import dispatch
from distributor.pipeline.steps import advance_row
from distributor.pipeline.sweeper import sweep
from distributor.ratelimit import bucket_name_for
from distributor.ratelimit.redis import RedisTokenBucket

logger = logging.getLogger(__name__)

MAX_COUNTDOWN_SECONDS = 60.0
"""Longer waits are left to the sweeper: a long ETA on Redis outlives visibility_timeout."""

settings = get_settings()
app = make_celery(settings)
row_queue = CeleryRowQueue(app)

_context_lock = threading.Lock()
_context: PipelineContext | None = None


def pipeline_context() -> PipelineContext:
    """This process's pipeline context, built on first use and shared by its threads."""
    global _context
    with _context_lock:
        if _context is None:
            settings.require("centrapay_base_url", "centrapay_api_key")
            assert settings.centrapay_base_url and settings.centrapay_api_key
            bucket = RedisTokenBucket(
                redis.Redis.from_url(settings.redis_url),
                name=bucket_name_for(settings.centrapay_api_key.get_secret_value()),
                rate_per_second=settings.centrapay_rate_per_second,
                burst=settings.centrapay_burst,
            )
            _context = build_context(settings, bucket=bucket, base_url=settings.centrapay_base_url)
        return _context


@signals.worker_ready.connect
def _serve_metrics(**_kwargs: Any) -> None:
    """The worker's own /metrics (Centrapay calls, 429s, bucket waits happen here)."""
    if settings.worker_metrics_port is not None:
        prometheus_client.start_http_server(
            settings.worker_metrics_port, addr=settings.worker_metrics_host
        )
        logger.info("metrics on %s:%d", settings.worker_metrics_host, settings.worker_metrics_port)


@signals.worker_shutting_down.connect
def _stop_taking_steps(**_kwargs: Any) -> None:
    with _context_lock:
        if _context is not None:
            _context.stopping.set()


@signals.worker_shutdown.connect
def _close_context(**_kwargs: Any) -> None:
    global _context
    with _context_lock:
        if _context is not None:
            _context.close()
            _context = None


@app.task(name=ROW_TASK)
def load_and_transfer(*, row_id: int, batch_id: int) -> None:
    """Advance one row of batch ``batch_id``: load its card, then transfer it."""
    delay = advance_row(pipeline_context(), row_id)
    if delay is not None and delay <= MAX_COUNTDOWN_SECONDS:
        row_queue.submit([(row_id, batch_id)], countdown=delay)


@app.task(name=DISPATCH_TASK)
def dispatch_batch(*, batch_id: int) -> int:
    """Enqueue every ready row of a batch, in chunks."""
    return dispatch(database_url=settings.database_url, queue=row_queue, batch_id=batch_id)


@app.task(name=SWEEP_TASK)
def sweep_rows() -> None:
    """Requeue rows whose lease ran out or whose message was lost; finish settled batches."""
    sweep(
        database_url=settings.database_url,
        queue=row_queue,
        queue_is_empty=queue_is_empty(settings.redis_url),
    )


@app.task(name=POLL_TASK)
def poll_transfers() -> int:
    """Look up the transfers of sent rows not checked for TRANSFER_POLL_INTERVAL_SECONDS."""
    interval = settings.transfer_poll_interval_seconds
    limit = tracking.poll_limit(
        rate_per_second=settings.centrapay_rate_per_second, interval_seconds=interval
    )
    return tracking.poll_due(pipeline_context(), interval_seconds=interval, limit=limit)


@app.task(name=REFRESH_TASK)
def refresh_transfer(*, row_id: int, batch_id: int) -> None:
    """Look up the transfer of one sent row of batch ``batch_id`` (a webhook said it moved)."""
    try:
        tracking.refresh_transfer(pipeline_context(), row_id)
    except DistributorError as error:
        logger.info("row %s: transfer lookup left to the poller: %s", row_id, error)
