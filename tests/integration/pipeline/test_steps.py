"""advance_row on a real sandbox, for cases no worker process is needed to show."""

from __future__ import annotations

from datetime import timedelta

import pytest

from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.pipeline.clock import utcnow
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.steps import LEASE_MARGIN_SECONDS, advance_row
from distributor.vault import make_vault, vault_from_settings
from tests.factories import load_row, make_batch, make_row

FORGOTTEN_SECRET = "a-secret-nobody-configured-any-more-0123456789"


def test_a_card_under_a_secret_no_longer_set_fails_with_a_code_and_holds_no_lease(
    settings: Settings, ctx: PipelineContext
) -> None:
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        row = make_row(
            session, batch=batch, vault=make_vault(FORGOTTEN_SECRET), card_number="23407700001"
        )
    assert advance_row(ctx, row.id) is None
    with session_scope(settings.database_url) as session:
        stored = load_row(session, row.id)
    assert (stored.state, stored.error_code, stored.retryable) == (
        "failed",
        "SECRET_UNREADABLE",
        True,
    )
    assert stored.lease_until is None
    assert "DISTRIBUTOR_PREVIOUS_SECRET_KEYS" in (stored.error_detail or "")


def _row_held(settings: Settings, *, lease_seconds: float, batch_state: str) -> int:
    """A row in flight under another attempt's lease, running out in ``lease_seconds``."""
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state=batch_state)
        row = make_row(
            session,
            batch=batch,
            vault=vault_from_settings(settings),
            card_number="23407700002",
            state=RowState.LOADING,
        )
        row.lease_until = utcnow() + timedelta(seconds=lease_seconds)
        row.lease_token = 7
        return row.id


def test_a_row_held_by_another_attempts_lease_comes_back_just_after_it_runs_out(
    settings: Settings, ctx: PipelineContext
) -> None:
    """As a row task retried after a database outage cut its step short finds it."""
    row_id = _row_held(settings, lease_seconds=3.0, batch_state=BatchState.RUNNING)
    delay = advance_row(ctx, row_id)
    assert delay is not None
    assert 3.0 < delay <= 3.0 + LEASE_MARGIN_SECONDS
    with session_scope(settings.database_url) as session:
        assert load_row(session, row_id).lease_token == 7  # not taken, not changed


@pytest.mark.parametrize(
    ("lease_seconds", "batch_state"),
    [(-1.0, BatchState.PAUSED), (-1.0, BatchState.RUNNING)],
    ids=["lease-ran-out-batch-paused", "lease-ran-out-taken-over"],
)
def test_a_row_whose_lease_ran_out_does_not_come_back_on_its_own(
    settings: Settings, ctx: PipelineContext, lease_seconds: float, batch_state: str
) -> None:
    """Paused, it waits for resume; running, this attempt took it over and settled it."""
    row_id = _row_held(settings, lease_seconds=lease_seconds, batch_state=batch_state)
    assert advance_row(ctx, row_id) is None
