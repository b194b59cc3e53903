"""The Celery worker (``celery -A distributor.worker``): thin tasks over the pipeline.

Tasks carry ids only (Flower shows arguments to anyone who opens it); the state lives in
Postgres, so results are ignored and a lost or repeated message is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import prometheus_client
import psycopg
import redis
from celery import Task, signals
from sqlalchemy import exc as sa_exc

from distributor import notifications
from distributor.answer_log import AnswerLog, on_behalf_of
from distributor.broker import (
    DISPATCH_TASK,
    NOTIFY_TASK,
    POLL_TASK,
    REFRESH_TASK,
    RELAY_NOTIFICATIONS_TASK,
    ROW_TASK,
    START_SCHEDULED_TASK,
    SWEEP_TASK,
    SYNC_IDS_TASK,
    CeleryRowQueue,
    RedisQueueWatch,
    batch_dispatcher,
    make_celery,
    notification_sender,
)
from distributor.config import get_settings
from distributor.constants import CONTROL_QUEUE
from distributor.db import session_scope
from distributor.errors import DatabaseUnavailable, DistributorError
from distributor.pipeline import scheduling, tracking
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext, build_context
from distributor.pipeline.queueing import dispatch
from distributor.pipeline.steps import advance_row, rows_taken
from distributor.pipeline.sweeper import sweep
from distributor.pipeline.transfer_ids import sync_transfer_ids
from distributor.pipeline.transitions import Claim
from distributor.ratelimit import bucket_name_for
from distributor.ratelimit.redis import RedisTokenBucket

logger = logging.getLogger(__name__)

MESSAGE_SECONDS_MAX = 1.0
"""A message of several rows starts no row after this long (see ``load_and_transfer``)."""
MAX_COUNTDOWN_SECONDS = 60.0
"""Longer waits are left to the sweeper: a long ETA on Redis outlives visibility_timeout."""
DATABASE_RETRY_BACKOFF_SECONDS = 1
"""First wait before a task that could not reach the database runs again; it doubles."""
DATABASE_RETRY_BACKOFF_MAX_SECONDS = 30
"""Longest such wait (with full jitter): far below visibility_timeout, like every ETA."""
DATABASE_RETRIES_MAX = 20
"""About ten minutes of outage; past them the row is the sweeper's (its lease runs out)."""
PERIODIC_DATABASE_RETRIES_MAX = 2
"""Sweeps and polls come again with the next beat; a few retries cover a short blip."""

settings = get_settings()
app = make_celery(settings)
row_queue = CeleryRowQueue(app)
dispatch_later = batch_dispatcher(app)
send_notification_later = notification_sender(app)
queue_watch = RedisQueueWatch(settings.redis_url)

P = ParamSpec("P")
R = TypeVar("R")

_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
"""SQLAlchemy's wrappers of a lost connection, a server shutting down, a full pool."""


@contextmanager
def _database_errors() -> Iterator[None]:
    """Turn "the database cannot be reached" into DatabaseUnavailable, whatever raised it.

    Postgres restarting or unreachable surfaces as psycopg's OperationalError wrapped by
    SQLAlchemy (or raw, from code that connects itself); a statement on a connection that
    died under it is a DBAPIError marked ``connection_invalidated``.
    """
    try:
        yield
    except DatabaseUnavailable:
        raise
    except (*_UNREACHABLE, psycopg.OperationalError) as exc:
        raise DatabaseUnavailable(f"database unreachable: {type(exc).__name__}") from exc
    except sa_exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise DatabaseUnavailable("database connection lost") from exc


