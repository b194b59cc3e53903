"""Report cells: plain text, ISO 8601 UTC times, formulas neutralised as OWASP advises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from distributor.report import Cell, safe_cell

NZDT = timezone(timedelta(hours=13))


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, ""),
        ("", ""),
        ("sent", "sent"),
        ("*******21042", "*******21042"),
        ("b***@example.com", "b***@example.com"),
        (0, "0"),
        (3, "3"),
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+64*****1234", "'+64*****1234"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+2", "'\t=1+2"),
        ("\r=1+2", "'\r=1+2"),
        (-1, "'-1"),
        ("a=1+2", "a=1+2"),
        (" =1+2", " =1+2"),
        ("'=1+2", "'=1+2"),
        ("line one\n=1+2", "line one\n=1+2"),
        ('say "hi", then go', 'say "hi", then go'),
        (datetime(2026, 11, 21, 12, 23, 32, 999, tzinfo=UTC), "2026-11-21T12:23:32Z"),
        (datetime(2026, 11, 22, 1, 23, 32, tzinfo=NZDT), "2026-11-21T12:23:32Z"),
        (datetime(2026, 11, 21, 12, 23, 32), "2026-11-21T12:23:32Z"),
    ],
)
def test_a_value_becomes_a_cell_a_spreadsheet_shows_as_text(value: Cell, cell: str) -> None:
    assert safe_cell(value) == cell
