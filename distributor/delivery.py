"""Whether a row's card reached Centrapay's transfer: the column finance reads first.

Derived from the row's state, its transfer id and status and its ``ambiguous`` flag, so it
is always what the row says, never a second truth to keep in step.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, literal

from distributor.constants import RowState, TransferStatus
from distributor.models import Row

TRANSFERRED = "transferred"
TRANSFER_ID_PENDING = "transferred, transfer id pending"
"""Centrapay shows the card transferred; the answer holding the id was lost and the
transfer-id sync has not found it yet."""
RECLAIMED = "reclaimed"
"""Sent, then its transfer cancelled by ``distributor reclaim``: the card is back in our
account, ready for a resend."""
NOT_TRANSFERRED = "not transferred"
UNKNOWN = "unknown: an answer was lost"
"""The last call's answer was lost and could not be checked; a retry looks before it
sends, so it cannot send the card twice."""
ENDED_STATES = (RowState.FAILED, RowState.CANCELLED, RowState.INVALID, RowState.DUPLICATE)


def delivery_column() -> ColumnElement[str]:
    """The row's delivery as SQL, for reports and counts ('' while a row is in progress)."""
    return case(
        (and_(Row.state == RowState.SENT, Row.transfer_id.is_(None)), TRANSFER_ID_PENDING),
        (
            and_(Row.state == RowState.SENT, Row.transfer_status == TransferStatus.CANCELLED),
            RECLAIMED,
        ),
        (Row.state == RowState.SENT, TRANSFERRED),
        (and_(Row.state.in_(ENDED_STATES), Row.ambiguous), UNKNOWN),
        (Row.state.in_(ENDED_STATES), NOT_TRANSFERRED),
        else_=literal(""),
    )


def delivery_of(row: Row) -> str:
    """The same rule as ``delivery_column``, for a row already read."""
    if row.state == RowState.SENT:
        if row.transfer_status == TransferStatus.CANCELLED:
            return RECLAIMED
        return TRANSFERRED if row.transfer_id is not None else TRANSFER_ID_PENDING
    if row.state in ENDED_STATES:
        return UNKNOWN if row.ambiguous else NOT_TRANSFERRED
    return ""
