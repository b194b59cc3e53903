"""The batch report: one CSV line per input row, masked, safe to open in a spreadsheet.

Only masked columns are read from the database (never ``recipient``, ``card_number_enc``
or ``pin_enc``); ``earlier_transfers`` lists the transfers a row had before a resend
(``row_transfers``, masked recipients only). Rows are fetched ``REPORT_CHUNK_ROWS`` at a
time, so a batch of 100k rows is never held in memory whole.

Every cell follows OWASP's CSV-injection guidance: a cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading single quote, so a spreadsheet
shows it as text instead of running it as a formula. Masked phone numbers
(``'+64*****1234``) carry the quote too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.batches import get_batch
from distributor.delivery import delivery_column
from distributor.models import Row, RowTransfer
from distributor.pipeline.resend import earlier_transfers

REPORT_CHUNK_ROWS = 1_000  # rows fetched from the database at a time

HEADER = (
    "line",
    "recipient",
    "card",
    "state",
    "delivery",
    "asset_id",
    "transfer_id",
    "transfer_status",
    "error_code",
    "error_detail",
    "attempts",
    "created_at",
    "loaded_at",
    "sent_at",
    "updated_at",
    "earlier_transfers",
)

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP)."""

Cell = str | int | datetime | None
"""What a report column holds before it becomes text."""

_COLUMNS = (
    Row.line_no,
    Row.recipient_masked,
    Row.card_masked,
    Row.state,
    delivery_column().label("delivery"),
    Row.asset_id,
    Row.transfer_id,
    Row.transfer_status,
    Row.error_code,
    Row.error_detail,
    (Row.load_attempts + Row.transfer_attempts).label("attempts"),
    Row.created_at,
    Row.loaded_at,
    Row.sent_at,
    Row.updated_at,
    Row.id,
)


def _utc_iso(moment: datetime) -> str:
    # SQLite hands back naive datetimes; everything this project stores is UTC.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def safe_cell(value: Cell) -> str:
    """A value as report text: empty for None, ISO 8601 UTC for a time, formula-neutralised."""
    if value is None:
        return ""
    text = _utc_iso(value) if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _chunks(session: Session, *, batch_id: int) -> Iterator[list[list[str]]]:
    query = (
        select(*_COLUMNS)
        .where(Row.batch_id == batch_id)
        .order_by(Row.line_no, Row.id)
        .execution_options(yield_per=REPORT_CHUNK_ROWS)
    )
    for partition in session.execute(query).partitions():
        earlier = earlier_transfers(session, [record[-1] for record in partition])
        yield [
            [safe_cell(value) for value in record[:-1]]
            + [safe_cell(_earlier_cell(earlier.get(record[-1], [])))]
            for record in partition
        ]


def _earlier_cell(transfers: list[RowTransfer]) -> str:
    """``id status recipient`` of each transfer before a resend, oldest first, ``; `` apart."""
    return "; ".join(
        " ".join(
            part or "none"
            for part in (
                earlier.transfer_id,
                earlier.transfer_status or earlier.error_code,
                earlier.recipient_masked,
            )
        )
        for earlier in transfers
    )


def write_report(session: Session, *, batch_id: int, out: TextIO) -> int:
    """Write the batch's report as CSV to ``out``; the number of rows written.

    Raises NotFound for an unknown batch before writing anything. Open a file for
    ``out`` with ``newline=""``, as the csv module asks.
    """
    get_batch(session, batch_id)
    writer = csv.writer(out)
    writer.writerow(HEADER)
    written = 0
    for chunk in _chunks(session, batch_id=batch_id):
        writer.writerows(chunk)
        written += len(chunk)
    return written


def report_pieces(session: Session, *, batch_id: int) -> Iterator[str]:
    """The batch's report as CSV text: the header, then one piece per chunk of rows.

    For a streamed answer: raises NotFound for an unknown batch when first advanced.
    """
    get_batch(session, batch_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    yield _drain(buffer)
    for chunk in _chunks(session, batch_id=batch_id):
        writer.writerows(chunk)
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
