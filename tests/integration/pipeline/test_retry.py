"""Retry on demand puts failed rows back at the step that failed, and only when it may."""

from __future__ import annotations

from distributor.batches import get_batch
from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.pipeline.clock import utcnow
from distributor.pipeline.retry import retry
from distributor.vault import make_vault, vault_from_settings
from tests.factories import load_row, make_batch, make_row


def test_retry_resumes_each_row_at_the_step_that_failed(settings: Settings) -> None:
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state="done")
        unloaded = make_row(
            session, batch=batch, vault=vault, card_number="23406600001", state=RowState.FAILED
        )
        loaded = make_row(
            session, batch=batch, vault=vault, card_number="23406600002", state=RowState.FAILED
        )
        loaded.asset_id = "asset-1"
    with session_scope(settings.database_url) as session:
        result = retry(session, batch_id=batch.id, vault=vault, now=utcnow())
        states = {row_id: load_row(session, row_id).state for row_id in (unloaded.id, loaded.id)}
        batch_state = get_batch(session, batch.id).state
    assert sorted(result.retried) == sorted([unloaded.id, loaded.id])
    assert states == {unloaded.id: RowState.PENDING, loaded.id: RowState.LOADED}
    assert batch_state == "running"


def test_a_row_whose_card_no_secret_can_read_is_reported_not_retried(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state="done")
        lost = make_row(
            session,
            batch=batch,
            vault=make_vault("a-secret-nobody-configured-any-more-0123456789"),
            card_number="23406600003",
            state=RowState.FAILED,
        )
    with session_scope(settings.database_url) as session:
        result = retry(
            session, batch_id=batch.id, vault=vault_from_settings(settings), now=utcnow()
        )
        state = load_row(session, lost.id).state
    assert (result.retried, result.refused, result.unreadable) == ([], [], [lost.id])
    assert state == RowState.FAILED
