"""LocalTokenBucket with a hand-driven clock: exact schedules, and thread safety."""

from __future__ import annotations

import threading

import pytest

from distributor.ratelimit import Reservation
from distributor.ratelimit.local import LocalTokenBucket


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def waits(bucket: LocalTokenBucket, count: int, *, max_wait_seconds: float = 60) -> list[float]:
    reservations = [bucket.reserve(max_wait_seconds=max_wait_seconds) for _ in range(count)]
    assert all(r.granted for r in reservations)
    return [r.wait_seconds for r in reservations]


def test_after_the_burst_calls_are_spaced_exactly_one_interval_apart(clock: ManualClock) -> None:
    bucket = LocalTokenBucket(rate_per_second=4, burst=2, clock=clock)

    assert waits(bucket, 5) == pytest.approx([0, 0, 0.25, 0.5, 0.75])


def test_waiting_callers_keep_their_slots_as_time_passes(clock: ManualClock) -> None:
    bucket = LocalTokenBucket(rate_per_second=4, burst=1, clock=clock)
    waits(bucket, 3)  # slots at +0, +0.25, +0.5

    clock.advance(0.3)

    assert bucket.reserve(max_wait_seconds=1).wait_seconds == pytest.approx(0.45)


def test_an_idle_bucket_fills_up_to_its_burst_and_no_further(clock: ManualClock) -> None:
    bucket = LocalTokenBucket(rate_per_second=10, burst=3, clock=clock)
    waits(bucket, 3)

    clock.advance(3600)

    assert waits(bucket, 4) == pytest.approx([0, 0, 0, 0.1])


def test_a_refused_reservation_takes_nothing(clock: ManualClock) -> None:
    bucket = LocalTokenBucket(rate_per_second=2, burst=1, clock=clock)
    waits(bucket, 1)

    for _ in range(3):
        assert bucket.reserve(max_wait_seconds=0.4) == Reservation(granted=False, wait_seconds=0.5)
    assert bucket.reserve(max_wait_seconds=0.5) == Reservation(granted=True, wait_seconds=0.5)


def test_a_pause_counts_from_when_it_was_set_and_the_bucket_resumes_empty(
    clock: ManualClock,
) -> None:
    bucket = LocalTokenBucket(rate_per_second=10, burst=5, clock=clock)

    bucket.pause_for(2)
    clock.advance(1.5)

    assert bucket.wait_time() == pytest.approx(0.6)
    assert waits(bucket, 3) == pytest.approx([0.6, 0.7, 0.8])


def test_a_pause_lets_calls_already_promised_past_its_end_keep_their_slots(
    clock: ManualClock,
) -> None:
    bucket = LocalTokenBucket(rate_per_second=10, burst=1, clock=clock)
    waits(bucket, 11)  # the last slot is at +1.0

    bucket.pause_for(0.5)

    assert bucket.wait_time() == pytest.approx(1.1)


def test_a_clock_stepping_back_does_not_drain_the_bucket(clock: ManualClock) -> None:
    bucket = LocalTokenBucket(rate_per_second=10, burst=2, clock=clock)
    clock.advance(-60)

    assert waits(bucket, 3) == pytest.approx([0, 0, 0.1])


def test_concurrent_threads_each_get_a_distinct_slot(clock: ManualClock) -> None:
    rate, burst, threads, per_thread = 50.0, 5, 16, 40
    bucket = LocalTokenBucket(rate_per_second=rate, burst=burst, clock=clock)
    start = threading.Barrier(threads)
    granted: list[float] = []

    def worker() -> None:
        start.wait()
        mine = waits(bucket, per_thread, max_wait_seconds=3600)
        granted.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    total = threads * per_thread
    expected = [0.0] * burst + [k / rate for k in range(1, total - burst + 1)]
    assert sorted(granted) == pytest.approx(expected, abs=1e-9)
