"""Many threads and several processes reserving against one Redis bucket at full demand.

Each grant's slot (the moment its call would go out) is the reply's arrival plus its wait,
known only to within the round trip: [sent + wait, received + wait]. Window checks count
only grants certainly inside a window, so any over-grant they report is real.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from distributor.ratelimit.redis import RedisTokenBucket

pytestmark = pytest.mark.alone  # the achieved rate needs the cores to itself

RATE = 100.0  # tokens per second
BURST = 10
SECONDS = 2.5
MAX_WAIT = 0.1  # seconds: below the queue that 16 workers build, so some are refused
STEADY_AFTER = 0.5  # seconds: the burst is long spent by then

Slot = tuple[float, float]  # earliest and latest moment the granted call would go out


def _hammer(bucket: RedisTokenBucket, deadline: float) -> list[Slot]:
    """Reserve like a worker until the deadline: sleep a granted wait, back off when refused."""
    slots: list[Slot] = []
    while (sent := time.time()) < deadline:
        reservation = bucket.reserve(max_wait_seconds=MAX_WAIT)
        received = time.time()
        if reservation.granted:
            slots.append((sent + reservation.wait_seconds, received + reservation.wait_seconds))
            time.sleep(reservation.wait_seconds)
        else:
            time.sleep(max(reservation.wait_seconds - MAX_WAIT, 0.001))
    return slots


def _hammer_in_threads(bucket: RedisTokenBucket, threads: int, deadline: float) -> list[Slot]:
    results: list[list[Slot]] = []
    pool = [
        threading.Thread(target=lambda: results.append(_hammer(bucket, deadline)))
        for _ in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return [slot for slots in results for slot in slots]


def _process_main(
    connection: dict[str, Any],
    name: str,
    threads: int,
    ready: Any,
    out: Any,
) -> None:
    client = redis.Redis(**connection)
    bucket = RedisTokenBucket(client, name=name, rate_per_second=RATE, burst=BURST)
    ready.wait()
    out.put(_hammer_in_threads(bucket, threads, time.time() + SECONDS))
    client.close()


def assert_the_schedule_keeps_to_the_rate(slots: list[Slot], *, start: float) -> None:
    assert len(slots) > RATE * SECONDS / 2, "the workers did not keep the bucket busy"

    for window in (0.1, 1.0):
        allowed = RATE * window + BURST
        worst = max(sum(1 for lo, hi in slots if a <= lo and hi <= a + window) for a, _ in slots)
        assert worst <= allowed, f"{worst} grants in {window} s, at most {allowed} allowed"

    steady_from, steady_to = start + STEADY_AFTER, start + SECONDS
    steady = sum(1 for lo, hi in slots if steady_from <= (lo + hi) / 2 < steady_to)
    achieved = steady / (steady_to - steady_from)
    assert achieved == pytest.approx(RATE, rel=0.02)


@pytest.fixture
def bucket_name(redis_client: redis.Redis[Any]) -> Iterator[str]:
    name = f"concurrency-{uuid.uuid4().hex}"
    yield name
    redis_client.delete(RedisTokenBucket(redis_client, name=name, rate_per_second=1, burst=1).key)


@pytest.mark.timeout(30)
def test_sixteen_threads_sharing_a_bucket_get_the_configured_rate_and_never_more(
    redis_client: redis.Redis[Any], bucket_name: str
) -> None:
    bucket = RedisTokenBucket(redis_client, name=bucket_name, rate_per_second=RATE, burst=BURST)

    start = time.time()
    slots = _hammer_in_threads(bucket, 16, start + SECONDS)

    assert_the_schedule_keeps_to_the_rate(slots, start=start)


@pytest.mark.timeout(60)
def test_four_processes_of_four_threads_sharing_a_bucket_get_the_configured_rate_and_never_more(
    redis_client: redis.Redis[Any], bucket_name: str
) -> None:
    processes = 4
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    out = context.Queue()
    connection = redis_client.connection_pool.connection_kwargs
    workers = [
        context.Process(target=_process_main, args=(connection, bucket_name, 4, ready, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()

    ready.wait(timeout=20)
    start = time.time()
    slots = [slot for _ in workers for slot in out.get(timeout=20)]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0

    assert_the_schedule_keeps_to_the_rate(slots, start=start)
