"""The producer side of Celery: the app's configuration and how work is put on the queues.

Kept apart from ``worker`` (which defines the tasks and reads settings at import) so the
API, the CLI and tests can enqueue for any settings by task name.

Two queues: rows on ``CELERY_QUEUE``, control work (sweeps, transfer polls, webhook
refreshes, batch dispatch) on ``CONTROL_QUEUE``. Workers consume both, and kombu's Redis
transport takes from its queues in turn, so a control message waits for the next free
worker slot, never behind a batch's backlog of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis
from celery import Celery
from kombu import Exchange, Queue
from kombu.transport import redis as kombu_redis

from distributor.config import Settings
from distributor.constants import (
    CELERY_QUEUE,
    CONTROL_QUEUE,
    QUEUE_LOSS_SEEN_KEY,
    QUEUE_SENTINEL_KEY,
)
from distributor.notifications import RELAY_SECONDS
from distributor.pipeline.clock import utcnow
from distributor.pipeline.scheduling import START_CHECK_SECONDS
from distributor.pipeline.tracking import poll_period_seconds

ROW_TASK = "distributor.load_and_transfer"
DISPATCH_TASK = "distributor.dispatch_batch"
SWEEP_TASK = "distributor.sweep"
POLL_TASK = "distributor.poll_transfers"
REFRESH_TASK = "distributor.refresh_transfer"
SYNC_IDS_TASK = "distributor.sync_transfer_ids"
START_SCHEDULED_TASK = "distributor.start_scheduled"
RELAY_NOTIFICATIONS_TASK = "distributor.relay_notifications"
NOTIFY_TASK = "distributor.send_notification"
CONTROL_TASKS = (
    DISPATCH_TASK,
    SWEEP_TASK,
    POLL_TASK,
    REFRESH_TASK,
    SYNC_IDS_TASK,
    START_SCHEDULED_TASK,
    RELAY_NOTIFICATIONS_TASK,
    NOTIFY_TASK,
)
"""Tasks routed to ``CONTROL_QUEUE``; every other task goes to the row queue."""
ROWS_PER_MESSAGE_MAX = 8
ROW_MESSAGES_PER_SECOND = 25.0
"""Row messages a second above which rows share messages (see ``rows_per_message``)."""
TASK_TIME_LIMIT_SECONDS = 600
VISIBILITY_TIMEOUT_SECONDS = 3600
"""Redis redelivers a message unacked this long; countdowns stay far below it."""
REBUILD_CLAIM_MILLISECONDS = 60_000
"""How long one sweeper holds the rebuild of a lost queue; a sweeper that dies meanwhile
leaves it to the next one once this has passed."""


class _DeclaredOnEveryPublish(Queue):
    """A queue kombu declares before every message, not once per connection.

    On Redis a queue's binding to its exchange is a key; a flushed or restarted Redis
    drops it, after which kombu routes messages nowhere (an ``UndeliverableWarning``)
    while its per-connection cache still says "declared". Beat's sweeps, task retries and
    the API's messages would all vanish; declaring costs one SADD per message.
    """

    @property
    def can_cache_declaration(self) -> bool:
        """Never: see the class docstring."""
        return False


class _ReusedClientChannel(kombu_redis.Channel):
    """kombu's Redis channel, reusing one client for its synchronous commands.

    kombu builds a new ``redis.Redis`` for every publish, ack and queue declaration, and
    each one copies redis-py's table of some 170 reply callbacks: measured at about 5% of a
    worker's CPU when rows go at full speed. A client is safe to share between threads
    (each command takes a connection from the pool), so one per pool serves them all; a
    channel that replaced its pool (after a reconnect) gets a client of the new one.
    """

    _sync_client: redis.Redis | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()  # type: ignore[misc]
        return client


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with ``_ReusedClientChannel`` (``broker_transport``)."""

    Channel = _ReusedClientChannel


def _queue(name: str) -> Queue:
    return _DeclaredOnEveryPublish(name, Exchange(name, type="direct"), routing_key=name)


ROW_QUEUE = _queue(CELERY_QUEUE)
CONTROL = _queue(CONTROL_QUEUE)


