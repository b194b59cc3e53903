"""Leases a worker holds: renewed by a heartbeat while a step runs, checked before each call.

A claim gives the row a short lease (``LEASE_SECONDS``). While the step runs, a heartbeat
thread renews the lease of every row this process holds, every third of a lease; a dead
process stops renewing and its rows are taken again within about one lease.

The fence is the other half: before each Centrapay call a step asks ``still_held``. It
answers from memory, from the last renewal that succeeded: a lease renewed at time t
cannot be taken by anyone before t + lease, so a call started before t + lease - margin
is one the row's holder makes. A renewal that finds the row taken (the token moved on)
marks the claim lost at once, and the step makes no further call for the row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from distributor.db import session_scope
from distributor.pipeline import transitions
from distributor.pipeline.clock import utcnow
from distributor.pipeline.transitions import Claim

logger = logging.getLogger(__name__)

RENEWALS_PER_LEASE = 3
FENCE_MARGIN_SHARE = 0.25
"""A call must start this share of a lease before the lease could run out."""


@dataclass(kw_only=True)
class _Held:
    claim: Claim
    valid_until: float
    """time.monotonic() after which no call may start for this claim."""


class LeaseKeeper:
    """The leases of one process: a heartbeat thread renews them, ``still_held`` fences."""

    def __init__(self, *, database_url: str, lease: timedelta) -> None:
        self._database_url = database_url
        self._lease_seconds = lease.total_seconds()
        self._lease = lease
        self._margin = self._lease_seconds * FENCE_MARGIN_SHARE
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, claim: Claim, *, claimed_at: float) -> Iterator[None]:
        """Keep ``claim``'s lease renewed while the block runs (``claimed_at``: monotonic).

        A claim held already (rows taken together, each then run in turn) is held on as it
        is, renewals and all; the innermost block to end lets it go.
        """
        with self._lock:
            entry = self._held.get(claim.row_id)
            if entry is None or entry.claim.lease_token != claim.lease_token:
                valid_until = claimed_at + self._lease_seconds - self._margin
                entry = _Held(claim=claim, valid_until=valid_until)
                self._held[claim.row_id] = entry
            self._start_heartbeat()
        try:
            yield
        finally:
            with self._lock:
                if self._held.get(claim.row_id) is entry:
                    del self._held[claim.row_id]

    def still_held(self, claim: Claim) -> bool:
        """True while a call for ``claim``'s row may still start."""
        with self._lock:
            entry = self._held.get(claim.row_id)
            valid = entry is not None and entry.claim.lease_token == claim.lease_token
            return valid and time.monotonic() < entry.valid_until  # type: ignore[union-attr]

    def renew_now(self) -> None:
        """Renew every held lease once (what each heartbeat does)."""
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        started = time.monotonic()
        try:
            with session_scope(self._database_url) as session:
                kept = transitions.renew(
                    session,
                    claims=[entry.claim for entry in held],
                    lease_until=utcnow() + self._lease,
                )
        except SQLAlchemyError as error:
            # The leases run out on their own; the fence stops calls before they do.
            logger.warning("lease renewal failed: %s", type(error).__name__)
            return
        with self._lock:
            for entry in held:
                if entry.claim.row_id in kept:
                    entry.valid_until = started + self._lease_seconds - self._margin
                else:
                    entry.valid_until = 0.0
                    logger.warning(
                        "row %s: lease taken over; no further call for it here",
                        entry.claim.row_id,
                    )

    def close(self) -> None:
        """Stop the heartbeat."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self._lease_seconds)

    def _start_heartbeat(self) -> None:
        if self._thread is None and not self._stopped.is_set():
            self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        interval = self._lease_seconds / RENEWALS_PER_LEASE
        while not self._stopped.wait(interval):
            self.renew_now()
