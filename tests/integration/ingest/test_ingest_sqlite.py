"""The same ingest on SQLite, as the standalone mode runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from distributor.errors import UploadRejected
from distributor.ingest import BatchOptions, IngestResult
from distributor.vault import make_vault
from tests.factories import ingest_bytes

CSV_DIR = Path(__file__).parents[2] / "data" / "csv"
VAULT = make_vault("sqlite-test-secret-0123456789abcdef-0123")
OPTIONS = BatchOptions(name="cards.csv", asset_type="epay.nzd.main", issuer="ezipay")


def upload(url: str, data: bytes) -> IngestResult:
    return ingest_bytes(url, data, vault=VAULT, options=OPTIONS, max_rows=100)


def test_a_file_is_stored_on_sqlite_with_duplicates_found_in_the_file(sqlite_url: str) -> None:
    result = upload(sqlite_url, (CSV_DIR / "seed_example.csv").read_bytes())
    assert result.counts == {"pending": 1, "invalid": 0, "duplicate": 2}


def test_a_card_live_in_another_batch_is_a_duplicate_on_sqlite(sqlite_url: str) -> None:
    first = upload(sqlite_url, (CSV_DIR / "three_cards.csv").read_bytes())
    second = upload(sqlite_url, b"+64221231299,23403321044,1111,hi\n+64221231298,99,1,x\n")
    assert [(p.line, p.code) for p in second.problems] == [(1, "DUPLICATE_LIVE")]
    assert f"batch {first.batch_id} (line 4)" in second.problems[0].message


def test_a_rejected_file_stores_nothing_on_sqlite(sqlite_url: str) -> None:
    with pytest.raises(UploadRejected, match="no valid row"):
        upload(sqlite_url, b"Bob,1001,1111,hi\n")
    assert upload(sqlite_url, b"+64221231234,1001,1111,hi\n").batch_id == 1
