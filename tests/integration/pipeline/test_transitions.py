"""Row transitions are compare-and-set: a second taker, or a worker that lost its lease,
changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.models import Row
from distributor.pipeline import transitions
from distributor.pipeline.clock import utcnow
from distributor.pipeline.transitions import LOAD, TRANSFER
from distributor.vault import vault_from_settings
from tests.factories import load_row, make_batch, make_row

LEASE = timedelta(seconds=60)


def _row(
    settings: Settings, *, batch_state: str = BatchState.RUNNING, card: str = "23403321042"
) -> int:
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state=batch_state)
        return make_row(
            session, batch=batch, vault=vault_from_settings(settings), card_number=card
        ).id


def _claim(
    settings: Settings, row_id: int, step: str = LOAD, *, at: timedelta = timedelta()
) -> transitions.Claim | None:
    with session_scope(settings.database_url) as session:
        return transitions.claim(session, row_id=row_id, step=step, now=utcnow() + at, lease=LEASE)


def _taken(settings: Settings, row_id: int) -> transitions.Claim:
    """The row's claim for its load, which must be granted."""
    claim = _claim(settings, row_id)
    assert claim is not None
    return claim


def _loaded_row(settings: Settings) -> int:
    """A row claimed for its load and loaded with asset A1."""
    row_id = _row(settings)
    claim = _taken(settings, row_id)
    with session_scope(settings.database_url) as session:
        transitions.mark_loaded(session, claim=claim, asset_id="A1", now=utcnow())
    return row_id


def _state(settings: Settings, row_id: int) -> Row:
    with session_scope(settings.database_url) as session:
        return load_row(session, row_id)


def test_a_pending_row_is_taken_once(settings: Settings) -> None:
    row_id = _row(settings)
    first = _claim(settings, row_id)
    assert first is not None and first.step_attempts == 1
    assert _claim(settings, row_id) is None
    assert _state(settings, row_id).state == RowState.LOADING


def test_a_row_of_a_paused_batch_is_not_taken(settings: Settings) -> None:
    row_id = _row(settings, batch_state=BatchState.PAUSED)
    assert _claim(settings, row_id) is None


def test_a_row_whose_lease_ran_out_is_taken_again_and_counts_the_attempt(
    settings: Settings,
) -> None:
    row_id = _row(settings)
    first = _claim(settings, row_id)
    second = _claim(settings, row_id, at=LEASE + timedelta(seconds=1))
    assert first is not None and second is not None
    assert second.step_attempts == 2


def test_a_worker_that_lost_its_lease_cannot_record_its_result(settings: Settings) -> None:
    row_id = _row(settings)
    stale = _claim(settings, row_id)
    fresh = _claim(settings, row_id, at=LEASE + timedelta(seconds=1))
    assert stale is not None and fresh is not None
    with session_scope(settings.database_url) as session:
        assert not transitions.mark_loaded(session, claim=stale, asset_id="A1", now=utcnow())
        assert transitions.mark_loaded(session, claim=fresh, asset_id="A2", now=utcnow())
    row = _state(settings, row_id)
    assert (row.state, row.asset_id) == (RowState.LOADED, "A2")


def test_loading_records_the_asset_and_wipes_the_pin(settings: Settings) -> None:
    row = _state(settings, _loaded_row(settings))
    assert row.pin_enc is None and row.asset_id == "A1" and row.loaded_at is not None


def test_a_loaded_row_is_taken_for_transfer_not_for_load(settings: Settings) -> None:
    row_id = _loaded_row(settings)
    assert _claim(settings, row_id, LOAD) is None
    transfer = _claim(settings, row_id, TRANSFER)
    assert transfer is not None and transfer.step_attempts == 1


def test_a_release_that_reached_no_one_takes_the_attempt_back(settings: Settings) -> None:
    row_id = _row(settings)
    claim = _taken(settings, row_id)
    with session_scope(settings.database_url) as session:
        transitions.release(
            session,
            claim=claim,
            not_before=utcnow() + timedelta(seconds=30),
            now=utcnow(),
            counted=False,
        )
    row = _state(settings, row_id)
    assert (row.state, row.load_attempts) == (RowState.PENDING, 0)
    assert _claim(settings, row_id) is None, "not before its wait is over"
    assert _claim(settings, row_id, at=timedelta(seconds=31)) is not None


def test_two_live_rows_cannot_hold_one_card(settings: Settings) -> None:
    _row(settings, card="11112222333")
    with pytest.raises(IntegrityError):
        _row(settings, card="11112222333")


def test_a_failed_row_gives_its_card_up(settings: Settings) -> None:
    row_id = _row(settings, card="11112222333")
    claim = _taken(settings, row_id)
    with session_scope(settings.database_url) as session:
        transitions.mark_failed(
            session,
            claim=claim,
            error_code="UNKNOWN_ASSET",
            detail="x",
            retryable=False,
            now=utcnow(),
        )
    assert _row(settings, card="11112222333") != row_id
