"""Which field of a record is which column: a header row by name, or the seed's fixed order.

Pure. A header is recognised by its names (any case, any order); without one, the
columns are ``recipientAlias,cardNumber,pin,message`` as in Centrapay's example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distributor.errors import UploadRejected
from distributor.ingest.parse import RawRecord

RECIPIENT = "recipientAlias"
CARD_NUMBER = "cardNumber"
PIN = "pin"
MESSAGE = "message"
SENDER_NAME = "senderName"
DESCRIPTION = "description"
TYPE = "type"
ISSUER = "issuer"

POSITIONAL_COLUMNS = (RECIPIENT, CARD_NUMBER, PIN, MESSAGE)
OPTIONAL_COLUMNS = (SENDER_NAME, DESCRIPTION, TYPE, ISSUER)
REQUIRED_HEADER_COLUMNS = (RECIPIENT, CARD_NUMBER)
IGNORED = ""  # a blank header cell: its column is ignored
OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "pipes"}

BOM = "\ufeff"  # a byte order mark past the start (files joined together): invisible, dropped

_BY_LOWER = {name.lower(): name for name in POSITIONAL_COLUMNS + OPTIONAL_COLUMNS}


def clean(cell: str) -> str:
    """A cell without the whitespace and byte order marks around it."""
    return cell.strip().strip(BOM).strip()


_LABEL_LIKE = re.compile(r"[A-Za-z][A-Za-z _.-]{0,39}")  # letters only: never a card or phone


@dataclass(frozen=True)
class Layout:
    """The column name of each field position, and whether line 1 was a header."""

    names: tuple[str, ...]
    has_header: bool

    def split(self, record: RawRecord) -> tuple[dict[str, str], tuple[str, ...], int]:
        """The record's stripped values by column, the columns it lacks, and its extra fields.

        Extra fields that are blank (trailing commas from a spreadsheet) are not counted.
        """
        values = {
            name: clean(value)
            for name, value in zip(self.names, record.fields, strict=False)
            if name != IGNORED
        }
        missing = tuple(name for name in self.names[len(record.fields) :] if name != IGNORED)
        extra = [value for value in record.fields[len(self.names) :] if clean(value)]
        return values, missing, len(extra)


def _shown_label(label: str, position: int) -> str:
    """A header cell as quoted in an error: a cell that may be data (a card number, a
    phone, an email, when line 1 is a row whose message happens to be a column name) is
    named by its position only, since the message reaches the API, the CLI and logs."""
    if _LABEL_LIKE.fullmatch(label):
        return repr(label)
    return f"number {position} (a value, not a column name: is line 1 a row of data?)"


def _header_names(record: RawRecord) -> tuple[str, ...]:
    names: list[str] = []
    for cell in record.fields:
        label = clean(cell)
        if not label:
            names.append(IGNORED)
            continue
        name = _BY_LOWER.get(label.lower())
        if name is None:
            expected = ", ".join(POSITIONAL_COLUMNS + OPTIONAL_COLUMNS)
            raise UploadRejected(
                f"unknown column {_shown_label(label, len(names) + 1)} in the header; "
                f"columns are {expected}",
                line=record.line,
            )
        if name in names:
            raise UploadRejected(f"column {name} appears twice in the header", line=record.line)
        names.append(name)
    for required in REQUIRED_HEADER_COLUMNS:
        if required not in names:
            raise UploadRejected(f"the header has no {required} column", line=record.line)
    return tuple(names)


def detect_layout(first: RawRecord) -> Layout:
    """The layout announced by the file's first record: a header if it names any known column.

    Raises UploadRejected for a header with unknown, repeated or missing columns, and for
    a first line of a single column: not a CSV of cards, or not separated by commas.
    """
    if any(clean(cell).lower() in _BY_LOWER for cell in first.fields):
        return Layout(_header_names(first), has_header=True)
    if len(first.fields) == 1:
        for delimiter, called in OTHER_DELIMITERS.items():
            if delimiter in first.fields[0]:
                raise UploadRejected(
                    f"columns are separated by {called}; expected commas", line=first.line
                )
        raise UploadRejected(
            f"one column where a CSV of {','.join(POSITIONAL_COLUMNS)} was expected",
            line=first.line,
        )
    return Layout(POSITIONAL_COLUMNS, has_header=False)
