"""How closely the Redis bucket holds its rate when many processes and threads share it.

    .venv/bin/python tests/benchmarks/bucket_accuracy.py [--processes 4 --threads 8 ...]

Each worker calls acquire() in a loop, as the pipeline does, and notes when it returned
(the moment its call would go out) and how long the reservation itself took. Prints JSON:
the configured and achieved rate (over the steady part of the run, after the first
second), the most calls in any 1 s window against the most the bucket allows
(rate + burst), the error in percent, and p50/p99 of reservation latency in ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from typing import Any

import redis

from distributor.ratelimit import acquire
from distributor.ratelimit.redis import RedisTokenBucket

STEADY_AFTER = 1.0  # seconds: the burst is spent by then
MAX_WAIT = 1.0  # seconds: above the queue all workers can build, so every call is granted

Sample = tuple[float, float]  # when the call would go out (epoch s), reservation latency (s)


def _worker(bucket: RedisTokenBucket, deadline: float, samples: list[Sample]) -> None:
    reserved = 0.0

    def sleep(seconds: float) -> None:
        nonlocal reserved
        reserved = time.time()
        time.sleep(seconds)

    while (sent := time.time()) < deadline:
        reserved = 0.0
        reservation = acquire(bucket, max_wait_seconds=MAX_WAIT, sleep=sleep)
        called = time.time()
        if reservation.granted:
            samples.append((called, (reserved or called) - sent))
        else:
            time.sleep(reservation.wait_seconds)


def _process(args: argparse.Namespace, name: str, ready: Any, out: Any) -> None:
    client = redis.Redis.from_url(args.redis_url)
    bucket = RedisTokenBucket(client, name=name, rate_per_second=args.rate, burst=args.burst)
    samples: list[Sample] = []
    ready.wait()
    deadline = time.time() + args.seconds
    threads = [
        threading.Thread(target=_worker, args=(bucket, deadline, samples))
        for _ in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(samples)
    client.close()


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    worst, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        worst = max(worst, last - first + 1)
    return worst


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TEST_REDIS_URL_RATELIMIT", "redis://127.0.0.1:6379/14"),
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    name = f"benchmark-{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(args.processes + 1)
    out = context.Queue()
    workers = [
        context.Process(target=_process, args=(args, name, ready, out))
        for _ in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    ready.wait()
    start = time.time()
    samples = [sample for _ in workers for sample in out.get()]
    for worker in workers:
        worker.join()
    client = redis.Redis.from_url(args.redis_url)
    client.delete(RedisTokenBucket(client, name=name, rate_per_second=1, burst=1).key)
    client.close()

    calls = [called for called, _ in samples]
    steady_from, steady_to = start + STEADY_AFTER, start + args.seconds
    achieved = sum(steady_from <= c < steady_to for c in calls) / (steady_to - steady_from)
    latencies_ms = sorted(latency * 1000 for _, latency in samples)
    percentiles = statistics.quantiles(latencies_ms, n=100)
    print(
        json.dumps(
            {
                "processes": args.processes,
                "threads_per_process": args.threads,
                "seconds": args.seconds,
                "configured_rate": args.rate,
                "burst": args.burst,
                "calls": len(calls),
                "achieved_rate": round(achieved, 2),
                "error_percent": round(100 * (achieved - args.rate) / args.rate, 2),
                "max_calls_in_any_1s_window": _max_in_window(calls, 1.0),
                "allowed_in_any_1s_window": args.rate + args.burst,
                "reservation_latency_ms_p50": round(percentiles[49], 3),
                "reservation_latency_ms_p99": round(percentiles[98], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
