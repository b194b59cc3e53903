"""Leaks found and fixed: error messages that quoted a card number, a PIN or a phone."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from distributor.api.app import create_app
from distributor.cli import app as cli
from distributor.config import Settings, get_settings
from distributor.db import dispose_engines, get_engine, session_scope
from distributor.errors import UploadRejected
from distributor.ingest import ingest_csv
from distributor.models import Base, Row
from distributor.vault import vault_from_settings
from tests.conftest import TEST_API_TOKEN
from tests.integration.security.security_helpers import OPTIONS, found_secrets, upload
from tests.serving import serve_in_thread

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
    with pytest.raises(UploadRejected) as refused, session_scope(settings.database_url) as session:
        ingest_csv(
            io.BytesIO(data),
            session=session,
            vault=vault_from_settings(settings),
            options=OPTIONS,
            max_rows=10,
            pin_required=True,
        )
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
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings, dispatch=lambda _batch_id: None)
    headers = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=headers) as client:
        answer = client.post(
            "/batches", files={"file": ("cards.csv", DATA_READ_AS_HEADER, "text/csv")}
        )
    assert answer.status_code == 422
    assert found_secrets(answer.text, [PHONE, CARD, PIN]) == []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert settings.distributor_secret_key is not None
    monkeypatch.setenv("DISTRIBUTOR_SECRET_KEY", settings.distributor_secret_key.get_secret_value())
    get_settings.cache_clear()
    (tmp_path / "cards.csv").write_bytes(DATA_READ_AS_HEADER)
    result = CliRunner().invoke(cli, ["upload", "cards.csv", "--no-start"])
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "unknown column number 1" in result.stderr
    assert found_secrets(result.stdout + result.stderr, [PHONE, CARD, PIN]) == []


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A standalone-mode SQLite database file (schema from the models)."""
    url = f"sqlite:///{tmp_path}/standalone.db"
    Base.metadata.create_all(get_engine(url))
    yield url
    dispose_engines()


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
