"""Leaks found and fixed: error messages that quoted a card number, a PIN or a phone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from distributor.cli import app as cli
from distributor.config import Settings
from distributor.db import session_scope
from distributor.errors import UploadRejected
from distributor.models import Row
from distributor.vault import vault_from_settings
from tests.factories import ingest_bytes
from tests.integration.security.security_helpers import OPTIONS, found_secrets, upload

PHONE, CARD, PIN = "+64227391846", "23407319468", "58203917"
# Line 1 is data whose message is a column name, so it is read as a header.
DATA_READ_AS_HEADER = (
    f"{PHONE},{CARD},{PIN},Message\n+64227391847,23407319469,58203918,second\n".encode()
)
EMAIL_READ_AS_HEADER = f"bob@example.com,{CARD},{PIN},pin\n".encode()


@pytest.mark.parametrize(
    "data", [DATA_READ_AS_HEADER, EMAIL_READ_AS_HEADER], ids=["phone", "email"]
)
def test_a_data_line_read_as_a_header_is_refused_without_quoting_its_values(
    settings: Settings, data: bytes
) -> None:
    vault = vault_from_settings(settings)
    with pytest.raises(UploadRejected) as refused:
        ingest_bytes(settings.database_url, data, vault=vault, options=OPTIONS, max_rows=10)
    message = str(refused.value)
    assert "unknown column number 1" in message and "is line 1 a row of data?" in message
    assert found_secrets(message, [PHONE, CARD, PIN, "bob@example.com"]) == []


def test_a_misspelt_header_is_still_quoted(settings: Settings) -> None:
    with pytest.raises(UploadRejected, match="unknown column 'mesage'"):
        upload(
            settings.database_url,
            vault_from_settings(settings),
            "recipientAlias,cardNumber,pin,mesage\n",
        )


def test_the_api_and_the_cli_refuse_such_a_file_without_the_values(
    api: httpx.Client, tmp_path: Path, cli_environment: dict[str, str]
) -> None:
    answer = api.post("/batches", files={"file": ("cards.csv", DATA_READ_AS_HEADER, "text/csv")})
    assert answer.status_code == 422
    assert found_secrets(answer.text, [PHONE, CARD, PIN]) == []
    (tmp_path / "cards.csv").write_bytes(DATA_READ_AS_HEADER)
    result = CliRunner().invoke(cli, ["upload", "cards.csv", "--no-start"])
    assert result.exit_code == 1
    assert "unknown column number 1" in result.stderr
    assert found_secrets(result.stdout + result.stderr, [PHONE, CARD, PIN]) == []


def test_a_failed_insert_on_sqlite_does_not_quote_the_recipients_it_carried(
    sqlite_url: str,
) -> None:
    """Standalone mode inserts rows with executemany: a failure (a locked database, a
    constraint) used to print every parameter set, recipients in clear, into the log."""
    rows = [{"batch_id": 1, "line_no": n, "state": "bogus", "recipient": PHONE} for n in (1, 2)]
    with pytest.raises(DBAPIError) as failed, session_scope(sqlite_url) as session:
        session.execute(insert(Row), rows)
    assert "CHECK constraint failed" in str(failed.value)
    assert PHONE not in str(failed.value)


def test_a_failed_statement_on_postgres_does_not_quote_its_parameters(settings: Settings) -> None:
    upload(settings.database_url, vault_from_settings(settings))
    with pytest.raises(DBAPIError) as failed, session_scope(settings.database_url) as session:
        session.execute(update(Row).values(message=PHONE, line_no="not a number"))
    assert "invalid input syntax for type integer" in str(failed.value)
    assert PHONE not in str(failed.value)
