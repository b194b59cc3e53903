"""A streaming CSV reader: bytes in, one raw record at a time out, each with its line number.

Pure: no database, no validation. The stream is decoded one physical line at a time so
that a byte that is not UTF-8 can be reported by line and position, then handed to the
``csv`` module (real quoting: commas, doubled quotes and newlines inside quoted fields).
Nothing is held beyond the current record.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from distributor.errors import UploadRejected

MAX_LINE_BYTES = 64 * 1024  # no line of a giftcard file comes near; a binary blob does
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
ZIP_MAGIC = b"PK\x03\x04"  # .xlsx and .ods workbooks are zip files
BARE_CR = "a bare carriage return ends a line; save the file as CSV with CRLF or LF line endings"
CSV_ERRORS = {
    "unexpected end of data": "a quoted field is never closed",
    "',' expected after '\"'": 'text after a closing quote (write a quote inside a field as "")',
    "new-line character seen in unquoted field": BARE_CR,
    f"field larger than field limit ({csv.field_size_limit()})": (
        f"a field is longer than {csv.field_size_limit()} characters (is a quote left open?)"
    ),
}


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One CSV record as text fields, and the physical line (1-based) it starts on."""

    line: int
    fields: list[str]

    def is_blank(self) -> bool:
        """True for an empty line or a line of empty fields (``,,,`` from a spreadsheet)."""
        return all(not field.strip() for field in self.fields)


def _looks_utf16(raw: bytes) -> bool:
    """True for a line of UTF-16 text: a BOM, or ASCII with every other byte NUL."""
    text = raw.rstrip(b"\r\n")
    return raw.startswith(UTF16_BOMS) or (
        len(text) >= 2 and (not any(text[0::2]) or not any(text[1::2]))
    )


def _decode(raw: bytes, line: int) -> str:
    if line == 1 and raw.startswith(ZIP_MAGIC):
        raise UploadRejected("the file is a workbook or zip; save it as CSV UTF-8", line=line)
    if b"\0" in raw:
        if line == 1 and _looks_utf16(raw):
            raise UploadRejected("the file is UTF-16; save it as CSV UTF-8", line=line)
        position = raw.index(b"\0") + 1
        raise UploadRejected(
            f"binary data (a NUL byte at position {position}); expected a CSV file", line=line
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        raise UploadRejected(
            f"not UTF-8 (byte 0x{bad:02x} at position {exc.start + 1}); save the file as CSV UTF-8",
            line=line,
        ) from None


def text_lines(stream: BinaryIO) -> Iterator[str]:
    """The stream's physical lines decoded as UTF-8 (a leading BOM dropped), endings kept."""
    line = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        line += 1
        if len(raw) > MAX_LINE_BYTES:
            if b"\r" in raw.rstrip(b"\r"):  # lines ended by CR alone read as one line
                raise UploadRejected(f"not valid CSV: {BARE_CR}", line=line)
            raise UploadRejected(
                f"longer than {MAX_LINE_BYTES} bytes; expected a CSV file of giftcards",
                line=line,
            )
        if line == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        yield _decode(raw, line)


def read_records(stream: BinaryIO) -> Iterator[RawRecord]:
    """Each non-blank CSV record of ``stream`` with the line it starts on.

    Raises UploadRejected (with the line) for bytes that are not UTF-8, binary data, or
    quoting the csv module cannot make sense of.
    """
    reader = csv.reader(text_lines(stream), strict=True)
    lines_read = 0
    while True:
        start = lines_read + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = str(exc).split(" - ")[0]
            raise UploadRejected(
                f"not valid CSV: {CSV_ERRORS.get(reason, reason)}", line=start
            ) from None
        lines_read = reader.line_num
        record = RawRecord(start, fields)
        if not record.is_blank():
            yield record
