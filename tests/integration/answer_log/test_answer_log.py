"""The answer log on a real Redis: counts per batch, second and class, written in one round
trip about once a second and never on the caller's time; dropped when Redis is down."""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from distributor.answer_log import (
    FLUSH_INTERVAL_SECONDS,
    RETENTION_SECONDS,
    AnswerLog,
    answers_key,
    on_behalf_of,
)
from tests.integration.answer_log.answer_helpers import recorded_totals
from tests.integration.recovery.tcp_proxy import TcpProxy


class CountingRedis(redis.Redis):
    """A real Redis client that counts its round trips: commands sent alone, and pipelines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.round_trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        self.round_trips += 1
        return super().pipeline(transaction=transaction, shard_hint=shard_hint)


@pytest.fixture
def reader(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the test's Redis database, to read what the log wrote."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def counting(redis_url: str) -> Iterator[CountingRedis]:
    """A counting client on the test's Redis database."""
    client = CountingRedis.from_url(redis_url)
    yield client
    client.close()


def test_counts_wait_in_the_process_until_one_flush_writes_them_all(
    counting: CountingRedis, reader: redis.Redis
) -> None:
    log = AnswerLog(counting, flush_interval_seconds=3600)
    with on_behalf_of(7):
        for _ in range(1000):
            log.count(200)
        for _ in range(10):
            log.count(None)
    with on_behalf_of(8):
        log.count(503)
    assert counting.round_trips == 0
    assert not reader.exists(answers_key(7))
    log.flush()
    assert counting.round_trips == 1
    assert recorded_totals(reader, 7) == {"2xx": 1000, "timeout": 10}
    assert recorded_totals(reader, 8) == {"5xx": 1}
    log.close()
    assert counting.round_trips == 1, "nothing left to write: close sends nothing"


def test_a_steady_stream_of_calls_is_written_about_once_a_second(
    counting: CountingRedis, reader: redis.Redis
) -> None:
    log = AnswerLog(counting)
    calls = 0
    started = time.monotonic()
    with on_behalf_of(7):
        while time.monotonic() - started < 3.0:
            log.count(200)
            calls += 1
            time.sleep(0.001)
    log.close()
    elapsed = time.monotonic() - started
    assert calls >= 100
    assert counting.round_trips <= math.ceil(elapsed / FLUSH_INTERVAL_SECONDS) + 1
    assert recorded_totals(reader, 7) == {"2xx": calls}
    seconds = {int(field.split(b":")[0]) for field in reader.hkeys(answers_key(7))}
    assert max(seconds) - min(seconds) <= math.ceil(elapsed)
    assert len(seconds) >= 3, "the calls of each second are counted in that second"


def test_only_calls_made_on_behalf_of_a_batch_are_counted(
    counting: CountingRedis, reader: redis.Redis
) -> None:
    log = AnswerLog(counting, flush_interval_seconds=3600)
    log.count(200)
    with on_behalf_of(7):
        with on_behalf_of(8):
            log.count(429)
        log.count(404)
    log.count(200)
    log.close()
    assert recorded_totals(reader, 7) == {"other": 1}
    assert recorded_totals(reader, 8) == {"429": 1}


def test_each_write_keeps_the_batch_record_for_the_whole_retention(
    redis_url: str, reader: redis.Redis
) -> None:
    log = AnswerLog.to_redis(redis_url)
    with on_behalf_of(7):
        log.count(200)
        log.flush()
        assert RETENTION_SECONDS - 5 <= reader.ttl(answers_key(7)) <= RETENTION_SECONDS
        reader.expire(answers_key(7), 10)
        log.count(200)
    log.close()
    assert RETENTION_SECONDS - 5 <= reader.ttl(answers_key(7)) <= RETENTION_SECONDS
    assert recorded_totals(reader, 7) == {"2xx": 2}


def _through(proxy: TcpProxy, redis_url: str) -> str:
    return f"redis://127.0.0.1:{proxy.port}{urlsplit(redis_url).path}"


def test_a_flush_redis_does_not_take_is_dropped_and_warned_about_once_per_outage(
    redis_url: str, reader: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    target = urlsplit(redis_url)
    proxy = TcpProxy(target=(target.hostname or "127.0.0.1", target.port or 6379))
    log = AnswerLog.to_redis(_through(proxy, redis_url))
    caplog.set_level(logging.INFO, logger="distributor.answer_log")
    try:
        with on_behalf_of(7):
            log.count(200)
            log.flush()
            proxy.cut()
            for status in (429, 500, None):
                log.count(status)
                log.flush()
            proxy.restore()
            log.count(200)
            log.flush()
        log.close()
    finally:
        proxy.cut()
    assert recorded_totals(reader, 7) == {"2xx": 2}, "only the counts of the outage are lost"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "dropped" in warnings[0].getMessage()
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_counting_never_waits_for_a_flush_stuck_on_a_silent_redis() -> None:
    # A server that takes connections and never answers: a flush waits for its timeout.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        log = AnswerLog.to_redis(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        with on_behalf_of(7):
            log.count(200)
            flushing = threading.Thread(target=log.flush)
            flushing.start()
            time.sleep(0.3)
            assert flushing.is_alive(), "the flush should be waiting on the silent server"
            for _ in range(1000):
                log.count(200)
            assert flushing.is_alive(), "every count was taken while the flush still waits"
        flushing.join()
        log.close()
