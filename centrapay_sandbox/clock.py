"""The sandbox's simulated clock: wall time that can run faster than real time."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SimClock:
    """Simulated epoch seconds: starts at the real time, runs ``scale`` times faster."""

    def __init__(self, scale: float) -> None:
        self._scale = scale
        self._real_start = 0.0
        self._sim_start = 0.0
        self.reset(scale)

    @property
    def scale(self) -> float:
        """How many simulated seconds pass per real second."""
        return self._scale

    def now(self) -> float:
        """The simulated time, in epoch seconds."""
        return self._sim_start + (time.monotonic() - self._real_start) * self._scale

    def set_scale(self, scale: float) -> None:
        """Change the speed from now on, without a jump in simulated time."""
        self._sim_start = self.now()
        self._real_start = time.monotonic()
        self._scale = scale

    def advance(self, seconds: float) -> None:
        """Jump the simulated time forward."""
        self._sim_start += seconds

    def reset(self, scale: float) -> None:
        """Back to the real time, at ``scale``."""
        self._scale = scale
        self._real_start = time.monotonic()
        self._sim_start = time.time()


def iso(epoch_seconds: float) -> str:
    """``2020-05-01T12:30:00.000Z``: the timestamp format of Centrapay's answers."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
