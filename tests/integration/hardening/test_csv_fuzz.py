"""Hypothesis on the CSV side: arbitrary bytes and arbitrary CSV-shaped text never make the
reader, the column detection or the row rules raise anything but UploadRejected, every
record carries its line (1 or more, in file order), and what would be stored fits its
column. Then ``ingest_csv`` on SQLite and on Postgres, for a few examples each.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import hypothesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from distributor.config import Settings
from distributor.errors import UploadRejected
from distributor.ingest import BatchOptions
from distributor.ingest import columns as col
from distributor.ingest.columns import detect_layout
from distributor.ingest.parse import RawRecord, read_records
from distributor.ingest.validate import CheckedRow, check_record
from distributor.vault import make_vault
from tests.conftest import TEST_SECRET_KEY
from tests.factories import ingest_bytes
from tests.integration.hardening.hardening_helpers import stored

OPTIONS = BatchOptions(name="fuzz.csv", asset_type="epay.nzd.main", issuer="ezipay")
FIELDS = {*col.POSITIONAL_COLUMNS, *col.OPTIONAL_COLUMNS, "row"}
VAULT = make_vault(TEST_SECRET_KEY)
PURE = hypothesis.settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
STORED = hypothesis.settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

TRICKY = [
    "+64221231234",
    "021 123 1234",
    "bob@example.com",
    "23403321042",
    "2340-3321-042",
    "2.3e10",
    "23403321042.0",
    "-234",
    "\uff11\uff12\uff13",  # full-width digits
    "\u0660\u0662\u0661\u0661\u0662\u0663",  # Arabic-Indic digits
    "1111",
    "",
    " ",
    '"',
    '""',
    "\r",
    "\n",
    "\r\n",
    "\ufeff",
    '=HYPERLINK("http://x")',
    "<script>alert(1)</script>",
    "recipientAlias",
    "cardNumber",
    "PIN",
    " message ",
    "type",
    "issuer",
    "senderName",
    "description",
    "epay.nzd.test",
    "EZIPAY",
    "x" * 300,
]
cells = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=12),
    st.from_regex(r"\+?(64|0)2[0-9]{7,9}", fullmatch=True),
    st.from_regex(r"[0-9][0-9 -]{3,24}", fullmatch=True),
)
tables = st.lists(st.lists(cells, max_size=9), max_size=12)


@st.composite
def csv_shaped(draw: st.DrawFn) -> bytes:
    """Rows of tricky cells, written properly quoted or naively joined, with any header,
    separator, line ending and BOM."""
    table = draw(tables)
    if draw(st.booleans()):
        header = draw(st.permutations([*col.POSITIONAL_COLUMNS, *col.OPTIONAL_COLUMNS]))
        table = [header[: draw(st.integers(1, len(header)))], *table]
    separator = draw(st.sampled_from([",", ",", ";", "\t"]))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out, delimiter=separator, lineterminator=ending).writerows(table)
        text = out.getvalue()
    else:
        text = "".join(separator.join(row) + ending for row in table)
    return (draw(st.sampled_from(["", "\ufeff"])) + text).encode()


@st.composite
def card_files(draw: st.DrawFn) -> bytes:
    """Files of good rows with a tricky cell here and there: most are stored."""

    def cell(good: st.SearchStrategy[str]) -> str:
        return draw(good if draw(st.integers(0, 9)) else cells)  # one cell in ten tricky

    rows = [
        [
            cell(st.integers(0, 999).map(lambda n: f"+64221231{n:03d}")),
            cell(st.from_regex(r"[1-9][0-9]{7,15}", fullmatch=True)),
            cell(st.from_regex(r"[0-9]{4}", fullmatch=True)),
            cell(st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=20)),
        ]
        for _ in range(draw(st.integers(1, 8)))
    ]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    header = draw(st.sampled_from(["", "recipientAlias,cardNumber,pin,message\n"]))
    return (header + out.getvalue()).encode()


def _checked(data: bytes) -> Iterator[tuple[RawRecord, CheckedRow]]:
    records = read_records(io.BytesIO(data))
    first = next(records, None)
    if first is None:
        return
    layout = detect_layout(first)
    rows = records if layout.has_header else iter([first, *records])
    for record in rows:
        yield record, check_record(record, layout=layout, options=OPTIONS, pin_required=True)


def _assert_sound(data: bytes) -> None:
    previous = 0
    try:
        for record, row in _checked(data):
            assert row.line == record.line > previous >= 0
            previous = row.line
            assert all(problem.field in FIELDS for problem in row.problems)
            assert all(problem.message for problem in row.problems)
            assert row.recipient is None or len(row.recipient) <= 320
            assert row.recipient_masked is None or len(row.recipient_masked) <= 320
            assert row.card_masked is None or len(row.card_masked) <= 32
            if row.valid:
                assert row.card_number is not None
                assert row.card_number.isascii()
                assert row.card_number.isdigit()
                assert row.pin is not None
                assert row.pin.isascii()
                assert row.pin.isdigit()
                assert row.recipient is not None
                assert row.message is None or len(row.message) <= 100
    except UploadRejected:
        pass  # refused whole: the one exception allowed


@PURE
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_are_read_or_refused_with_upload_rejected(data: bytes) -> None:
    _assert_sound(data)


@PURE
@given(csv_shaped())
def test_arbitrary_csv_shaped_text_is_read_or_refused_with_upload_rejected(data: bytes) -> None:
    _assert_sound(data)


def _without(text: str, characters: str) -> str:
    return text.translate(dict.fromkeys(map(ord, characters)))


@PURE
@given(tables)
def test_well_quoted_csv_is_never_refused_by_the_reader_and_keeps_its_lines(
    table: list[list[str]],
) -> None:
    # refused on purpose: a bare CR, a NUL; dropped on purpose: a BOM starting line 1
    table = [[_without(cell, "\r\0\ufeff") for cell in row] for row in table]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(table)
    text = out.getvalue()
    expected: list[tuple[int, list[str]]] = []
    line = 1
    for row in table:
        written = io.StringIO()
        csv.writer(written, lineterminator="\n").writerow(row)
        if any(cell.strip() for cell in row):
            expected.append((line, row))
        line += written.getvalue().count("\n")
    records = list(read_records(io.BytesIO(text.encode())))
    assert [(record.line, record.fields) for record in records] == expected


def _ingest_or_refuse(database_url: str, data: bytes) -> None:
    """Ingest ``data``; a refusal must store nothing, a batch must have a row to send."""
    before = stored(database_url)
    try:
        result = ingest_bytes(database_url, data, vault=VAULT, options=OPTIONS, max_rows=50)
    except UploadRejected:
        assert stored(database_url) == before
    else:
        assert result.counts["pending"] >= 1
        assert all(problem.line >= 1 for problem in result.problems)
        batches, rows = stored(database_url)
        assert (batches, rows) == (before[0] + 1, before[1] + sum(result.counts.values()))


@STORED
@given(data=st.one_of(card_files(), card_files(), csv_shaped(), st.binary(max_size=500)))
def test_ingest_on_sqlite_stores_a_batch_or_refuses_and_stores_nothing(
    sqlite_url: str, data: bytes
) -> None:
    _ingest_or_refuse(sqlite_url, data)


@STORED
@given(data=st.one_of(card_files(), card_files(), csv_shaped(), st.binary(max_size=500)))
def test_ingest_on_postgres_stores_a_batch_or_refuses_and_stores_nothing(
    settings: Settings, data: bytes
) -> None:
    _ingest_or_refuse(settings.database_url, data)
