"""The ledger that tests and operators read: loads and transfers per card, and every request.

Only requests under ``/api`` are logged; the log keeps the newest ``REQUEST_LOG_MAX``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

REQUEST_LOG_MAX = 500_000


@dataclass
class CardCounts:
    """How often one card was loaded (new asset), re-loaded (same asset back), transferred."""

    loads: int = 0
    repeatLoads: int = 0
    transfers: int = 0


@dataclass(frozen=True, kw_only=True)
class RequestRecord:
    """One request to ``/api``: what the client got (``status`` None: no answer at all)."""

    method: str
    path: str
    status: int | None
    fault: str | None
    at: str
    durationMs: float


class Ledger:
    """Counts per card number and the request log, safe to read while requests arrive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cards: dict[str, CardCounts] = {}
        self._requests: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_MAX)

    def _card(self, card_number: str) -> CardCounts:
        return self._cards.setdefault(card_number, CardCounts())

    def loaded(self, card_number: str) -> None:
        """A new asset was created for the card."""
        with self._lock:
            self._card(card_number).loads += 1

    def reloaded(self, card_number: str) -> None:
        """A load request returned the asset the account already holds."""
        with self._lock:
            self._card(card_number).repeatLoads += 1

    def transferred(self, card_number: str) -> None:
        """A transfer was created for the card's asset."""
        with self._lock:
            self._card(card_number).transfers += 1

    def record(self, record: RequestRecord) -> None:
        """Log one request."""
        self._requests.append(record)

    def card(self, card_number: str) -> dict[str, int]:
        """The counts of one card (zeros for a card never seen)."""
        with self._lock:
            return asdict(self._cards.get(card_number, CardCounts()))

    def summary(self) -> dict[str, Any]:
        """Every card's counts, the most loads of any one card, and the request count."""
        with self._lock:
            cards = {number: asdict(counts) for number, counts in self._cards.items()}
        return {
            "cards": cards,
            "maxLoads": max((counts["loads"] for counts in cards.values()), default=0),
            "requestCount": len(self._requests),
        }

    def requests(self, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The request log, oldest first; the newest ``limit`` when given."""
        records = list(self._requests)
        if limit is not None:
            records = records[-limit:] if limit else []
        return [asdict(record) for record in records]

    def reset(self) -> None:
        """Forget everything."""
        with self._lock:
            self._cards.clear()
            self._requests.clear()
