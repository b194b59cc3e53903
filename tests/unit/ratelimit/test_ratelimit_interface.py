"""acquire(), bucket names and bucket settings: the parts every implementation shares."""

from __future__ import annotations

import pytest

from distributor.ratelimit import Reservation, acquire, bucket_name_for, check_bucket_config


class _Answers:
    """A bucket that gives one fixed answer and counts the reservations asked for."""

    def __init__(self, reservation: Reservation) -> None:
        self.reservation = reservation
        self.asked: list[float] = []

    def reserve(self, *, max_wait_seconds: float) -> Reservation:
        self.asked.append(max_wait_seconds)
        return self.reservation

    def pause_for(self, seconds: float) -> None:
        raise AssertionError("acquire never pauses")

    def wait_time(self) -> float:
        raise AssertionError("acquire never peeks")


def test_acquire_sleeps_a_granted_wait_once_and_returns_the_reservation() -> None:
    reservation = Reservation(granted=True, wait_seconds=0.25)
    bucket = _Answers(reservation)
    slept: list[float] = []

    assert acquire(bucket, max_wait_seconds=1.5, sleep=slept.append) == reservation

    assert bucket.asked == [1.5]
    assert slept == [0.25]


def test_acquire_does_not_sleep_when_the_token_is_there_now() -> None:
    slept: list[float] = []

    acquire(
        _Answers(Reservation(granted=True, wait_seconds=0.0)),
        max_wait_seconds=1,
        sleep=slept.append,
    )

    assert slept == []


def test_acquire_returns_a_refused_reservation_without_sleeping_or_asking_again() -> None:
    reservation = Reservation(granted=False, wait_seconds=30.0)
    bucket = _Answers(reservation)
    slept: list[float] = []

    assert acquire(bucket, max_wait_seconds=5, sleep=slept.append) == reservation

    assert bucket.asked == [5]
    assert slept == []


def test_a_bucket_name_is_stable_per_key_and_does_not_contain_the_key() -> None:
    name = bucket_name_for("ck_live_secret-api-key")

    assert name == bucket_name_for("ck_live_secret-api-key")
    assert name != bucket_name_for("ck_live_other-api-key")
    assert "secret" not in name
    assert len(name) == 16


@pytest.mark.parametrize(
    ("rate_per_second", "burst"),
    [(0, 1), (-1, 1), (float("inf"), 1), (float("nan"), 1), (1, 0)],
)
def test_a_bucket_needs_a_positive_finite_rate_and_a_burst_of_at_least_one(
    rate_per_second: float, burst: int
) -> None:
    with pytest.raises(ValueError, match="must be"):
        check_bucket_config(rate_per_second=rate_per_second, burst=burst)
