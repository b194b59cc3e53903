"""The token bucket held in this process, for the standalone mode: same rules as the Lua."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from distributor.ratelimit import Reservation, check_bucket_config


class LocalTokenBucket:
    """An in-process token bucket with the same interface and arithmetic as the Redis one.

    Thread-safe. Tokens may go negative: -n means n calls are already promised, and a pause
    is the same debt (-rate * seconds), so the bucket resumes empty when the pause ends.
    """

    def __init__(
        self,
        *,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_bucket_config(rate_per_second=rate_per_second, burst=burst)
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self, *, max_wait_seconds: float) -> Reservation:
        """Take one token, possibly in advance: granted if it is (or will be) available within
        max_wait_seconds; otherwise nothing is taken and the wait is reported."""
        with self._lock:
            self._refill()
            wait = self._wait_for_token()
            if wait > max_wait_seconds:
                return Reservation(granted=False, wait_seconds=wait)
            self._tokens -= 1
            return Reservation(granted=True, wait_seconds=wait)

    def pause_for(self, seconds: float) -> None:
        """A 429 said wait: nobody gets a token for `seconds` (extends, never shortens, a pause).

        The bucket resumes empty, so calls restart at the steady rate, 1/rate after the pause.
        """
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, -max(seconds, 0.0) * self.rate_per_second)

    def wait_time(self) -> float:
        """Seconds until a token would be available now (for metrics and status), nothing taken."""
        with self._lock:
            self._refill()
            return self._wait_for_token()

    def _refill(self) -> None:
        now = self._clock()
        # An injected clock may step back; negative elapsed time must not drain the bucket.
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_second)
        self._updated = now

    def _wait_for_token(self) -> float:
        return max(0.0, (1 - self._tokens) / self.rate_per_second)
