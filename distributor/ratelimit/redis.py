"""The token bucket in Redis, shared by every worker on every host: one Lua script, atomic."""

from __future__ import annotations

from importlib import resources

import redis

from distributor.constants import BUCKET_KEY_PREFIX
from distributor.errors import BucketUnavailable
from distributor.ratelimit import Reservation, check_bucket_config

_SCRIPT = resources.files("distributor.ratelimit").joinpath("token_bucket.lua").read_text("utf-8")


class RedisTokenBucket:
    """One token bucket in Redis per name; fails closed when Redis cannot be reached.

    Every method raises ``BucketUnavailable`` (never grants) if the script cannot run, so no
    call goes out unthrottled.

    Warning: a pause cannot recall reservations already granted: those callers are sleeping
    towards their slot (at most their ``max_wait_seconds`` away) and will still call.
    """

    def __init__(
        self, client: redis.Redis, *, name: str, rate_per_second: float, burst: int
    ) -> None:
        check_bucket_config(rate_per_second=rate_per_second, burst=burst)
        self.key = BUCKET_KEY_PREFIX + name
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._script = client.register_script(_SCRIPT)

    def reserve(self, *, max_wait_seconds: float) -> Reservation:
        """Take one token, possibly in advance: granted if it is (or will be) available within
        max_wait_seconds; otherwise nothing is taken and the wait is reported."""
        granted, wait_seconds = self._run("reserve", max_wait_seconds)
        return Reservation(granted=granted, wait_seconds=wait_seconds)

    def pause_for(self, seconds: float) -> None:
        """A 429 said wait: nobody gets a token for `seconds` (extends, never shortens, a pause).

        The bucket resumes empty, so calls restart at the steady rate, 1/rate after the pause.
        """
        self._run("pause", max(seconds, 0.0))

    def wait_time(self) -> float:
        """Seconds until a token would be available now (for metrics and status), nothing taken."""
        return self._run("peek", 0.0)[1]

    def _run(self, op: str, seconds: float) -> tuple[bool, float]:
        args: list[str | float] = [self.rate_per_second, self.burst, op, seconds * 1000]
        try:
            granted, wait_ms = self._script(keys=[self.key], args=args)
        except redis.RedisError as exc:
            raise BucketUnavailable(f"rate-limit bucket {self.key}: {exc}") from exc
        return granted == 1, float(wait_ms) / 1000
