"""ingest_csv against real Postgres: what is stored, what is refused, and what is a duplicate."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.errors import Conflict, UploadRejected
from distributor.ingest import BatchOptions, IngestResult, ingest_csv
from distributor.models import Batch, Row
from distributor.vault import Vault, make_vault, vault_from_settings
from tests.factories import ingest_bytes

CSV_DIR = Path(__file__).parents[2] / "data" / "csv"
OPTIONS = BatchOptions(name="cards.csv", asset_type="epay.nzd.main", issuer="ezipay")
HEADER = b"recipientAlias,cardNumber,pin,message\n"
GOOD_ROW = b"+64221231234,23403321042,1111,Hello Bob\n"


@pytest.fixture
def vault(settings: Settings) -> Vault:
    return vault_from_settings(settings)


def upload(
    settings: Settings,
    vault: Vault,
    data: bytes,
    *,
    max_rows: int = 1_000,
    pin_required: bool = True,
    options: BatchOptions = OPTIONS,
) -> IngestResult:
    return ingest_bytes(
        settings.database_url,
        data,
        vault=vault,
        options=options,
        max_rows=max_rows,
        pin_required=pin_required,
    )


def rejection(
    settings: Settings, vault: Vault, data: bytes, *, max_rows: int = 1_000
) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        upload(settings, vault, data, max_rows=max_rows)
    return caught.value


def stored_rows(settings: Settings, batch_id: int) -> list[Row]:
    with session_scope(settings.database_url) as session:
        query = select(Row).where(Row.batch_id == batch_id).order_by(Row.line_no)
        return list(session.scalars(query))


def stored_totals(settings: Settings) -> tuple[int, int]:
    with session_scope(settings.database_url) as session:
        batches = session.scalar(select(func.count()).select_from(Batch)) or 0
        rows = session.scalar(select(func.count()).select_from(Row)) or 0
    return batches, rows


def test_the_seed_example_without_a_header_sends_the_card_once(
    settings: Settings, vault: Vault
) -> None:
    result = upload(settings, vault, (CSV_DIR / "seed_example.csv").read_bytes())
    assert result.counts == {"pending": 1, "invalid": 0, "duplicate": 2}
    rows = stored_rows(settings, result.batch_id)
    assert [(row.line_no, row.state, row.error_code) for row in rows] == [
        (1, "pending", None),
        (2, "duplicate", "DUPLICATE_IN_FILE"),
        (3, "duplicate", "DUPLICATE_IN_FILE"),
    ]
    assert rows[1].error_detail == "cardNumber: the same card as line 1"


@pytest.mark.parametrize(
    ("name", "pending", "duplicate"),
    [
        ("seed.csv", 1, 2),
        ("seed_example.csv", 1, 2),
        ("three_cards.csv", 3, 0),
        ("sandbox_demo.csv", 3, 0),
        ("excel_bom_crlf.csv", 4, 0),
    ],
)
def test_every_sample_file_is_accepted(
    settings: Settings, vault: Vault, name: str, pending: int, duplicate: int
) -> None:
    result = upload(settings, vault, (CSV_DIR / name).read_bytes())
    assert result.counts == {"pending": pending, "invalid": 0, "duplicate": duplicate}


def test_a_file_with_a_header_stores_each_row_pending_with_its_secrets_encrypted(
    settings: Settings, vault: Vault
) -> None:
    result = upload(settings, vault, (CSV_DIR / "three_cards.csv").read_bytes())
    assert result.counts == {"pending": 3, "invalid": 0, "duplicate": 0}
    assert result.problems == []
    first, *_ = rows = stored_rows(settings, result.batch_id)
    assert [row.line_no for row in rows] == [2, 3, 4]
    assert (first.recipient, first.recipient_masked) == ("+64221231234", "+64*****1234")
    assert first.card_masked == "*******21042"
    assert first.card_number_enc is not None
    assert first.pin_enc is not None
    assert vault.decrypt(first.card_number_enc) == "23403321042"
    assert vault.decrypt(first.pin_enc) == "1111"
    assert first.card_key == vault.card_key(
        issuer="ezipay", asset_type="epay.nzd.main", card_number="23403321042"
    )
    assert (first.message, first.asset_type, first.issuer) == (
        "Hello Bob! Here's your giftcard",
        "epay.nzd.main",
        "ezipay",
    )
    with session_scope(settings.database_url) as session:
        batch = session.get(Batch, result.batch_id)
        assert batch is not None
        assert (batch.name, batch.state, batch.total_rows) == ("cards.csv", "queued", 3)


def test_a_spreadsheet_export_with_bom_crlf_other_column_order_and_quoting_is_read_right(
    settings: Settings, vault: Vault
) -> None:
    options = BatchOptions(
        name="x.csv", asset_type="epay.nzd.test", issuer="ezipay", sender_name="Head office"
    )
    data = (CSV_DIR / "excel_bom_crlf.csv").read_bytes()
    result = upload(settings, vault, data, options=options)
    assert result.counts["pending"] == 4
    rows = stored_rows(settings, result.batch_id)
    assert [(row.line_no, row.recipient, row.message, row.sender_name) for row in rows] == [
        (2, "+64211231234", "Happy birthday, Bob!", "Acme"),
        (3, "bob@example.com", 'She said "thanks"', "Head office"),
        (4, "+64221231236", "Line one\nline two", "Acme"),
        (6, "+64221231237", "Plain", "Head office"),
    ]
    assert rows[0].card_number_enc is not None
    assert vault.decrypt(rows[0].card_number_enc) == "23403321042"
    assert {row.asset_type for row in rows} == {"epay.nzd.test"}


def test_line_numbers_stay_right_after_a_message_with_embedded_newlines(
    settings: Settings, vault: Vault
) -> None:
    data = HEADER + b'+64221231234,1001,1111,"one\ntwo\nthree"\n+6422,1002,1111,hi\n' + GOOD_ROW
    result = upload(settings, vault, data)
    assert [(p.line, p.field) for p in result.problems] == [(5, "recipientAlias")]


@pytest.mark.parametrize(
    ("row", "code", "detail"),
    [
        (b"+6422,1001,1111,hi", "INVALID_RECIPIENT", "recipientAlias: not a valid NZ phone number"),
        (b"Bob,1001,1111,hi", "INVALID_RECIPIENT", "recipientAlias: not a phone number or email"),
        (b"+61412345678,1001,1111,hi", "INVALID_RECIPIENT", "recipientAlias: a +61 number"),
        (b"+64221231235,1001,1111," + b"m" * 101, "MESSAGE_TOO_LONG", "message: 101 characters"),
        (b"+64221231235,1001,,hi", "MISSING_FIELD", "pin: missing (PINs are required)"),
        (b"+64221231235,1001,12x4,hi", "INVALID_PIN", "pin: must contain digits only"),
        (b"+64221231235,10O1,1111,hi", "INVALID_CARD_NUMBER", "cardNumber: must contain digits"),
        (b"+64221231235,1001,1111", "MISSING_FIELD", "message: the row has no message column"),
        (b"+64221231235,1001,1111,hi,there", "EXTRA_FIELDS", "row: 1 field(s) more than"),
        (b"Bob,card,,hi", "INVALID_RECIPIENT", "; cardNumber: must contain digits only; pin: "),
    ],
    ids=[
        "short-phone",
        "not-a-phone",
        "australian",
        "message-101",
        "no-pin",
        "letter-in-pin",
        "letter-in-card",
        "too-few-fields",
        "too-many-fields",
        "three-problems",
    ],
)
def test_a_row_breaking_a_rule_is_stored_invalid_with_its_code_and_detail(
    settings: Settings, vault: Vault, row: bytes, code: str, detail: str
) -> None:
    result = upload(settings, vault, GOOD_ROW + row + b"\n")
    assert result.counts == {"pending": 1, "invalid": 1, "duplicate": 0}
    assert result.problems[0].line == 2
    good, bad = stored_rows(settings, result.batch_id)
    assert (good.state, bad.state, bad.error_code) == ("pending", "invalid", code)
    assert bad.error_detail is not None
    assert detail in bad.error_detail
    assert bad.recipient is None
    assert bad.pin_enc is None


@pytest.mark.parametrize(
    ("row", "recipient"),
    [
        (b"021 123 1235,1001,1111,hi", "+64211231235"),
        (b"+64 22 123 1235,1001,1111," + b"m" * 100, "+64221231235"),
        (b"alice@example.com,1001,,hi", "alice@example.com"),
    ],
    ids=["local-nz-number", "message-of-100", "email-without-pin"],
)
def test_a_row_within_the_rules_is_pending_with_its_recipient_normalised(
    settings: Settings, vault: Vault, row: bytes, recipient: str
) -> None:
    result = upload(settings, vault, GOOD_ROW + row + b"\n", pin_required=False)
    assert result.counts["pending"] == 2
    assert stored_rows(settings, result.batch_id)[1].recipient == recipient


def test_an_unknown_type_or_issuer_column_value_makes_the_row_invalid(
    settings: Settings, vault: Vault
) -> None:
    data = (
        b"recipientAlias,cardNumber,pin,message,type,issuer\n"
        b"+64221231234,1001,1111,hi,epay.nzd.test,ezipay\n"
        b"+64221231235,1002,1111,hi,epay.nzd.gold,\n"
        b"+64221231236,1003,1111,hi,,acme\n"
    )
    result = upload(settings, vault, data)
    assert [(p.line, p.field, p.code) for p in result.problems] == [
        (3, "type", "INVALID_TYPE"),
        (4, "issuer", "INVALID_ISSUER"),
    ]
    assert stored_rows(settings, result.batch_id)[0].asset_type == "epay.nzd.test"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "the file is empty"),
        (b"\n\r\n,,,\n", "the file is empty"),
        (HEADER, "the file has a header but no rows"),
        (b"\x00\x01\x02\x03binary\xff", "line 1: binary data"),
        (HEADER + GOOD_ROW + b"+64221231235,1002,1111,caf\xe9\n", "line 3: not UTF-8 (byte 0xe9"),
        (HEADER + b'+64221231234,1001,1111,"never closed\n' + GOOD_ROW, "line 2: not valid CSV"),
        (b"recipientAlias;cardNumber;pin;message\n", "separated by semicolons"),
        (b"<html>\n<body>cards</body>\n", "line 1: one column where a CSV of"),
    ],
    ids=[
        "empty",
        "blank-lines",
        "header-only",
        "binary",
        "latin-1",
        "open-quote",
        "semicolons",
        "html",
    ],
)
def test_a_file_that_is_not_a_csv_of_cards_is_rejected_and_nothing_is_stored(
    settings: Settings, vault: Vault, data: bytes, says: str
) -> None:
    assert says in str(rejection(settings, vault, data))
    assert stored_totals(settings) == (0, 0)


def test_a_file_of_only_invalid_rows_is_rejected_whole_naming_its_first_problems(
    settings: Settings, vault: Vault
) -> None:
    data = HEADER + b"Bob,1001,1111,hi\n+64221231234,12a,1111,hi\n"
    message = str(rejection(settings, vault, data))
    assert message.startswith("no valid row to send: 2 invalid, 0 duplicate.")
    assert "line 2, recipientAlias: not a phone number or email address" in message
    assert "line 3, cardNumber: must contain digits only" in message
    assert stored_totals(settings) == (0, 0)


def test_a_problem_late_in_a_long_file_stores_none_of_the_earlier_chunks(
    settings: Settings, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("distributor.ingest.upload.INSERT_CHUNK_ROWS", 10)
    rows = b"".join(b"+642212%05d,%d,1111,hi\n" % (i, 5000 + i) for i in range(95))
    assert "line 96: not UTF-8" in str(rejection(settings, vault, rows + b"\xff\n"))
    assert stored_totals(settings) == (0, 0)


def test_more_rows_than_the_limit_is_rejected(settings: Settings, vault: Vault) -> None:
    rows = b"".join(b"+642212%05d,%d,1111,hi\n" % (i, 5000 + i) for i in range(4))
    error = rejection(settings, vault, HEADER + rows, max_rows=3)
    assert str(error) == "line 5: the file has more than 3 rows; split it into smaller files"
    assert stored_totals(settings) == (0, 0)
    assert upload(settings, vault, HEADER + rows, max_rows=4).counts["pending"] == 4


def test_invalid_batch_options_are_rejected(settings: Settings, vault: Vault) -> None:
    options = BatchOptions(name="x", asset_type="epay.nzd.gold", issuer="ezipay")
    with pytest.raises(UploadRejected, match="type must be one of"):
        upload(settings, vault, GOOD_ROW, options=options)


def test_the_same_card_twice_in_a_file_is_a_duplicate_even_across_chunks(
    settings: Settings, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("distributor.ingest.upload.INSERT_CHUNK_ROWS", 2)
    data = (
        b"+64221231234,2340-3321-042,1111,a\n"
        b"+64221231235,7777,1111,b\n"
        b"+64221231236,7778,1111,c\n"
        b"+64221231237,23403321042,2222,d\n"
        b"+64221231238,7778,1111,e\n"
    )
    result = upload(settings, vault, data)
    assert [(p.line, p.code, p.message) for p in result.problems] == [
        (4, "DUPLICATE_IN_FILE", "the same card as line 1"),
        (5, "DUPLICATE_IN_FILE", "the same card as line 3"),
    ]
    duplicate = stored_rows(settings, result.batch_id)[3]
    assert (duplicate.state, duplicate.pin_enc, duplicate.card_masked) == (
        "duplicate",
        None,
        "*******21042",
    )


def test_the_same_card_of_another_type_is_not_a_duplicate(settings: Settings, vault: Vault) -> None:
    data = (
        b"recipientAlias,cardNumber,pin,type\n"
        b"+64221231234,1001,1111,epay.nzd.main\n"
        b"+64221231235,1001,1111,epay.nzd.test\n"
    )
    assert upload(settings, vault, data).counts["pending"] == 2


def test_a_card_live_in_another_batch_is_a_duplicate_naming_that_batch(
    settings: Settings, vault: Vault
) -> None:
    first = upload(settings, vault, GOOD_ROW)
    second = upload(settings, vault, b"+64220000000,2222,1111,new\n+64221231239,23403321042,9,x\n")
    assert second.counts == {"pending": 1, "invalid": 0, "duplicate": 1}
    assert second.problems[0].code == "DUPLICATE_LIVE"
    assert second.problems[0].message == (
        f"the card is already live in batch {first.batch_id} (line 1)"
    )


def test_uploading_the_same_file_again_is_rejected_as_all_duplicates(
    settings: Settings, vault: Vault
) -> None:
    data = (CSV_DIR / "three_cards.csv").read_bytes()
    upload(settings, vault, data)
    message = str(rejection(settings, vault, data))
    assert message.startswith("no valid row to send: 0 invalid, 3 duplicate.")
    assert stored_totals(settings) == (1, 3)


@pytest.mark.parametrize("earlier_state", [RowState.FAILED, RowState.CANCELLED])
def test_a_card_of_a_row_no_longer_live_in_an_earlier_batch_can_be_uploaded_again(
    settings: Settings, vault: Vault, earlier_state: RowState
) -> None:
    first = upload(settings, vault, GOOD_ROW)
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Row).where(Row.batch_id == first.batch_id).values(state=earlier_state)
        )
    assert upload(settings, vault, GOOD_ROW).counts["pending"] == 1


@pytest.mark.parametrize("live_state", [RowState.LOADED, RowState.SENT])
def test_a_card_in_any_live_state_blocks_a_new_upload(
    settings: Settings, vault: Vault, live_state: RowState
) -> None:
    first = upload(settings, vault, GOOD_ROW)
    with session_scope(settings.database_url) as session:
        session.execute(update(Row).where(Row.batch_id == first.batch_id).values(state=live_state))
    assert "1 duplicate" in str(rejection(settings, vault, GOOD_ROW))


def test_a_card_live_under_the_previous_secret_is_still_a_duplicate_after_rotation(
    settings: Settings, vault: Vault
) -> None:
    upload(settings, vault, GOOD_ROW)
    assert settings.distributor_secret_key is not None
    rotated = make_vault(
        "a-new-secret-key-0123456789abcdef-0123",
        (settings.distributor_secret_key.get_secret_value(),),
    )
    result = upload(settings, rotated, GOOD_ROW + b"+64221231235,5555,1111,x\n")
    assert [p.code for p in result.problems] == ["DUPLICATE_LIVE"]


def test_raw_database_columns_hold_no_plaintext_pin_or_card_number(
    settings: Settings, vault: Vault
) -> None:
    data = (
        b"+64221231234,4000123498765,908172,valid\n"
        b"Bob,4000123498766,908173,invalid recipient\n"
        b"+64221231235,4000123498765,908174,duplicate\n"
        b"+64221231236,40001234987x7,908175,invalid card\n"
    )
    result = upload(settings, vault, data)
    assert result.counts == {"pending": 1, "invalid": 2, "duplicate": 1}
    with session_scope(settings.database_url) as session:
        dumped = "\n".join(session.scalars(text("SELECT r::text FROM rows r")))
        pins = session.execute(text("SELECT state, pin_enc IS NULL FROM rows ORDER BY line_no"))
        assert list(pins) == [
            ("pending", False),
            ("invalid", True),
            ("duplicate", True),
            ("invalid", True),
        ]
    for secret in ("4000123498765", "4000123498766", "40001234987x7", "908172", "908173"):
        assert secret not in dumped
        assert secret.encode().hex() not in dumped
    assert "*******98765" in dumped


def test_problems_returned_are_capped_but_every_row_is_counted(
    settings: Settings, vault: Vault
) -> None:
    bad = b"".join(b"Bob,%d,1111,hi\n" % (1000 + i) for i in range(60))
    result = upload(settings, vault, GOOD_ROW + bad)
    assert result.counts["invalid"] == 60
    assert len(result.problems) == 50


def _wait_until_blocked_on_a_lock(admin_dsn: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()
        if waiting and waiting[0]:
            return
        time.sleep(0.05)
    raise AssertionError("the second upload never waited on the first")


def test_a_concurrent_upload_of_the_same_card_ends_in_a_conflict_storing_nothing(
    settings: Settings, vault: Vault
) -> None:
    outcome: list[BaseException] = []

    def second_upload() -> None:
        try:
            upload(settings, vault, b"+64220000000,2222,1111,other\n" + GOOD_ROW)
        except BaseException as exc:
            outcome.append(exc)

    with session_scope(settings.database_url) as session:
        ingest_csv(
            io.BytesIO(GOOD_ROW),
            session=session,
            vault=vault,
            options=OPTIONS,
            max_rows=10,
            pin_required=True,
        )
        racer = threading.Thread(target=second_upload)
        racer.start()
        url = make_url(settings.database_url).set(drivername="postgresql")
        _wait_until_blocked_on_a_lock(url.render_as_string(hide_password=False))
    racer.join(timeout=10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], Conflict)
    assert str(outcome[0]).startswith("another upload took the card on line 2 while")
    assert stored_totals(settings) == (1, 1)
