"""The transfer lifecycle on the simulated clock: created, sent, then claimed, or expired
and returned, with a webhook on every change.

Times are simulated seconds after the transfer was created:

=========================  =====================================================
recipient                  lifecycle
=========================  =====================================================
everyone else              sent at 5 s, claimed at 60 s
never-claims (see          sent at 5 s, expired at 14 days, returned 60 s later
``recipients``)
=========================  =====================================================

The sender may cancel a transfer while it is ``created`` or ``sent``: it becomes
``cancelled``, the card is the sender's again, and the later planned changes do nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from centrapay_sandbox.clock import SimClock
from centrapay_sandbox.constants import TransferStatus
from centrapay_sandbox.models import Transfer
from centrapay_sandbox.state import Store
from centrapay_sandbox.views import transfer_view
from centrapay_sandbox.webhooks import Webhooks

SENT_AFTER_SECONDS = 5.0
CLAIMED_AFTER_SECONDS = 60.0
EXPIRED_AFTER_SECONDS = 14 * 24 * 3600.0
RETURNED_AFTER_EXPIRY_SECONDS = 60.0
TICK_SECONDS = 0.02  # real seconds between two looks at the schedule


def plan(*, claims: bool) -> list[tuple[float, TransferStatus]]:
    """The status changes of a new transfer, as (simulated seconds after creation, status)."""
    if claims:
        return [
            (SENT_AFTER_SECONDS, TransferStatus.SENT),
            (CLAIMED_AFTER_SECONDS, TransferStatus.CLAIMED),
        ]
    return [
        (SENT_AFTER_SECONDS, TransferStatus.SENT),
        (EXPIRED_AFTER_SECONDS, TransferStatus.EXPIRED),
        (EXPIRED_AFTER_SECONDS + RETURNED_AFTER_EXPIRY_SECONDS, TransferStatus.RETURNED),
    ]


class Lifecycle:
    """Moves transfers along their plan as simulated time passes, and sends the webhooks."""

    def __init__(self, *, store: Store, clock: SimClock, webhooks: Webhooks) -> None:
        self._store = store
        self._clock = clock
        self._webhooks = webhooks
        self._due: list[tuple[float, int, str, TransferStatus]] = []
        self._order = itertools.count()

    def started(self, transfer: Transfer) -> None:
        """Schedule a new transfer's lifecycle and announce its ``created`` status."""
        now = self._clock.now()
        for offset, status in plan(claims=transfer.claims):
            heapq.heappush(self._due, (now + offset, next(self._order), transfer.id, status))
        self.notify(transfer)

    def notify(self, transfer: Transfer) -> None:
        """POST the transfer to its ``notifyUrl``, if it has one."""
        if transfer.notify_url is not None:
            self._webhooks.post(
                transfer.notify_url, key=transfer.id, payload=transfer_view(transfer)
            )

    def tick(self) -> None:
        """Apply every status change that is due by now."""
        now = self._clock.now()
        while self._due and self._due[0][0] <= now:
            _, _, transfer_id, status = heapq.heappop(self._due)
            transfer = self._store.advance(transfer_id, status)
            if transfer is not None:
                self.notify(transfer)

    async def run(self) -> None:
        """Tick until cancelled (a task of the server's event loop)."""
        while True:
            self.tick()
            await asyncio.sleep(TICK_SECONDS)

    def reset(self) -> None:
        """Forget every scheduled change."""
        self._due.clear()
