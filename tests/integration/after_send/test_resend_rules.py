"""Which rows a resend takes, what it keeps of the row's transfer, and the corrections file."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from distributor import operator_actions
from distributor.access.actors import BOOTSTRAP
from distributor.config import Settings
from distributor.constants import BatchState, RowState
from distributor.db import session_scope
from distributor.errors import Conflict, UploadRejected
from distributor.ingest.corrections import read_corrections
from distributor.models import Batch, RowTransfer
from distributor.pipeline.clock import utcnow
from distributor.pipeline.resend import NewRecipient, resend
from distributor.vault import vault_from_settings
from tests.factories import load_row, make_batch, make_row

TO = NewRecipient(recipient="+64221119876", recipient_masked="+64*****9876", message=None)


def _row(
    settings: Settings,
    *,
    state: str,
    transfer_status: str | None = None,
    asset_id: str | None = "asset-1",
    batch_state: str = BatchState.DONE,
) -> tuple[int, int]:
    vault = vault_from_settings(settings)
    with session_scope(settings.database_url) as session:
        batch = make_batch(session, state=batch_state)
        row = make_row(session, batch=batch, vault=vault, card_number="23400000001", state=state)
        row.asset_id = asset_id
        row.transfer_id = "tr-1" if transfer_status else None
        row.transfer_status = transfer_status
        row.sent_at = utcnow() if transfer_status else None
        row.pin_enc = None
        if state == RowState.FAILED:
            row.card_key = None
            row.error_code = "BAD_REQUEST"
        return batch.id, row.id


def _resend(settings: Settings, batch_id: int, row_id: int) -> None:
    with session_scope(settings.database_url) as session:
        resend(
            session,
            batch_id=batch_id,
            row_id=row_id,
            to=TO,
            vault=vault_from_settings(settings),
            now=utcnow(),
        )


@pytest.mark.parametrize("status", ["returned", "cancelled"])
def test_a_sent_row_whose_card_came_back_goes_to_the_transfer_step_only(
    settings: Settings, status: str
) -> None:
    batch_id, row_id = _row(settings, state=RowState.SENT, transfer_status=status)
    _resend(settings, batch_id, row_id)
    with session_scope(settings.database_url) as session:
        row = load_row(session, row_id)
        assert (row.state, row.asset_id, row.transfer_id) == (RowState.LOADED, "asset-1", None)
        assert (row.recipient, row.recipient_masked) == (TO.recipient, TO.recipient_masked)
        assert session.get_one(Batch, batch_id).state == BatchState.RUNNING
        kept = session.scalars(select(RowTransfer).where(RowTransfer.row_id == row_id)).one()
        assert (kept.transfer_id, kept.transfer_status) == ("tr-1", status)
        assert kept.recipient_masked == "+64*****1234"


def test_a_row_failed_at_its_transfer_takes_its_card_back(settings: Settings) -> None:
    batch_id, row_id = _row(settings, state=RowState.FAILED)
    _resend(settings, batch_id, row_id)
    with session_scope(settings.database_url) as session:
        row = load_row(session, row_id)
        assert row.state == RowState.LOADED and row.card_key is not None
        assert row.error_code is None


@pytest.mark.parametrize(
    ("state", "status", "asset_id", "reason"),
    [
        (RowState.SENT, "created", "asset-1", "live transfer"),
        (RowState.SENT, "sent", "asset-1", "live transfer"),
        (RowState.SENT, "claimed", "asset-1", "live transfer"),
        (RowState.SENT, "expired", "asset-1", "live transfer"),
        (RowState.FAILED, None, None, "never loaded"),
        (RowState.PENDING, None, None, "never loaded"),
    ],
)
def test_a_row_with_a_live_transfer_or_no_loaded_card_is_refused(
    settings: Settings, state: str, status: str | None, asset_id: str | None, reason: str
) -> None:
    batch_id, row_id = _row(settings, state=state, transfer_status=status, asset_id=asset_id)
    with pytest.raises(Conflict, match=reason):
        _resend(settings, batch_id, row_id)
    with session_scope(settings.database_url) as session:
        assert load_row(session, row_id).state == state
        assert session.scalars(select(RowTransfer)).first() is None


def test_a_row_of_a_cancelled_batch_is_refused(settings: Settings) -> None:
    batch_id, row_id = _row(
        settings, state=RowState.SENT, transfer_status="returned", batch_state="cancelled"
    )
    with pytest.raises(Conflict, match="cancelled"):
        _resend(settings, batch_id, row_id)


def test_resend_lines_refuses_lines_one_by_one(settings: Settings) -> None:
    batch_id, _ = _row(settings, state=RowState.SENT, transfer_status="returned")
    done = operator_actions.resend_lines(
        settings.database_url,
        BOOTSTRAP,
        batch_id=batch_id,
        lines=[(1, TO), (7, TO)],
        vault=vault_from_settings(settings),
    )
    assert done.resent == [1] and list(done.refused) == [7]


def test_a_corrections_file_is_checked_like_an_upload() -> None:
    text = "Line,RecipientAlias,Message\n3,021 123 4567,Hi\n5,bob@Example.com,\n"
    fixes = read_corrections(io.BytesIO(text.encode()), max_rows=10)
    assert [(fix.line, fix.to.recipient, fix.to.message) for fix in fixes] == [
        (3, "+64211234567", "Hi"),
        (5, "bob@example.com", None),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("line,recipientAlias\n3,+15555550100\n", "line 2"),
        ("line,recipientAlias,message\n3,0211234567," + "x" * 101 + "\n", "line 2"),
        ("line,recipientAlias\n3,0211234567\n3,0211234568\n", "named twice"),
        ("recipientAlias\n0211234567\n", "missing line"),
        ("", "empty"),
    ],
)
def test_a_corrections_file_with_a_problem_is_refused_whole(text: str, problem: str) -> None:
    with pytest.raises(UploadRejected, match=problem):
        read_corrections(io.BytesIO(text.encode()), max_rows=10)
