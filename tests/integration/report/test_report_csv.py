"""The report CSV read straight from Postgres: one masked line per row, in line order,
formula cells neutralised, streamed in chunks."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import insert

from distributor import report
from distributor.config import Settings
from distributor.constants import RowState
from distributor.db import session_scope
from distributor.errors import NotFound
from distributor.models import Row
from distributor.report import FORMULA_TRIGGERS, HEADER, report_pieces, write_report
from tests.factories import make_batch
from tests.integration.report.report_helpers import (
    EXPECTED,
    SECRETS,
    parse,
    without_database_times,
)

UTC_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _report(settings: Settings, batch_id: int) -> tuple[str, int]:
    out = io.StringIO(newline="")
    with session_scope(settings.database_url) as session:
        written = write_report(session, batch_id=batch_id, out=out)
    return out.getvalue(), written


def test_the_report_has_one_masked_line_per_row_in_line_order(
    settings: Settings, batch_id: int
) -> None:
    text, written = _report(settings, batch_id)
    assert text.startswith(",".join(HEADER) + "\r\n")
    assert written == len(EXPECTED)
    assert without_database_times(parse(text)) == EXPECTED


def test_a_card_known_transferred_whose_transfer_id_was_lost_says_so(
    settings: Settings,
) -> None:
    with session_scope(settings.database_url) as session:
        batch = make_batch(session)
        session.execute(
            insert(Row).values(
                batch_id=batch.id, line_no=1, state=RowState.SENT, asset_id="asset-a9"
            )
        )
        batch_id = batch.id
    text, _ = _report(settings, batch_id)
    (line,) = parse(text)
    assert (line["delivery"], line["transfer_id"]) == ("transferred, transfer id pending", "")


def test_every_row_has_its_creation_and_update_time_in_utc(
    settings: Settings, batch_id: int
) -> None:
    lines = parse(_report(settings, batch_id)[0])
    for line in lines:
        assert UTC_SECONDS.fullmatch(line["created_at"])
        assert UTC_SECONDS.fullmatch(line["updated_at"])


@pytest.mark.parametrize(("line", "trigger"), [(3, "="), (5, "@"), (6, "+"), (7, "-")])
def test_an_error_detail_that_starts_a_formula_gets_a_leading_quote(
    settings: Settings, batch_id: int, line: int, trigger: str
) -> None:
    detail = parse(_report(settings, batch_id)[0])[line - 1]["error_detail"]
    assert detail.startswith("'" + trigger)


def test_no_cell_of_the_report_starts_a_formula(settings: Settings, batch_id: int) -> None:
    for line in parse(_report(settings, batch_id)[0]):
        for cell in line.values():
            assert not cell.startswith(FORMULA_TRIGGERS), cell


def test_no_pin_card_number_or_clear_recipient_appears_in_the_report(
    settings: Settings, batch_id: int
) -> None:
    text, _ = _report(settings, batch_id)
    for secret in SECRETS:
        assert secret not in text


def test_an_unknown_batch_is_not_found_and_nothing_is_written(settings: Settings) -> None:
    out = io.StringIO()
    with session_scope(settings.database_url) as session, pytest.raises(NotFound):
        write_report(session, batch_id=999_999, out=out)
    assert out.getvalue() == ""


def test_a_batch_without_rows_is_the_header_alone(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        batch_id = make_batch(session).id
    assert _report(settings, batch_id) == (",".join(HEADER) + "\r\n", 0)


def test_a_batch_is_read_in_chunks_and_stays_in_line_order_across_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "REPORT_CHUNK_ROWS", 10)
    lines = 25
    with session_scope(settings.database_url) as session:
        batch_id = make_batch(session).id
        session.execute(
            insert(Row),
            [
                {
                    "batch_id": batch_id,
                    "line_no": line,
                    "state": RowState.PENDING,
                    "card_masked": f"*******{line:05d}",
                }
                for line in range(lines, 0, -1)
            ],
        )
    with session_scope(settings.database_url) as session:
        pieces = list(report_pieces(session, batch_id=batch_id))
    assert len(pieces) == 1 + 3  # the header, then one piece per chunk of 10 rows
    parsed = parse("".join(pieces))
    assert [line["line"] for line in parsed] == [str(n) for n in range(1, lines + 1)]
    assert _report(settings, batch_id)[0] == "".join(pieces)
