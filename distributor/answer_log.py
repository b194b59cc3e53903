"""Centrapay's answers per batch and second: the record the dashboard's chart of a run reads.

Every call the client makes while ``on_behalf_of(batch_id)`` is in force is counted by the
class of its answer (``answer_class``) in the whole second it came back. The row task, the
look at a sent row's transfer (poll or webhook) and a reclaim set it; the shared
transfer-id sync serves no one batch and is not counted.

Counting a call costs a dict update under a lock, never a Redis call: the counts wait in
the process, and a thread writes them every FLUSH_INTERVAL_SECONDS (and once more at
``close``) in one pipelined round trip. In Redis each batch has one hash,
``ANSWERS_KEY_PREFIX + <batch id>``, with fields ``<epoch second>:<class>`` raised by
HINCRBY; every write sets the key to expire RETENTION_SECONDS later.

Warning: the record is informational, and may fall short (never over). A flush Redis does
not take is dropped, logged once per outage, and not sent again (a pipeline sent again
after its reply was lost could count twice); a process killed with SIGKILL loses its last
second; standalone mode (``distributor run``, no Redis) records nothing. Without a record
the chart draws each row's last answer instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from distributor.constants import ANSWERS_KEY_PREFIX

logger = logging.getLogger(__name__)

ANSWER_2XX = "2xx"
ANSWER_429 = "429"
ANSWER_5XX = "5xx"
ANSWER_TIMEOUT = "timeout"
"""No answer: the call timed out or its connection failed."""
ANSWER_OTHER = "other"
"""Any other answer: a refusal (400, 401, 403, 404...)."""
ANSWER_CLASSES = (ANSWER_2XX, ANSWER_429, ANSWER_5XX, ANSWER_TIMEOUT, ANSWER_OTHER)

FLUSH_INTERVAL_SECONDS = 1.0
RETENTION_SECONDS = 30 * 24 * 3600
"""A batch's record is kept this long after its last write."""
WRITE_TIMEOUT_SECONDS = 2.0
"""A flush gives up after this long on a Redis that does not answer (counting goes on)."""
READ_TIMEOUT_SECONDS = 0.5
"""A dashboard page does not hang on an unreachable Redis: it draws the rows instead."""

_serving: ContextVar[int | None] = ContextVar("distributor_answer_log_batch", default=None)


@contextmanager
def on_behalf_of(batch_id: int) -> Iterator[None]:
    """Count the Centrapay calls made in the block (in this thread) for batch ``batch_id``."""
    token = _serving.set(batch_id)
    try:
        yield
    finally:
        _serving.reset(token)


def answer_class(status: int | None) -> str:
    """The class of an answer with HTTP ``status`` (None: no answer came)."""
    if status is None:
        return ANSWER_TIMEOUT
    if 200 <= status < 300:
        return ANSWER_2XX
    if status == 429:
        return ANSWER_429
    if status >= 500:
        return ANSWER_5XX
    return ANSWER_OTHER


def answers_key(batch_id: int) -> str:
    """The Redis key of a batch's record."""
    return f"{ANSWERS_KEY_PREFIX}{batch_id}"


class AnswerLog:
    """One process's counts waiting to be written, and the thread that writes them.

    Thread-safe: every thread of the process counts into the one log.
    """

    def __init__(
        self, client: redis.Redis, *, flush_interval_seconds: float = FLUSH_INTERVAL_SECONDS
    ) -> None:
        self._redis = client
        self._interval = flush_interval_seconds
        self._pending: dict[tuple[int, int, str], int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._failing = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def to_redis(cls, redis_url: str) -> AnswerLog:
        """A log writing to ``redis_url``: each flush bounded by WRITE_TIMEOUT_SECONDS and
        sent once (no retry, which could count a flush twice)."""
        client = redis.Redis.from_url(
            redis_url,
            socket_timeout=WRITE_TIMEOUT_SECONDS,
            socket_connect_timeout=WRITE_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client)

    def count(self, status: int | None) -> None:
        """Count one answer (``status`` None: none came) for the batch served, if any."""
        batch_id = _serving.get()
        if batch_id is None:
            return
        key = (batch_id, int(time.time()), answer_class(status))
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + 1
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(
                    target=self._flush_every_interval, name="answer-log", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        """Write the counts waiting, in one round trip; if Redis does not take them, drop them."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return
            with self._redis.pipeline(transaction=False) as pipe:
                keys = set()
                for (batch_id, second, name), calls in pending.items():
                    key = answers_key(batch_id)
                    pipe.hincrby(key, f"{second}:{name}", calls)
                    keys.add(key)
                for key in keys:
                    pipe.expire(key, RETENTION_SECONDS)
                try:
                    pipe.execute()
                except redis.RedisError as error:
                    if not self._failing:
                        logger.warning(
                            "answer log: Redis did not take the counts of %d calls, dropped "
                            "(and later ones, until it answers again): %s",
                            sum(pending.values()),
                            error,
                        )
                    self._failing = True
                    return
            if self._failing:
                logger.info("answer log: Redis answers again; counting resumes")
                self._failing = False

    def close(self) -> None:
        """Stop the thread, write what is left, release the connection."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        self._redis.close()

    def _flush_every_interval(self) -> None:
        while not self._stopped.wait(self._interval):
            self.flush()


@lru_cache(maxsize=4)
def _reader(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(
        redis_url,
        socket_timeout=READ_TIMEOUT_SECONDS,
        socket_connect_timeout=READ_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def recorded_answers(redis_url: str, batch_id: int) -> dict[tuple[int, str], int] | None:
    """The batch's answers by (epoch second, class), in one read; None when it has no
    record or Redis cannot be read."""
    try:
        fields = cast(dict[bytes, bytes], _reader(redis_url).hgetall(answers_key(batch_id)))
    except redis.RedisError as error:
        logger.warning("answer log: cannot read the record of batch %s: %s", batch_id, error)
        return None
    record: dict[tuple[int, str], int] = {}
    for field, calls in fields.items():
        second, _, name = field.decode().partition(":")
        record[(int(second), name)] = int(calls)
    return record or None
