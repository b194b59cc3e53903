"""The streaming reader: records, the lines they start on, and files refused whole."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from distributor.errors import UploadRejected
from distributor.ingest.parse import MAX_LINE_BYTES, RawRecord, read_records

CSV_DIR = Path(__file__).parents[2] / "data" / "csv"


def records(data: bytes) -> list[RawRecord]:
    return list(read_records(io.BytesIO(data)))


def rejection(data: bytes) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        records(data)
    return caught.value


def test_each_record_carries_the_line_it_starts_on() -> None:
    assert records(b"a,b\nc,d\n") == [RawRecord(1, ["a", "b"]), RawRecord(2, ["c", "d"])]


def test_quoted_commas_quotes_and_newlines_stay_in_their_field() -> None:
    data = b'x,"Hello, ""Bob""\nsee you",y\nnext,row,z\n'
    assert records(data) == [
        RawRecord(1, ["x", 'Hello, "Bob"\nsee you', "y"]),
        RawRecord(3, ["next", "row", "z"]),
    ]


def test_line_numbers_count_physical_lines_after_an_embedded_crlf() -> None:
    data = b'a,"one\r\ntwo\r\nthree",b\r\nc,d,e\r\n'
    assert [record.line for record in records(data)] == [1, 4]


def test_a_utf8_bom_is_dropped_and_crlf_is_accepted() -> None:
    assert records(b"\xef\xbb\xbfrecipientAlias,pin\r\nx,1\r\n") == [
        RawRecord(1, ["recipientAlias", "pin"]),
        RawRecord(2, ["x", "1"]),
    ]


def test_blank_lines_and_rows_of_empty_cells_are_skipped_but_counted() -> None:
    assert records(b"a,b\n\n,,\n \n c,d\n") == [RawRecord(1, ["a", "b"]), RawRecord(5, [" c", "d"])]


def test_non_ascii_text_is_read_as_utf8() -> None:
    assert records("Kia ora, Māui ✨\n".encode()) == [RawRecord(1, ["Kia ora", " Māui ✨"])]


def test_the_excel_sample_file_reads_with_its_multiline_message() -> None:
    with (CSV_DIR / "excel_bom_crlf.csv").open("rb") as stream:
        lines = [record.line for record in read_records(stream)]
    assert lines == [1, 2, 3, 4, 6]


def test_an_empty_file_has_no_records() -> None:
    assert records(b"") == []


@pytest.mark.parametrize(
    ("data", "line", "says"),
    [
        (b"a,b\nc,caf\xe9\n", 2, "not UTF-8 (byte 0xe9 at position 6)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 1, "not UTF-8 (byte 0x89 at position 1)"),
        (b"a,b\nc\x00d\n", 2, "binary data (a NUL byte at position 2)"),
        (b"PK\x03\x04\x14\x00\x06\x00", 1, "the file is a workbook or zip"),
        ("a,b\n".encode("utf-16"), 1, "the file is UTF-16"),
        (b'a,b\nc,"never closed\nd,e\n', 2, "a quoted field is never closed"),
        (b'a,"b"c\n', 1, "text after a closing quote"),
        (b"a,b\rc,d\r", 1, "bare carriage return"),
        (b"a" * (MAX_LINE_BYTES + 1), 1, f"longer than {MAX_LINE_BYTES} bytes"),
    ],
    ids=[
        "latin-1",
        "png",
        "nul",
        "xlsx",
        "utf-16",
        "open-quote",
        "quote-then-text",
        "cr-only",
        "huge",
    ],
)
def test_a_file_that_is_not_utf8_csv_is_refused_with_its_line(
    data: bytes, line: int, says: str
) -> None:
    error = rejection(data)
    assert error.line == line
    assert says in str(error)
