"""Which field of a record is which column: a header row by name, or the seed's fixed order.

Pure. A header is recognised by its names (any case, any order); without one, the
columns are ``recipientAlias,cardNumber,pin,message`` as in Centrapay's example.
"""

from __future__ import annotations

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

_BY_LOWER = {name.lower(): name for name in POSITIONAL_COLUMNS + OPTIONAL_COLUMNS}


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
            name: value.strip()
            for name, value in zip(self.names, record.fields, strict=False)
            if name != IGNORED
        }
        missing = tuple(name for name in self.names[len(record.fields) :] if name != IGNORED)
        extra = [value for value in record.fields[len(self.names) :] if value.strip()]
        return values, missing, len(extra)


def _header_names(record: RawRecord) -> tuple[str, ...]:
    names: list[str] = []
    for cell in record.fields:
        label = cell.strip()
        if not label:
            names.append(IGNORED)
            continue
        name = _BY_LOWER.get(label.lower())
        if name is None:
            expected = ", ".join(POSITIONAL_COLUMNS + OPTIONAL_COLUMNS)
            raise UploadRejected(
                f"unknown column {label!r} in the header; columns are {expected}",
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
    if any(cell.strip().lower() in _BY_LOWER for cell in first.fields):
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
