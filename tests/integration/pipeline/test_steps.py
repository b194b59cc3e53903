"""advance_row on a real sandbox, for cases no worker process is needed to show."""

from __future__ import annotations

from distributor.config import Settings
from distributor.db import session_scope
from distributor.pipeline.context import PipelineContext
from distributor.pipeline.steps import advance_row
from distributor.vault import make_vault
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
