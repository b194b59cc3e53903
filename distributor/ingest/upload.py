"""``ingest_csv``: a CSV stream becomes a stored batch, a chunk of rows at a time.

parse -> columns -> validate -> duplicates -> store, all in the caller's transaction: a
file rejected at any point (``UploadRejected``, ``Conflict``) stores nothing once the
caller rolls back (``db.session_scope`` does). At most one chunk of rows
(``INSERT_CHUNK_ROWS``) is held in memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.constants import INSERT_CHUNK_ROWS, RowState
from distributor.errors import Conflict, UploadRejected
from distributor.ingest import columns as col
from distributor.ingest import store
from distributor.ingest.columns import Layout, detect_layout
from distributor.ingest.parse import RawRecord, read_records
from distributor.ingest.validate import CheckedRow, Problem, check_record
from distributor.ingest.values import BatchOptions, IngestResult, RowProblem
from distributor.vault import Vault

logger = logging.getLogger(__name__)

PROBLEMS_KEPT = 50  # problems returned with the result
PROBLEMS_IN_REJECTION = 5  # problems quoted in the message of a file with no valid row
DUPLICATE_IN_FILE = "DUPLICATE_IN_FILE"
DUPLICATE_LIVE = "DUPLICATE_LIVE"


@dataclass
class _Tally:
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (RowState.PENDING, RowState.INVALID, RowState.DUPLICATE), 0
        )
    )
    problems: list[RowProblem] = field(default_factory=list)
    total: int = 0

    def add(self, line: int, state: RowState, problems: Iterable[Problem]) -> None:
        self.total += 1
        self.counts[state] += 1
        for problem in problems:
            if len(self.problems) < PROBLEMS_KEPT:
                self.problems.append(
                    RowProblem(
                        line=line, field=problem.field, code=problem.code, message=problem.message
                    )
                )


def _limited(records: Iterator[RawRecord], max_rows: int) -> Iterator[RawRecord]:
    for count, record in enumerate(records, start=1):
        if count > max_rows:
            raise UploadRejected(
                f"the file has more than {max_rows} rows; split it into smaller files",
                line=record.line,
            )
        yield record


def _chunks(records: Iterator[RawRecord]) -> Iterator[list[RawRecord]]:
    while chunk := list(itertools.islice(records, INSERT_CHUNK_ROWS)):
        yield chunk


def _data_records(stream: BinaryIO) -> tuple[Layout, Iterator[RawRecord]]:
    records = read_records(stream)
    first = next(records, None)
    if first is None:
        raise UploadRejected("the file is empty")
    layout = detect_layout(first)
    return layout, records if layout.has_header else itertools.chain([first], records)


def _row_values(
    checked: CheckedRow,
    *,
    batch_id: int,
    state: RowState,
    problems: tuple[Problem, ...],
    card_key: str | None,
    vault: Vault,
) -> dict[str, Any]:
    """The columns of one row; the PIN and the recipient in clear only for a row to send."""
    sendable = state == RowState.PENDING
    return {
        "batch_id": batch_id,
        "line_no": checked.line,
        "state": state,
        "recipient": checked.recipient if sendable else None,
        "recipient_masked": checked.recipient_masked,
        "card_key": card_key,
        "card_number_enc": vault.encrypt(checked.card_number) if checked.card_number else None,
        "card_masked": checked.card_masked,
        "pin_enc": vault.encrypt(checked.pin) if sendable and checked.pin else None,
        "message": checked.message,
        "sender_name": checked.sender_name,
        "description": checked.description,
        "asset_type": checked.asset_type,
        "issuer": checked.issuer,
        "error_code": problems[0].code if problems else None,
        "error_detail": "; ".join(f"{p.field}: {p.message}" for p in problems) or None,
    }


def _card_keys(checked: CheckedRow, vault: Vault) -> tuple[str, ...]:
    assert checked.card_number is not None
    assert checked.asset_type is not None
    assert checked.issuer is not None
    return vault.card_keys(
        issuer=checked.issuer, asset_type=checked.asset_type, card_number=checked.card_number
    )


def _duplicate_problem(
    *, holder: store.Holder | None, first_line: int | None, batch_id: int
) -> Problem | None:
    """Why a valid row is a duplicate: its card is live elsewhere, or earlier in this file."""
    if holder is not None and holder.batch_id != batch_id:
        return Problem(
            col.CARD_NUMBER,
            DUPLICATE_LIVE,
            f"the card is already live in batch {holder.batch_id} (line {holder.line})",
        )
    if holder is not None:
        first_line = holder.line
    if first_line is not None:
        return Problem(col.CARD_NUMBER, DUPLICATE_IN_FILE, f"the same card as line {first_line}")
    return None


def _classify_chunk(
    chunk: list[CheckedRow], *, session: Session, vault: Vault, batch_id: int, tally: _Tally
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The rows of one chunk ready to insert, and the line of each card key made pending.

    Cards already pending from earlier chunks of this file are found in the database,
    in this transaction, like cards of other batches; within the chunk, by ``pending``.
    """
    keys = {checked.line: _card_keys(checked, vault) for checked in chunk if checked.valid}
    holders = store.live_holders(session, card_keys=itertools.chain.from_iterable(keys.values()))
    pending: dict[str, int] = {}
    rows = []
    for checked in chunk:
        problems = checked.problems
        card_keys = keys.get(checked.line, ())
        current_key = card_keys[0] if card_keys else None
        if problems:
            state = RowState.INVALID
        else:
            assert current_key is not None
            duplicate = _duplicate_problem(
                holder=next((holders[key] for key in card_keys if key in holders), None),
                first_line=pending.get(current_key),
                batch_id=batch_id,
            )
            if duplicate is None:
                state = RowState.PENDING
                pending[current_key] = checked.line
            else:
                state = RowState.DUPLICATE
                problems = (duplicate,)
        tally.add(checked.line, state, problems)
        rows.append(
            _row_values(
                checked,
                batch_id=batch_id,
                state=state,
                problems=problems,
                card_key=current_key,
                vault=vault,
            )
        )
    return rows, pending