def _database_guarded(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` with database outages raised as DatabaseUnavailable (see above)."""

    @wraps(function)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        with _database_errors():
            return function(*args, **kwargs)

    return guarded


_RETRY_ON_DATABASE: dict[str, Any] = {
    "autoretry_for": (DatabaseUnavailable,),
    "retry_backoff": DATABASE_RETRY_BACKOFF_SECONDS,
    "retry_backoff_max": DATABASE_RETRY_BACKOFF_MAX_SECONDS,
    "retry_jitter": True,
    "max_retries": DATABASE_RETRIES_MAX,
}
"""A task that cannot reach the database runs again later, instead of being acked and
forgotten (its row would wait for the sweeper's queue-empty check)."""
_PERIODIC_RETRY_ON_DATABASE = _RETRY_ON_DATABASE | {"max_retries": PERIODIC_DATABASE_RETRIES_MAX}
_ROW_RETRY_ON_DATABASE = _RETRY_ON_DATABASE | {"retry_kwargs": {"queue": CONTROL_QUEUE}}
"""A row task cut off by an outage comes back ahead of the backlog of rows not started
(on the row queue, behind thousands, it would wait minutes): its call may have gone out,
and a lookup tells a delivered card for sure only before the recipient claims it."""

_context_lock = threading.Lock()
_context: PipelineContext | None = None
_notifier: notifications.Notifier | None = None


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
            _context = build_context(
                settings,
                bucket=bucket,
                base_url=settings.centrapay_base_url,
                answers=AnswerLog.to_redis(settings.redis_url),
            )
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


def notifier() -> notifications.Notifier:
    """This process's notification sender (one HTTP client), built on first use."""
    global _notifier
    with _context_lock:
        if _notifier is None:
            _notifier = notifications.Notifier(settings)
        return _notifier


@signals.worker_shutdown.connect
def _close_context(**_kwargs: Any) -> None:
    global _context, _notifier
    with _context_lock:
        if _context is not None:
            _context.close()
            _context = None
        if _notifier is not None:
            _notifier.close()
            _notifier = None


@app.task(name=ROW_TASK, **_ROW_RETRY_ON_DATABASE)
@_database_guarded
def load_and_transfer(*, batch_id: int, row_ids: list[int]) -> None:
    """Advance each row of batch ``batch_id`` in turn: load its card, then transfer it.

    A message of several rows holds its thread about as long as one of one row: after
    MESSAGE_SECONDS_MAX, or once a row comes back for another attempt (Centrapay is slow or
    failing), the rows not started go back to the queue in a message of their own. A row
    coming back after a backoff then waits for a free thread no longer than it would behind
    one-row messages, and its lookup is made while it can still tell.

    The load steps of a message's rows are taken in one transaction (``rows_taken``), each
    row's claim then used when its turn comes; those whose turn does not come are handed
    back before the rest of the message goes back to the queue.

    A database outage retries the whole message (rows already settled are skipped by their
    claim, rows waiting out a backoff by theirs); any other error sends the rows not yet
    advanced in a message of their own before it is raised, so they do not wait for the
    sweeper.
    """
    context = pipeline_context()
    started = time.monotonic()
    left: list[int] = []
    try:
        with _database_errors(), _taken_together(context, row_ids) as taken:
            for index, row_id in enumerate(row_ids):
                if index and (
                    time.monotonic() - started > MESSAGE_SECONDS_MAX or context.stopping.is_set()
                ):
                    left = row_ids[index:]
                    return
                try:
                    with _database_errors(), on_behalf_of(batch_id):
                        delay = advance_row(context, row_id, loading=taken.pop(row_id, None))
                except DatabaseUnavailable:
                    raise
                except Exception:
                    left = row_ids[index + 1 :]
                    raise
                if delay is not None and delay <= MAX_COUNTDOWN_SECONDS:
                    # A row under way comes back ahead of the backlog of rows not started:
                    # its answer may have been lost, and the sooner it is looked up, the surer.
                    row_queue.submit([(row_id, batch_id)], countdown=delay, urgent=True)
                if delay is not None:
                    left = row_ids[index + 1 :]
                    return
    finally:
        # Once the rows taken but not started are handed back (as the block above ends).
        if left:
            row_queue.submit([(rest, batch_id) for rest in left])


def _taken_together(
    context: PipelineContext, row_ids: list[int]
) -> AbstractContextManager[dict[int, Claim]]:
    """The load step of a message's rows, taken in one transaction (``rows_taken``); a
    message of one row takes it as it runs."""
    return rows_taken(context, row_ids) if len(row_ids) > 1 else nullcontext({})


@app.task(name=DISPATCH_TASK, **_RETRY_ON_DATABASE)
@_database_guarded
def dispatch_batch(*, batch_id: int) -> int:
    """Enqueue every ready row of a batch, in chunks."""
    return dispatch(database_url=settings.database_url, queue=row_queue, batch_id=batch_id)


@app.task(name=SWEEP_TASK, **_PERIODIC_RETRY_ON_DATABASE)
@_database_guarded
def sweep_rows() -> None:
    """Rebuild a lost queue, requeue rows whose lease ran out or whose message was lost,
    finish settled batches."""
    sweep(database_url=settings.database_url, queue=row_queue, watch=queue_watch)


@app.task(name=POLL_TASK, **_PERIODIC_RETRY_ON_DATABASE)
@_database_guarded
def poll_transfers() -> int:
    """Look up the transfers of sent rows not checked for TRANSFER_POLL_INTERVAL_SECONDS."""
    interval = settings.transfer_poll_interval_seconds
    limit = tracking.poll_limit(
        rate_per_second=settings.centrapay_rate_per_second, interval_seconds=interval
    )
    return tracking.poll_due(pipeline_context(), interval_seconds=interval, limit=limit)


@app.task(name=SYNC_IDS_TASK, **_PERIODIC_RETRY_ON_DATABASE)
@_database_guarded
def sync_ids() -> int:
    """Find the transfer ids whose answers were lost (no call while no row waits for one)."""
    context = pipeline_context()
    return sync_transfer_ids(database_url=context.database_url, client=context.client).resolved


@app.task(name=REFRESH_TASK, **_RETRY_ON_DATABASE)
@_database_guarded
def refresh_transfer(*, row_id: int, batch_id: int) -> None:
    """Look up the transfer of one sent row of batch ``batch_id`` (a webhook said it moved)."""
    try:
        tracking.refresh_transfer(pipeline_context(), row_id)
    except DatabaseUnavailable:
        raise
    except DistributorError as error:
        logger.info("row %s: transfer lookup left to the poller: %s", row_id, error)


@app.task(name=START_SCHEDULED_TASK, **_PERIODIC_RETRY_ON_DATABASE)
@_database_guarded
def start_scheduled() -> int:
    """Start the scheduled batches whose start time has come, and queue their rows."""
    with session_scope(settings.database_url) as session:
        started = scheduling.start_due(session, now=utcnow())
    for batch_id in started:
        logger.info("batch %s: its start time has come; started", batch_id)
        # If this message is lost, the sweeper queues the rows of the running batch.
        dispatch_later(batch_id)
    return len(started)


@app.task(name=RELAY_NOTIFICATIONS_TASK, **_PERIODIC_RETRY_ON_DATABASE)
@_database_guarded
def relay_notifications() -> int:
    """Queue a send task for each completion notification that needs one."""
    if settings.batch_notify_url is None:
        return 0
    return notifications.relay(database_url=settings.database_url, send=send_notification_later)


@app.task(name=NOTIFY_TASK, bind=True, **_RETRY_ON_DATABASE)
@_database_guarded
def send_notification(self: Task[Any, Any], *, notification_id: int) -> str:
    """POST one completion notification; on failure, again after a backoff (bounded)."""
    attempt = notifier().attempt(notification_id)
    if attempt.result is notifications.Result.RETRY:
        # countdown <= BACKOFF_MAX_SECONDS: far below the broker's visibility_timeout.
        raise self.retry(countdown=attempt.retry_in, max_retries=notifications.MAX_ATTEMPTS)
    return str(attempt.result)
