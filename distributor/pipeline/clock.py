"""The one clock of the pipeline: timezone-aware UTC, from the host.

Leases compare host times, so hosts must keep their clocks in sync (NTP); the lease
length dwarfs any realistic skew.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