def _race_lost(exc: IntegrityError, pending: dict[str, int]) -> Conflict:
    key = store.taken_card_key(exc)
    where = f"the card on line {pending[key]}" if key in pending else "a card"
    return Conflict(
        f"another upload took {where} while this file was being stored; nothing was stored. "
        "Upload the file again: that card will show as a duplicate."
    )


def _no_valid_row(tally: _Tally) -> UploadRejected:
    counts = tally.counts
    shown = "; ".join(str(problem) for problem in tally.problems[:PROBLEMS_IN_REJECTION])
    return UploadRejected(
        f"no valid row to send: {counts[RowState.INVALID]} invalid, "
        f"{counts[RowState.DUPLICATE]} duplicate. First problems: {shown}"
    )


def ingest_csv(
    stream: BinaryIO,
    *,
    session: Session,
    vault: Vault,
    options: BatchOptions,
    max_rows: int,
    pin_required: bool,
) -> IngestResult:
    """Parse, check and store an uploaded CSV as a new queued batch in ``session``'s transaction.

    Raises UploadRejected when the file as a whole is refused, and Conflict when another
    upload stored one of its cards meanwhile; either way the caller must roll back.
    """
    options.check()
    layout, records = _data_records(stream)
    batch = store.create_batch(session, options=options)
    tally = _Tally()
    for chunk in _chunks(_limited(records, max_rows)):
        checked = [
            check_record(record, layout=layout, options=options, pin_required=pin_required)
            for record in chunk
        ]
        rows, pending = _classify_chunk(
            checked, session=session, vault=vault, batch_id=batch.id, tally=tally
        )
        try:
            store.insert_rows(session, rows=rows)
        except IntegrityError as exc:
            if not store.is_live_card_clash(exc):
                raise
            raise _race_lost(exc, pending) from None
    if tally.total == 0:
        raise UploadRejected("the file has a header but no rows")
    if tally.counts[RowState.PENDING] == 0:
        raise _no_valid_row(tally)
    store.finish_batch(session, batch=batch, total_rows=tally.total)
    logger.info(
        "batch %s stored: %s rows (%s)",
        batch.id,
        tally.total,
        ", ".join(f"{state} {count}" for state, count in tally.counts.items()),
    )
    counts = {str(state): count for state, count in tally.counts.items()}
    return IngestResult(batch_id=batch.id, counts=counts, problems=tally.problems)
