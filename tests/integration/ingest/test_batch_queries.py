"""Batch queries and views against real Postgres: counts, pages, filters, masked views."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import update

from distributor.batches import (
    batch_counts,
    batch_view,
    get_batch,
    list_batches,
    list_rows,
    row_view,
)
from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.errors import NotFound
from distributor.ingest import BatchOptions, ingest_csv
from distributor.models import Row
from distributor.vault import vault_from_settings

CARDS = (
    b"+64221231234,4000123498761,908171,first\n"
    b"Bob,4000123498762,908172,bad recipient\n"
    b"+64221231236,4000123498763,908173,third\n"
    b"+64221231237,4000123498761,908174,same card as line 1\n"
    b"+64221231238,4000123498765,908175,fifth\n"
)
SECRETS = ("4000123498761", "4000123498762", "4000123498763", "908171", "908173", "908175")
ROW_FIELDS = {
    "id",
    "batch_id",
    "line_no",
    "state",
    "recipient_masked",
    "card_masked",
    "message",
    "delivery",
    "asset_id",
    "transfer_id",
    "transfer_status",
    "attempts",
    "error_code",
    "error_detail",
    "retryable",
    "created_at",
    "updated_at",
    "loaded_at",
    "sent_at",
}


def store(settings: Settings, *, series: int = 0) -> int:
    """Store CARDS as a batch; another series has other card numbers."""
    with session_scope(settings.database_url) as session:
        result = ingest_csv(
            io.BytesIO(CARDS.replace(b"4000", b"%04d" % (4000 + series))),
            session=session,
            vault=vault_from_settings(settings),
            options=BatchOptions(name="cards.csv", asset_type="epay.nzd.main", issuer="ezipay"),
            max_rows=100,
            pin_required=True,
        )
    return result.batch_id


def test_counts_name_every_state_with_zero_for_the_empty_ones(settings: Settings) -> None:
    batch_id = store(settings)
    with session_scope(settings.database_url) as session:
        counts = batch_counts(session, batch_id)
    assert counts == {
        "pending": 3,
        "loading": 0,
        "loaded": 0,
        "transferring": 0,
        "sent": 0,
        "failed": 0,
        "invalid": 1,
        "duplicate": 1,
        "cancelled": 0,
    }


def test_a_missing_batch_is_not_found(settings: Settings) -> None:
    with session_scope(settings.database_url) as session, pytest.raises(NotFound, match="999"):
        get_batch(session, 999)


def test_batches_are_listed_newest_first_a_page_at_a_time(settings: Settings) -> None:
    ids = [store(settings, series=series) for series in range(3)]
    with session_scope(settings.database_url) as session:
        assert [b.id for b in list_batches(session, limit=2)] == [ids[2], ids[1]]
        assert [b.id for b in list_batches(session, limit=2, offset=2)] == [ids[0]]


def test_rows_are_listed_in_file_order_a_page_at_a_time(settings: Settings) -> None:
    batch_id = store(settings)
    with session_scope(settings.database_url) as session:
        first = list_rows(session, batch_id=batch_id, limit=2)
        second = list_rows(session, batch_id=batch_id, limit=2, offset=2)
    assert [row.line_no for row in first + second] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("state", "error_code", "lines"),
    [
        ("pending", None, [1, 3, 5]),
        ("invalid", None, [2]),
        (None, "DUPLICATE_IN_FILE", [4]),
        ("pending", "DUPLICATE_IN_FILE", []),
        ("sent", None, []),
    ],
)
def test_rows_can_be_filtered_by_state_and_error_code(
    settings: Settings, state: str | None, error_code: str | None, lines: list[int]
) -> None:
    batch_id = store(settings)
    with session_scope(settings.database_url) as session:
        found = list_rows(session, batch_id=batch_id, state=state, error_code=error_code)
    assert [row.line_no for row in found] == lines


def test_views_show_masked_data_only(settings: Settings) -> None:
    batch_id = store(settings)
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).where(Row.line_no == 3).values(state=RowState.SENT))
        rows = [row_view(row) for row in list_rows(session, batch_id=batch_id)]
        batch = batch_view(get_batch(session, batch_id), batch_counts(session, batch_id))
    assert all(set(view) == ROW_FIELDS for view in rows)
    assert rows[0]["recipient_masked"] == "+64*****1234"
    assert rows[0]["card_masked"] == "*******98761"
    assert batch["counts"]["sent"] == 1
    assert batch["total_rows"] == 5
    shown = json.dumps([rows, batch])
    for secret in (*SECRETS, "+64221231234", "Bob"):
        assert secret not in shown
