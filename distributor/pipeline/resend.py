"""Resend: a card already loaded goes to a corrected recipient in a new transfer.

Eligible rows hold a loaded card (``asset_id``) and no live transfer: a row failed with no
doubt about its delivery (its transfer was refused, e.g. on its recipient), or a sent row
whose transfer Centrapay shows ``returned`` or ``cancelled`` (the card is back in our
account). ``expired`` is not enough: the card is still in the transfer until it returns.

In one transaction the batch and the row are locked, the row's transfer so far is copied
to ``row_transfers`` (masked recipient only), the new recipient and message are set and
the row goes back to ``loaded`` with its transfer cleared and a fresh transfer budget: the
pipeline's two-step path then makes the transfer only, never a new load. A batch that was
done runs again until the worker closes it once more; a paused one sends on resume.

Exactly once: only a row with no live transfer is taken, and it moves by compare-and-set
from the state it was read in. A failed row gave its card key up; it takes it back through
``pipeline.retry``, which refuses when another live row holds the card by then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.constants import BatchState, RowState, TransferStatus
from distributor.db import session_scope
from distributor.errors import Conflict, NotFound
from distributor.models import Batch, Row, RowTransfer
from distributor.pipeline import batch_control
from distributor.pipeline.retry import retry
from distributor.vault import Vault

RESENDABLE_TRANSFER_STATUSES = (TransferStatus.RETURNED, TransferStatus.CANCELLED)
"""Statuses of a sent row's transfer that leave its card back in our account."""


@dataclass(frozen=True, kw_only=True)
class NewRecipient:
    """Where a resend goes: a recipient as checked by the upload rules, and its message."""

    recipient: str
    recipient_masked: str
    message: str | None
    """None keeps the row's message."""


@dataclass(kw_only=True)
class LinesResent:
    """Lines of the uploaded file resent, and those refused with the reason."""

    resent: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


def resend_lines(
    database_url: str,
    *,
    batch_id: int,
    lines: Sequence[tuple[int, NewRecipient]],
    resend_row: Callable[[Session, int, NewRecipient], None],
) -> LinesResent:
    """Resend the rows at these lines of the batch's file, each in its own transaction
    (``resend_row(session, row_id, to)``: ``resend`` as an operator action, audited).

    One row refused (a live transfer, a line not in the file) does not hold the others back.
    """
    with session_scope(database_url) as session:
        if session.get(Batch, batch_id) is None:
            raise NotFound(f"batch {batch_id} does not exist")
        found = session.execute(
            select(Row.line_no, Row.id).where(
                Row.batch_id == batch_id, Row.line_no.in_([line for line, _ in lines])
            )
        )
        row_ids = dict(found.tuples().all())
    done = LinesResent()
    for line, to in lines:
        if line not in row_ids:
            done.refused[line] = f"no row at line {line}"
            continue
        try:
            with session_scope(database_url) as session:
                resend_row(session, row_ids[line], to)
        except (Conflict, NotFound) as refused:
            done.refused[line] = str(refused)
            continue
        done.resent.append(line)
    return done


def resend(
    session: Session,
    *,
    batch_id: int,
    row_id: int,
    to: NewRecipient,
    vault: Vault,
    now: datetime,
) -> None:
    """Put the row back to transfer its loaded card to ``to``; Conflict if it cannot be."""
    if batch_control.locked_state(session, batch_id) == BatchState.CANCELLED:
        raise Conflict(f"batch {batch_id} is cancelled")
    row = session.execute(
        select(Row).where(Row.id == row_id, Row.batch_id == batch_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"row {row_id} is not in batch {batch_id}")
    _check_resendable(row)
    session.add(
        RowTransfer(
            row_id=row.id,
            transfer_id=row.transfer_id,
            transfer_status=row.transfer_status,
            recipient_masked=row.recipient_masked,
            error_code=row.error_code,
            sent_at=row.sent_at,
            replaced_at=now,
        )
    )
    was = row.state
    new_values: dict[str, object] = {
        "recipient": to.recipient,
        "recipient_masked": to.recipient_masked,
        "message": row.message if to.message is None else to.message,
        "transfer_id": None,
        "transfer_status": None,
        "transfer_checked_at": None,
        "sent_at": None,
        "updated_at": now,
    }
    if was == RowState.SENT:
        new_values |= {
            "state": RowState.LOADED,
            "transfer_attempts": 0,
            "not_before": None,
            "enqueued_at": None,
            "error_code": None,
            "error_detail": None,
        }
    moved = session.execute(
        update(Row)
        .where(Row.id == row_id, Row.state == was)
        .values(new_values)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"row {row_id} changed meanwhile; try again")
    if was == RowState.FAILED:
        _take_card_back(session, batch_id=batch_id, row_id=row_id, vault=vault, now=now)
    else:
        batch_control.reopen(session, batch_id=batch_id)


def _check_resendable(row: Row) -> None:
    if row.asset_id is None:
        raise Conflict(f"row {row.id}: its card was never loaded; retry it instead")
    if row.ambiguous:
        raise Conflict(f"row {row.id}: its last call's outcome is unknown; the card may be gone")
    if row.state == RowState.FAILED:
        return
    if row.state == RowState.SENT and row.transfer_status in RESENDABLE_TRANSFER_STATUSES:
        return
    if row.state == RowState.SENT:
        status = row.transfer_status or "unknown yet"
        raise Conflict(f"row {row.id} has a live transfer ({status}); reclaim it first")
    raise Conflict(f"row {row.id} is {row.state}; only a failed or returned row can be resent")


def _take_card_back(
    session: Session, *, batch_id: int, row_id: int, vault: Vault, now: datetime
) -> None:
    """A failed row goes back to work the way a retry does: its card key taken back."""
    result = retry(session, batch_id=batch_id, vault=vault, row_ids=[row_id], now=now)
    if result.refused:
        raise Conflict(f"row {row_id}: another live row holds its card")
    if result.unreadable:
        raise Conflict(f"row {row_id}: its card cannot be read under any configured secret")


def earlier_transfers(session: Session, row_ids: Sequence[int]) -> dict[int, list[RowTransfer]]:
    """Each row's transfers before its current one, oldest first (rows with none left out)."""
    found: dict[int, list[RowTransfer]] = {}
    query = select(RowTransfer).where(RowTransfer.row_id.in_(row_ids)).order_by(RowTransfer.id)
    for earlier in session.scalars(query):
        found.setdefault(earlier.row_id, []).append(earlier)
    return found


def transfer_view(earlier: RowTransfer) -> dict[str, str | None]:
    """An earlier transfer as the API shows it: masked, JSON-ready."""
    return {
        "transfer_id": earlier.transfer_id,
        "transfer_status": earlier.transfer_status,
        "recipient_masked": earlier.recipient_masked,
        "error_code": earlier.error_code,
        "sent_at": None if earlier.sent_at is None else earlier.sent_at.isoformat(),
        "replaced_at": earlier.replaced_at.isoformat(),
    }
