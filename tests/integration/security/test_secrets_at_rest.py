"""What a database dump shows: no card number or PIN in clear, and no PIN once loaded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from distributor.config import Settings
from distributor.db import dispose_engines, session_scope
from distributor.pipeline import batch_control, transitions
from distributor.pipeline.clock import utcnow
from distributor.vault import make_vault, vault_from_settings
from tests.conftest import TEST_SECRET_KEY
from tests.integration.security.security_helpers import (
    CARDS,
    NEEDLES,
    PINS,
    found_secrets,
    libpq_url,
    pg_dump_text,
    raw_dump,
    upload,
)


def load_every_pending_row(database_url: str, batch_id: int) -> int:
    """Claim each pending row for its load and record it loaded, as a worker does."""
    now = utcnow()
    with session_scope(database_url) as session:
        batch_control.start(session, batch_id=batch_id, now=now)
    with psycopg.connect(libpq_url(database_url)) as conn:
        found = conn.execute(
            "SELECT id FROM rows WHERE batch_id = %s AND state = 'pending'", (batch_id,)
        )
        ids = [row_id for (row_id,) in found]
    for row_id in ids:
        with session_scope(database_url) as session:
            claim = transitions.claim(
                session, row_id=row_id, step=transitions.LOAD, now=now, lease=timedelta(minutes=1)
            )
            assert claim is not None
            assert transitions.mark_loaded(
                session, claim=claim, asset_id=f"asset-{row_id}", now=now
            )
    return len(ids)


def test_an_uploaded_batch_holds_no_card_number_or_pin_in_clear(settings: Settings) -> None:
    result = upload(settings.database_url, vault_from_settings(settings))
    assert result.counts == {"pending": 3, "invalid": 1, "duplicate": 1}
    dump = raw_dump(settings.database_url)
    assert "+64*****1846" in dump, "the dump does not hold the rows it was meant to search"
    assert found_secrets(dump, NEEDLES) == []


def test_pg_dump_of_an_uploaded_batch_holds_no_card_number_or_pin(settings: Settings) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    dump = pg_dump_text(settings.database_url)
    if dump is None:
        pytest.skip("pg_dump is not installed; raw_dump covers the same rows with COPY")
    assert "*******19468" in dump
    assert found_secrets(dump, NEEDLES) == []


def test_the_pin_is_gone_from_the_database_once_the_card_is_loaded(settings: Settings) -> None:
    result = upload(settings.database_url, vault_from_settings(settings))
    assert load_every_pending_row(settings.database_url, result.batch_id) == 3
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        kept = conn.execute("SELECT state, count(*) FROM rows WHERE pin_enc IS NOT NULL GROUP BY 1")
        assert kept.fetchall() == []
    assert found_secrets(raw_dump(settings.database_url), NEEDLES) == []


def test_a_row_that_is_never_sent_stores_no_pin_at_all(settings: Settings) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        found = conn.execute(
            "SELECT state, pin_enc IS NULL, recipient IS NULL FROM rows "
            "WHERE state IN ('invalid', 'duplicate') ORDER BY state"
        )
        assert found.fetchall() == [("duplicate", True, True), ("invalid", True, True)]


def test_the_standalone_sqlite_file_holds_no_card_number_or_pin_in_clear(
    sqlite_url: str, tmp_path: Path
) -> None:
    upload(sqlite_url, make_vault(TEST_SECRET_KEY))
    dispose_engines()  # checkpoint the WAL into the file
    stored = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("standalone.db*")))
    text = stored.decode("latin-1")
    assert "+64*****1846" in text
    assert found_secrets(text, NEEDLES) == []


def test_the_dump_would_show_a_card_or_pin_stored_in_clear(settings: Settings) -> None:
    """The instrument works: plaintext in a text column or a bytea column is found."""
    upload(settings.database_url, vault_from_settings(settings))
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        conn.execute(
            "UPDATE rows SET pin_enc = %s, message = %s WHERE line_no = 2",
            (PINS[0].encode(), f"card {CARDS[0]}"),
        )
    dump = raw_dump(settings.database_url)
    assert found_secrets(dump, [PINS[0], CARDS[0], PINS[1]]) == [PINS[0], CARDS[0]]
