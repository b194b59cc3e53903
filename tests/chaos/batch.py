"""The batch of a chaos run, read and steered through Postgres (waiting out its restarts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg
from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from distributor.batches import batch_counts
from distributor.broker import CeleryRowQueue, make_celery
from distributor.config import Settings
from distributor.constants import IN_FLIGHT_STATES, RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline.clock import utcnow
from distributor.pipeline.queueing import dispatch
from distributor.pipeline.retry import RetryResult, retry
from distributor.vault import vault_from_settings
from tests.factories import store_running_batch

T = TypeVar("T")

CARD_PREFIX = "2340"  # the sandbox loads these with any PIN


def card_number(index: int) -> str:
    """An 11-digit card number the sandbox loads with any PIN."""
    return f"{CARD_PREFIX}{index:07d}"


def with_db(call: Callable[[], T], *, patience: float = 120.0) -> T:
    """``call()``, tried again while the database is unreachable (restarting) for a while."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return call()
        except (OperationalError, InterfaceError, psycopg.OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def store_batch(settings: Settings, cards: Sequence[str]) -> int:
    """A running batch with one pending row per card, each to its own phone."""
    rows = [(card, "1234", f"+6422{line:07d}") for line, card in enumerate(cards, start=1)]
    return store_running_batch(settings, rows)


def dispatch_rows(settings: Settings, batch_id: int) -> int:
    """Put the batch's ready rows on the queue (a fresh Celery app: Redis may be new)."""
    celery = make_celery(settings)
    try:
        return dispatch(
            database_url=settings.database_url, queue=CeleryRowQueue(celery), batch_id=batch_id
        )
    finally:
        celery.close()


def rows_by_state(settings: Settings, batch_id: int) -> dict[str, int]:
    """The batch's non-zero counts by state (waits out a database restart)."""

    def read() -> dict[str, int]:
        with session_scope(settings.database_url) as session:
            return {k: v for k, v in batch_counts(session, batch_id).items() if v}

    return with_db(read)


def expired_leases(settings: Settings, batch_id: int) -> int:
    """Rows in flight whose lease ran out, not taken again yet: their only way back is the
    sweeper's message (sent, or about to be; the sweeper sends them at once, as urgent)."""

    def read() -> int:
        now = utcnow()
        query = (
            select(func.count())
            .select_from(Row)
            .where(
                Row.batch_id == batch_id,
                Row.state.in_(IN_FLIGHT_STATES),
                Row.lease_until < now,
            )
        )
        with session_scope(settings.database_url) as session:
            return int(session.scalar(query) or 0)

    return with_db(read)


def retry_failed(settings: Settings, batch_id: int) -> RetryResult:
    """``retry`` of every failed row of the batch."""

    def run() -> RetryResult:
        with session_scope(settings.database_url) as session:
            return retry(
                session, batch_id=batch_id, vault=vault_from_settings(settings), now=utcnow()
            )

    return with_db(run)


def transfer_ids_pending(settings: Settings, batch_id: int) -> int:
    """Sent rows of the batch whose transfer id the sync has not found yet."""

    def read() -> int:
        with session_scope(settings.database_url) as session:
            query = select(func.count()).where(
                Row.batch_id == batch_id, Row.state == RowState.SENT, Row.transfer_id.is_(None)
            )
            return int(session.scalar(query) or 0)

    return with_db(read)


def wait_for_transfer_ids(settings: Settings, batch_id: int, *, timeout: float) -> int:
    """Wait (at most ``timeout`` seconds) for the sync to find every lost transfer id; how
    many are still missing."""
    deadline = time.monotonic() + timeout
    while (pending := transfer_ids_pending(settings, batch_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return pending
