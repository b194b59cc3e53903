"""The behaviour both buckets promise, run against the Redis one and the in-process one.

Redis keeps its own clock, so schedules are compared within a few milliseconds; the local
bucket runs on a frozen clock here (its exact arithmetic is in the unit tests).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from distributor.ratelimit import TokenBucket
from distributor.ratelimit.local import LocalTokenBucket
from distributor.ratelimit.redis import RedisTokenBucket

MakeBucket = Callable[..., TokenBucket]
MakeRedisBucket = Callable[..., RedisTokenBucket]
SLACK = 0.02  # seconds: Redis time passing between calls, on a busy machine


@pytest.fixture(params=["redis", "local"])
def make_bucket(request: pytest.FixtureRequest, make_redis_bucket: MakeRedisBucket) -> MakeBucket:
    if request.param == "redis":
        return make_redis_bucket

    def make_local(*, rate_per_second: float, burst: int) -> TokenBucket:
        return LocalTokenBucket(rate_per_second=rate_per_second, burst=burst, clock=lambda: 0.0)

    return make_local


def test_a_fresh_bucket_grants_its_burst_at_once_then_one_call_per_interval(
    make_bucket: MakeBucket,
) -> None:
    bucket = make_bucket(rate_per_second=10, burst=3)

    reservations = [bucket.reserve(max_wait_seconds=1) for _ in range(6)]

    assert all(r.granted for r in reservations)
    waits = [r.wait_seconds for r in reservations]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3], abs=SLACK)


def test_a_wait_beyond_what_the_caller_accepts_is_reported_and_takes_nothing(
    make_bucket: MakeBucket,
) -> None:
    bucket = make_bucket(rate_per_second=5, burst=1)
    bucket.reserve(max_wait_seconds=0)

    refusals = [bucket.reserve(max_wait_seconds=0.1) for _ in range(3)]
    granted = bucket.reserve(max_wait_seconds=1)

    assert not any(r.granted for r in refusals)
    assert [r.wait_seconds for r in refusals] == pytest.approx([0.2] * 3, abs=SLACK)
    assert granted.granted
    assert granted.wait_seconds == pytest.approx(0.2, abs=SLACK)


def test_wait_time_reports_the_wait_and_takes_nothing(make_bucket: MakeBucket) -> None:
    bucket = make_bucket(rate_per_second=5, burst=1)

    assert bucket.wait_time() == bucket.wait_time() == 0
    bucket.reserve(max_wait_seconds=0)
    assert bucket.wait_time() == pytest.approx(0.2, abs=SLACK)
    assert bucket.wait_time() == pytest.approx(0.2, abs=SLACK)


def test_a_pause_holds_back_every_token_then_calls_resume_at_the_steady_rate(
    make_bucket: MakeBucket,
) -> None:
    bucket = make_bucket(rate_per_second=10, burst=5)

    bucket.pause_for(2)

    assert bucket.wait_time() == pytest.approx(2.1, abs=SLACK)
    refused = bucket.reserve(max_wait_seconds=1)
    assert not refused.granted
    assert refused.wait_seconds == pytest.approx(2.1, abs=SLACK)
    waits = [bucket.reserve(max_wait_seconds=5).wait_seconds for _ in range(3)]
    assert waits == pytest.approx([2.1, 2.2, 2.3], abs=SLACK)


def test_a_shorter_pause_never_shortens_a_longer_one_but_a_longer_one_extends_it(
    make_bucket: MakeBucket,
) -> None:
    bucket = make_bucket(rate_per_second=10, burst=5)

    bucket.pause_for(3)
    bucket.pause_for(1)
    assert bucket.wait_time() == pytest.approx(3.1, abs=SLACK)

    bucket.pause_for(5)
    assert bucket.wait_time() == pytest.approx(5.1, abs=SLACK)


def test_a_pause_of_no_time_still_drops_the_burst(make_bucket: MakeBucket) -> None:
    bucket = make_bucket(rate_per_second=10, burst=5)

    bucket.pause_for(0)

    assert bucket.wait_time() == pytest.approx(0.1, abs=SLACK)


@pytest.mark.alone  # 5 ms between calls: a test beside it on the cores is more
@pytest.mark.parametrize(("rate_per_second", "calls"), [(0.5, 4), (33.3, 100)])
def test_fractional_rates_space_calls_exactly(
    make_bucket: MakeBucket, rate_per_second: float, calls: int
) -> None:
    bucket = make_bucket(rate_per_second=rate_per_second, burst=1)

    # When each call would go out: the moment the answer came plus the wait it carries.
    schedule = []
    for _ in range(calls):
        reservation = bucket.reserve(max_wait_seconds=3600)
        schedule.append(time.monotonic() + reservation.wait_seconds)

    gaps = [later - earlier for earlier, later in itertools.pairwise(schedule)]
    assert gaps == pytest.approx([1 / rate_per_second] * (calls - 1), abs=0.005)
    assert schedule[-1] - schedule[0] == pytest.approx((calls - 1) / rate_per_second, abs=0.005)