def _every(task: str, seconds: float) -> dict[str, object]:
    # A periodic message older than its period is dropped: the next one does the same
    # work, and a Postgres outage must not leave a pile of them behind.
    return {"task": task, "schedule": seconds, "options": {"expires": seconds * 2}}


def rows_per_message(rate_per_second: float) -> int:
    """How many rows one message of a batch's backlog carries at this Centrapay rate.

    A message costs a worker about as much CPU as a row's own steps (publish, fetch, the
    unacked bookkeeping, ack): at full speed, one per row was a third of the worker's CPU.
    But a row waits behind the rows before it in its message, and at a slow rate a message
    of several rows would keep its last one waiting so long that the sweeper takes it for
    lost. So rows share a message only as far as it keeps messages under
    ROW_MESSAGES_PER_SECOND: one row a message at 200 calls a minute, ROWS_PER_MESSAGE_MAX
    from 200 a second.
    """
    return max(1, min(ROWS_PER_MESSAGE_MAX, int(rate_per_second / ROW_MESSAGES_PER_SECOND)))


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for ``settings`` (the worker's, or a producer's).

    Besides Celery's own settings, its configuration holds ``distributor_rows_per_message``
    for ``CeleryRowQueue`` (from CENTRAPAY_RATE_PER_SECOND, see ``rows_per_message``).
    """
    celery = Celery("distributor", broker=settings.redis_url)
    sweep_seconds = settings.sweep_interval_seconds
    poll_seconds = poll_period_seconds(settings.transfer_poll_interval_seconds)
    sync_seconds = settings.transfer_id_sync_interval_seconds
    schedule = {
        "sweep": _every(SWEEP_TASK, sweep_seconds),
        "poll-transfers": _every(POLL_TASK, poll_seconds),
        "sync-transfer-ids": _every(SYNC_IDS_TASK, sync_seconds),
        "start-scheduled": _every(START_SCHEDULED_TASK, START_CHECK_SECONDS),
    }
    if settings.batch_notify_url is not None:
        schedule["relay-notifications"] = _every(RELAY_NOTIFICATIONS_TASK, RELAY_SECONDS)
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=(ROW_QUEUE, CONTROL),
        task_default_queue=CELERY_QUEUE,
        task_routes={name: {"queue": CONTROL_QUEUE} for name in CONTROL_TASKS},
        task_time_limit=TASK_TIME_LIMIT_SECONDS,
        worker_prefetch_multiplier=1,
        worker_pool="threads",
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport=f"{__name__}:{RedisTransport.__name__}",
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        beat_schedule=schedule,
        distributor_rows_per_message=rows_per_message(settings.centrapay_rate_per_second),
    )
    return celery


_NOTE_LOSS = """
if redis.call('exists', KEYS[1]) == 0 then redis.call('set', KEYS[2], ARGV[1], 'NX') end
"""
"""Record ARGV[1] as the moment the queue's loss was seen, unless the sentinel is there
(no loss, or a rebuild under way) or an earlier moment is recorded already."""
_REBUILT = """
if redis.call('set', KEYS[1], 'intact', 'XX') then redis.call('del', KEYS[2]) end
"""
"""Mark the queue intact and forget when its loss was seen, over our own rebuild claim
only: if Redis lost its data again since, both keys must stay as the new Redis has them."""


class CeleryRowQueue:
    """Rows as ``distributor.load_and_transfer`` messages on the broker of ``celery``."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery
        self._rows_per_message = int(celery.conf.get("distributor_rows_per_message", 1))
        # Connects on first use, for the note below only (kombu keeps its own pool).
        self._redis = redis.Redis.from_url(str(celery.conf.broker_url))

    def note_if_lost(self) -> None:
        """Before rows are marked enqueued: if Redis lost the queue and no sweep has rebuilt
        it yet, record now as the moment the loss was seen (see ``RedisQueueWatch``)."""
        self._redis.eval(
            _NOTE_LOSS, 2, QUEUE_SENTINEL_KEY, QUEUE_LOSS_SEEN_KEY, str(utcnow().timestamp())
        )

    def submit(
        self, rows: Sequence[tuple[int, int]], *, countdown: float = 0.0, urgent: bool = False
    ) -> None:
        """Messages carrying the ids of rows of one batch: a backlog's rows several to a
        message (``rows_per_message``), a row coming back one to a message.

        ``urgent`` rows (taken back from a worker that died mid-call, or coming back after
        a backoff) go on the control queue, ahead of the backlog of rows not started: the
        sooner a lost answer is looked up, the surer the lookup (a card its recipient has
        claimed is no longer in our account). They, and rows with a ``countdown``, each
        have their own time to run, so each goes alone.
        """
        queue = CONTROL if urgent else ROW_QUEUE
        size = 1 if urgent or countdown else self._rows_per_message
        by_batch: dict[int, list[int]] = {}
        for row_id, batch_id in rows:
            by_batch.setdefault(batch_id, []).append(row_id)
        with self._celery.producer_or_acquire() as producer:
            # Declared once per submit (see _DeclaredOnEveryPublish), then not per message:
            # a chunk of 500 rows need not cost 500 more round trips.
            queue.bind(producer.channel).declare()
            for batch_id, row_ids in by_batch.items():
                for start in range(0, len(row_ids), size):
                    self._celery.send_task(
                        ROW_TASK,
                        kwargs={"batch_id": batch_id, "row_ids": row_ids[start : start + size]},
                        countdown=countdown or None,
                        producer=producer,
                        queue=queue.name,
                        declare=[],
                    )


