"""An operator's retry or cancel racing the last row's settling leaves the batch true.

Each race is forced with two real Postgres transactions: one holds its place (uncommitted,
or holding the batch's row lock) while the other runs to completion in a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from distributor.batches import batch_counts, get_batch
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.errors import Conflict
from distributor.models import Batch
from distributor.pipeline import batch_control, transitions
from distributor.pipeline.clock import utcnow
from distributor.pipeline.retry import RetryResult, retry
from distributor.vault import vault_from_settings
from tests.factories import make_batch, make_row

LEASE = timedelta(seconds=30)

BLOCKED_WAIT_SECONDS = 5.0


def _batch_with_rows(settings: Settings, states: list[str]) -> int:
    """A running batch with one row per state."""
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        for index, state in enumerate(states):
            make_row(
                session,
                batch=batch,
                vault=vault,
                card_number=f"2340770{index:04d}",
                state=state,
                line_no=index + 1,
            )
        return batch.id


class _InThread:
    """``call()`` on a thread of its own; its result or error kept for the test."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the racing transaction never finished"


def _wait_until_blocked_or_done(settings: Settings, racer: _InThread) -> None:
    """Until the racer waits on a lock in Postgres, or has finished without waiting."""
    dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    database = dsn.rsplit("/", 1)[1]
    deadline = time.monotonic() + BLOCKED_WAIT_SECONDS
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if not racer._thread.is_alive():
                return
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND wait_event_type = 'Lock'",
                (database,),
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the racer neither finished nor waited on a lock")


def _finish(settings: Settings, batch_id: int) -> bool:
    with session_scope(settings.database_url) as session:
        return batch_control.finish_if_settled(session, batch_id=batch_id, now=utcnow())


def test_a_retry_racing_the_batch_finish_leaves_no_done_batch_holding_rows_to_send(
    settings: Settings,
) -> None:
    # The last row has just failed; the worker's finish and an operator's retry meet.
    batch_id = _batch_with_rows(settings, [RowState.SENT, RowState.FAILED])
    with session_scope(settings.database_url) as retrying:
        result = retry(
            retrying, batch_id=batch_id, vault=vault_from_settings(settings), now=utcnow()
        )
        assert len(result.retried) == 1
        finisher = _InThread(lambda: _finish(settings, batch_id))
        _wait_until_blocked_or_done(settings, finisher)
    finisher.join()
    assert finisher.error is None, finisher.error
    with session_scope(settings.database_url) as session:
        state = get_batch(session, batch_id).state
        pending = batch_counts(session, batch_id)[RowState.PENDING]
    assert (state, pending) == (BatchState.RUNNING, 1), "a done batch holds a row to send"


def test_a_retry_after_the_batch_finished_opens_it_again(settings: Settings) -> None:
    batch_id = _batch_with_rows(settings, [RowState.SENT, RowState.FAILED])
    with session_scope(settings.database_url) as finishing:
        assert batch_control.finish_if_settled(finishing, batch_id=batch_id, now=utcnow())
        retrier = _InThread(
            lambda: _retry_committed(settings, batch_id),
        )
        _wait_until_blocked_or_done(settings, retrier)
    retrier.join()
    assert retrier.error is None, retrier.error
    with session_scope(settings.database_url) as session:
        assert get_batch(session, batch_id).state == BatchState.RUNNING


def _retry_committed(settings: Settings, batch_id: int) -> RetryResult:
    with session_scope(settings.database_url) as session:
        return retry(session, batch_id=batch_id, vault=vault_from_settings(settings), now=utcnow())


def test_a_cancel_racing_the_batch_completion_leaves_the_batch_done(settings: Settings) -> None:
    # Every row is sent; the finish holds the batch's row while an operator cancels.
    batch_id = _batch_with_rows(settings, [RowState.SENT, RowState.SENT])
    with session_scope(settings.database_url) as finishing:
        finishing.execute(
            text("SELECT id FROM batches WHERE id = :id FOR UPDATE"), {"id": batch_id}
        )
        canceller = _InThread(lambda: _cancel(settings, batch_id))
        _wait_until_blocked_or_done(settings, canceller)
        assert batch_control.finish_if_settled(finishing, batch_id=batch_id, now=utcnow())
    canceller.join()
    with session_scope(settings.database_url) as session:
        assert get_batch(session, batch_id).state == BatchState.DONE
    assert isinstance(canceller.error, Conflict), canceller.error


def _cancel(settings: Settings, batch_id: int) -> int:
    with session_scope(settings.database_url) as session:
        return batch_control.cancel(session, batch_id=batch_id, now=utcnow())


def test_a_cancel_of_a_running_batch_cancels_its_waiting_rows(settings: Settings) -> None:
    batch_id = _batch_with_rows(settings, [RowState.SENT, RowState.PENDING])
    assert _cancel(settings, batch_id) == 1
    with session_scope(settings.database_url) as session:
        assert get_batch(session, batch_id).state == BatchState.CANCELLED
        assert batch_counts(session, batch_id)[RowState.CANCELLED] == 1


def _settling(settings: Settings, batch_id: int, count: int = 1) -> list[transitions.Claim]:
    """``count`` more rows of the batch, each taken for its transfer step (about to settle)."""
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = session.get_one(Batch, batch_id)
        rows = [
            make_row(
                session,
                batch=batch,
                vault=vault,
                card_number=f"2340771{index:04d}",
                state=RowState.LOADED,
                line_no=100 + index,
            )
            for index in range(count)
        ]
    claims = []
    with session_scope(settings.database_url) as session:
        for row in rows:
            claim = transitions.claim(
                session, row_id=row.id, step=transitions.TRANSFER, now=utcnow(), lease=LEASE
            )
            assert claim is not None
            claims.append(claim)
    return claims


def _mark_sent(session: Session, claim: transitions.Claim) -> transitions.SentMark:
    return transitions.mark_sent(
        session,
        claim=claim,
        asset_id=None,
        transfer_id="transfer-1",
        transfer_status="pending",
        now=utcnow(),
    )


@pytest.mark.parametrize(
    ("states", "waits"),
    [
        ([RowState.SENT, RowState.PENDING], True),
        ([RowState.SENT, RowState.LOADED], True),
        ([RowState.SENT, RowState.LOADING, RowState.TRANSFERRING, RowState.FAILED], False),
    ],
)
def test_a_settling_row_skips_the_finish_check_only_while_a_row_waits_for_a_step(
    settings: Settings, states: list[str], waits: bool
) -> None:
    """A waiting row makes the check itself when it settles; a row in flight may be
    settling at this very moment, seeing this row in flight too: both must check."""
    (claim,) = _settling(settings, _batch_with_rows(settings, states))
    with session_scope(settings.database_url) as session:
        marked = _mark_sent(session, claim)
    assert (marked.moved, marked.others_wait) == (True, waits)


def test_the_last_two_rows_settling_at_once_close_the_batch(settings: Settings) -> None:
    """Each row's transaction sees the other in flight (uncommitted): neither skips the
    check made after its commit, and the later one closes the batch."""
    batch_id = _batch_with_rows(settings, [RowState.SENT])
    first, second = _settling(settings, batch_id, count=2)
    with (
        session_scope(settings.database_url) as one,
        session_scope(settings.database_url) as two,
    ):
        skips = [_mark_sent(one, first).others_wait, _mark_sent(two, second).others_wait]
    assert skips == [False, False]
    assert _finish(settings, batch_id)
    with session_scope(settings.database_url) as session:
        assert get_batch(session, batch_id).state == BatchState.DONE
