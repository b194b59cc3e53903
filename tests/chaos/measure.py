"""Measurement: what happened when (the event log), how many rows had settled when (the
timeline), and from those, each fault's recovery time and the run's throughput.

Recovery time of a fault: seconds from the fault until the batch's throughput (rows sent
or failed per second, over a ``RECOVERY_WINDOW_SECONDS`` window) is back to
``RECOVERED_SHARE`` of its rate over the ``BEFORE_FAULT_SECONDS`` before the fault. A fault
that does not slow the batch recovers in 0 s; one after which the rate never comes back
before the batch settles has no recovery time (None), and fails the target.
"""

from __future__ import annotations

import bisect
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BEFORE_FAULT_SECONDS = 10.0
RECOVERY_WINDOW_SECONDS = 3.0
RECOVERED_SHARE = 0.8
SCAN_STEP_SECONDS = 0.25


class EventLog:
    """What happened when: seconds since the start and wall-clock time, in order."""

    def __init__(self, *, echo: bool = True) -> None:
        self.started = time.monotonic()
        self.items: list[dict[str, Any]] = []
        self.echo = echo

    def elapsed(self) -> float:
        """Seconds since the log started."""
        return time.monotonic() - self.started

    def add(self, event: str, **details: Any) -> dict[str, Any]:
        """Record ``event`` now."""
        item = {
            "t": round(self.elapsed(), 2),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event,
            **details,
        }
        self.items.append(item)
        if self.echo:
            extra = " ".join(f"{k}={v}" for k, v in details.items())
            print(f"[chaos {item['t']:7.2f}s] {event} {extra}", file=sys.stderr, flush=True)
        return item


@dataclass
class Timeline:
    """Rows settled (sent or failed) over time: one sample per look at the batch."""

    times: list[float] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)

    def add(self, t: float, settled: int) -> None:
        """The batch had ``settled`` rows settled at ``t`` (seconds since the run started)."""
        self.times.append(t)
        self.settled.append(settled)

    def settled_at(self, t: float) -> float:
        """Rows settled at ``t``, interpolated between the samples around it."""
        if not self.times:
            return 0.0
        i = bisect.bisect_left(self.times, t)
        if i == 0:
            return float(self.settled[0])
        if i >= len(self.times):
            return float(self.settled[-1])
        t0, t1 = self.times[i - 1], self.times[i]
        s0, s1 = self.settled[i - 1], self.settled[i]
        return s0 + (s1 - s0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def rate(self, start: float, end: float) -> float:
        """Rows settled per second between ``start`` and ``end``."""
        if end <= start:
            return 0.0
        return (self.settled_at(end) - self.settled_at(start)) / (end - start)


def recovery(timeline: Timeline, *, fault_at: float, since: float, until: float) -> dict[str, Any]:
    """How the batch came back from a fault at ``fault_at``; ``since`` bounds the rate
    before (the phase's start), ``until`` the search after (the batch settled)."""
    before_start = max(since, fault_at - BEFORE_FAULT_SECONDS)
    before = timeline.rate(before_start, fault_at)
    found: float | None = None
    start = fault_at
    while start + RECOVERY_WINDOW_SECONDS <= until:
        if timeline.rate(start, start + RECOVERY_WINDOW_SECONDS) >= RECOVERED_SHARE * before:
            found = start - fault_at
            break
        start += SCAN_STEP_SECONDS
    return {
        "rateBefore": round(before, 1),
        "rateBeforeWindowSeconds": round(fault_at - before_start, 1),
        "recoverySeconds": None if found is None else round(found, 2),
    }


def recoveries(
    events: list[dict[str, Any]], timeline: Timeline, *, since: float, until: float
) -> list[dict[str, Any]]:
    """The recovery of every fault fired (the ``fire <kind>`` events), in order."""
    fired = [e for e in events if str(e["event"]).startswith("fire ")]
    found: list[dict[str, Any]] = []
    for index, event in enumerate(fired):
        measured = recovery(timeline, fault_at=event["t"], since=since, until=until)
        recovered_at = (
            None
            if measured["recoverySeconds"] is None
            else event["t"] + measured["recoverySeconds"]
        )
        following = fired[index + 1]["t"] if index + 1 < len(fired) else None
        found.append(
            {
                "fault": str(event["event"]).removeprefix("fire "),
                "t": event["t"],
                **measured,
                # The next fault came before this one had recovered: the two overlap.
                "overlapsNext": bool(
                    following is not None and (recovered_at is None or following < recovered_at)
                ),
            }
        )
    return found