def notification_sender(celery: Celery) -> Callable[[int], None]:
    """``send(notification_id)``: ask a worker to POST one completion notification."""

    def send(notification_id: int) -> None:
        celery.send_task(NOTIFY_TASK, kwargs={"notification_id": notification_id})

    return send


def batch_dispatcher(celery: Celery) -> Callable[[int], None]:
    """``dispatch(batch_id)``: ask a worker to enqueue the batch's ready rows."""

    def dispatch(batch_id: int) -> None:
        celery.send_task(DISPATCH_TASK, kwargs={"batch_id": batch_id})

    return dispatch


def request_refresh(celery: Celery, *, row_id: int, batch_id: int, countdown: float) -> None:
    """Ask a worker to look the row's transfer up at Centrapay in ``countdown`` seconds."""
    celery.send_task(
        REFRESH_TASK, kwargs={"row_id": row_id, "batch_id": batch_id}, countdown=countdown
    )


class RedisQueueWatch:
    """What the sweeper needs to know about the row queue on Redis.

    Redis keeps nothing on disk here, so a restart, a flush or a failover to an empty
    replica loses every queued message at once. A sentinel key, set after each rebuild,
    tells: while it is there, the queue still holds what was put on it.

    A dispatch that finds the sentinel gone records when (``CeleryRowQueue.note_if_lost``)
    before it marks its rows enqueued, and its messages go to the Redis as it is now. The
    rebuild then sends again only rows marked before that moment: on a new or flushed
    Redis, a batch dispatched before the first sweep is not sent a second time.
    """

    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)

    def is_empty(self) -> bool:
        """True when no row message waits in the queue."""
        return cast(int, self._redis.llen(CELERY_QUEUE)) == 0

    def claim_rebuild(self) -> bool:
        """True, for one caller only, when the queue lost its data and is to be rebuilt."""
        claimed = self._redis.set(
            QUEUE_SENTINEL_KEY, "rebuilding", nx=True, px=REBUILD_CLAIM_MILLISECONDS
        )
        return bool(claimed)

    def loss_seen_at(self) -> datetime | None:
        """When a dispatch first found the queue lost, if one did since the loss."""
        seen = cast(bytes | None, self._redis.get(QUEUE_LOSS_SEEN_KEY))
        return None if seen is None else datetime.fromtimestamp(float(seen), tz=UTC)

    def rebuilt(self) -> None:
        """The rows the lost messages carried are marked to be sent again."""
        # Only over our own claim: if Redis lost its data again since, the key is gone
        # and must stay gone, so that the next sweep rebuilds once more.
        self._redis.eval(_REBUILT, 2, QUEUE_SENTINEL_KEY, QUEUE_LOSS_SEEN_KEY)

    def close(self) -> None:
        """Release the Redis connection."""
        self._redis.close()
