"""Per-key rate limiting with GCRA (the generic cell rate algorithm, a token bucket).

Each key has a theoretical arrival time (TAT): the moment its bucket would be full again.
A request is accepted when ``now >= TAT - tolerance`` and pushes TAT on by one emission
interval; so at most ``burst`` requests pass at once and ``rate`` per second after that,
with no window edges where twice the rate slips through.
"""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    """GCRA limiter keyed by API key; ``rate`` 0 means unlimited."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self.rate = 0.0
        self.burst = 1
        self._interval = 0.0
        self._tolerance = 0.0
        self.configure(rate=rate, burst=burst)

    def configure(self, *, rate: float, burst: int) -> None:
        """Change rate (requests/second) and burst; the buckets start full again."""
        with self._lock:
            self.rate = rate
            self.burst = burst
            self._interval = 1.0 / rate if rate > 0 else 0.0
            self._tolerance = (burst - 1) * self._interval
            self._tat.clear()

    def acquire(self, key: str, *, now: float | None = None) -> float:
        """Take one request for ``key``: 0.0 if accepted, else the seconds until it would be."""
        if self._interval == 0.0:
            return 0.0
        moment = time.monotonic() if now is None else now
        with self._lock:
            tat = max(self._tat.get(key, moment), moment)
            allowed_at = tat - self._tolerance
            if moment < allowed_at:
                return allowed_at - moment
            self._tat[key] = tat + self._interval
            return 0.0


def retry_after_header(wait_seconds: float) -> str:
    """``Retry-After`` is whole seconds: the wait rounded up, at least 1."""
    return str(max(1, math.ceil(wait_seconds)))
