"""The rate-limit bucket: one per Centrapay credential, each HTTP call takes one token.

Two implementations share the ``TokenBucket`` interface: ``redis.RedisTokenBucket`` (every
worker on every host) and ``local.LocalTokenBucket`` (the standalone mode, one process).

Reservations work like GCRA: a caller may take a token that only becomes available later and
sleeps until then, so after the burst is spent granted calls are spaced exactly 1/rate apart
and any number of concurrent workers produce the configured rate without retry storms.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """The answer to ``reserve``: a token to use after ``wait_seconds``, or the wait for one."""

    granted: bool
    wait_seconds: float


class TokenBucket(Protocol):
    """A token bucket whose tokens may be reserved in advance and whose flow a 429 can pause."""

    def reserve(self, *, max_wait_seconds: float) -> Reservation:
        """Take one token, possibly in advance: granted if it is (or will be) available within
        max_wait_seconds; otherwise nothing is taken and the wait is reported."""
        ...

    def pause_for(self, seconds: float) -> None:
        """A 429 said wait: nobody gets a token for `seconds` (extends, never shortens, a pause)."""
        ...

    def wait_time(self) -> float:
        """Seconds until a token would be available now (for metrics and status), nothing taken."""
        ...


def acquire(
    bucket: TokenBucket,
    *,
    max_wait_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Reservation:
    """Reserve a token; if granted, sleep its wait (never spin), else return it ungranted."""
    reservation = bucket.reserve(max_wait_seconds=max_wait_seconds)
    if reservation.granted and reservation.wait_seconds > 0:
        sleep(reservation.wait_seconds)
    return reservation


def bucket_name_for(api_key: str) -> str:
    """The bucket name for a Centrapay API key: a hash, so no secret ends up in a Redis key."""
    # 64 bits tell a handful of credentials apart and keep the key short in redis-cli.
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def check_bucket_config(*, rate_per_second: float, burst: int) -> None:
    """Raise ValueError unless the rate is positive and finite and the burst at least 1."""
    if not (math.isfinite(rate_per_second) and rate_per_second > 0):
        raise ValueError(f"rate_per_second must be positive and finite, not {rate_per_second!r}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, not {burst!r}")
