"""A corrections file: which rows of a batch to resend, and to whom.

The columns are ``line,recipientAlias[,message]`` in a header row (any order and case):
``line`` is the row's line in the uploaded file, as the report shows it. The file is read
like an upload (UTF-8, normal CSV quoting) and each recipient and message is checked by
the upload's rules, so a resend goes only where an upload could have sent. Any problem
refuses the whole file, naming its line: nothing is resent from a file half right. An
empty message keeps the row's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from distributor.errors import UploadRejected
from distributor.ingest import columns as col
from distributor.ingest.columns import clean
from distributor.ingest.parse import read_records
from distributor.ingest.validate import Problem, check_message, check_recipient
from distributor.pipeline.resend import NewRecipient

LINE = "line"
COLUMNS = (LINE, col.RECIPIENT, col.MESSAGE)
REQUIRED = (LINE, col.RECIPIENT)


@dataclass(frozen=True, kw_only=True)
class Correction:
    """One row to resend: its line in the uploaded file and where it goes now."""

    line: int
    to: NewRecipient
    at: int
    """The corrections file's own line, for messages."""


def new_recipient(raw_recipient: str, message: str | None) -> NewRecipient:
    """A recipient and message checked by the upload rules; UploadRejected if either fails."""
    checked = check_recipient(clean(raw_recipient))
    if isinstance(checked, Problem):
        raise UploadRejected(f"{checked.field}: {checked.message}")
    if message:
        problem = check_message(message)
        if problem is not None:
            raise UploadRejected(f"{problem.field}: {problem.message}")
    return NewRecipient(
        recipient=checked.value, recipient_masked=checked.masked, message=message or None
    )


def read_corrections(stream: BinaryIO, *, max_rows: int) -> list[Correction]:
    """Every correction of the file; UploadRejected (naming the line) at the first problem."""
    records = read_records(stream)
    header = next(records, None)
    if header is None:
        raise UploadRejected("the file is empty")
    by_name = {name.lower(): name for name in COLUMNS}
    names = [by_name.get(clean(cell).lower(), "") for cell in header.fields]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise UploadRejected(
            f"the header must name {', '.join(COLUMNS)}; missing {', '.join(missing)}", line=1
        )
    corrections: list[Correction] = []
    seen: set[int] = set()
    for record in records:
        if len(corrections) >= max_rows:
            raise UploadRejected(f"more than {max_rows} corrections", line=record.line)
        values = {name: cell for name, cell in zip(names, record.fields, strict=False) if name}
        line = clean(values.get(LINE, ""))
        if not line.isdigit() or not line.isascii() or int(line) in seen:
            raise UploadRejected("line: not a line number, or one named twice", line=record.line)
        try:
            to = new_recipient(values.get(col.RECIPIENT, ""), values.get(col.MESSAGE) or None)
        except UploadRejected as problem:
            raise UploadRejected(str(problem), line=record.line) from None
        seen.add(int(line))
        corrections.append(Correction(line=int(line), to=to, at=record.line))
    if not corrections:
        raise UploadRejected("the file has no correction")
    return corrections
