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


@pytest.mark.parametrize(
    ("reservation", "max_wait_seconds", "sleeps"),
    [
        (Reservation(granted=True, wait_seconds=0.25), 1.5, [0.25]),
        (Reservation(granted=True, wait_seconds=0.0), 1, []),
        (Reservation(granted=False, wait_seconds=30.0), 5, []),
    ],
    ids=[
        "a-granted-wait-is-slept-once",
        "no-sleep-when-the-token-is-there-now",
        "a-refusal-is-returned-without-sleeping-or-asking-again",
    ],
)
def test_acquire_asks_once_sleeps_only_a_granted_wait_and_returns_the_reservation(
    reservation: Reservation, max_wait_seconds: float, sleeps: list[float]
) -> None:
    bucket = _Answers(reservation)
    slept: list[float] = []

    assert acquire(bucket, max_wait_seconds=max_wait_seconds, sleep=slept.append) == reservation

    assert bucket.asked == [max_wait_seconds]
    assert slept == sleeps


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
