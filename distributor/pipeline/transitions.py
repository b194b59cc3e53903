"""Every row state change, as a compare-and-set on Postgres (or SQLite).

Each function is one ``UPDATE ... WHERE id = :id AND state = :expected`` (plus the lease
the caller holds, where it holds one), so a task delivered twice, or a worker whose lease
ran out and was taken over, finds the row already moved and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from distributor.constants import BatchState, RowState
from distributor.models import Batch, Row


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A row taken for one step: the lease is the fencing token for every later write."""

    row_id: int
    batch_id: int
    step: str
    lease_until: datetime
    step_attempts: int


LOAD = "load"
TRANSFER = "transfer"

_STEP_STATES = {
    LOAD: (RowState.PENDING, RowState.LOADING),
    TRANSFER: (RowState.LOADED, RowState.TRANSFERRING),
}
_ATTEMPTS = {LOAD: Row.load_attempts, TRANSFER: Row.transfer_attempts}


def _batch_running() -> object:
    return exists().where(Batch.id == Row.batch_id, Batch.state == BatchState.RUNNING)


def claim(
    session: Session, *, row_id: int, step: str, now: datetime, lease: timedelta
) -> Claim | None:
    """Take the row for ``step`` if it is waiting for it, or its earlier lease ran out."""
    ready, in_flight = _STEP_STATES[step]
    attempts = _ATTEMPTS[step]
    lease_until = now + lease
    statement = (
        update(Row)
        .where(
            Row.id == row_id,
            _batch_running(),  # type: ignore[arg-type]
            or_(
                and_(Row.state == ready, or_(Row.not_before.is_(None), Row.not_before <= now)),
                and_(Row.state == in_flight, Row.lease_until < now),
            ),
        )
        .values(state=in_flight, lease_until=lease_until, updated_at=now)
        .values({attempts: attempts + 1})
        .returning(Row.batch_id, attempts)
        .execution_options(synchronize_session=False)
    )
    taken = session.execute(statement).one_or_none()
    if taken is None:
        return None
    return Claim(
        row_id=row_id,
        batch_id=taken[0],
        step=step,
        lease_until=lease_until,
        step_attempts=taken[1],
    )


def _held(claim: Claim) -> tuple[object, ...]:
    in_flight = _STEP_STATES[claim.step][1]
    return (Row.id == claim.row_id, Row.state == in_flight, Row.lease_until == claim.lease_until)


def _apply(session: Session, claim: Claim, values: dict[object, object]) -> bool:
    statement = (
        update(Row)
        .where(*_held(claim))  # type: ignore[arg-type]
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined, no-any-return]


def mark_loaded(session: Session, *, claim: Claim, asset_id: str, now: datetime) -> bool:
    """Loading succeeded: record the asset and wipe the PIN."""
    return _apply(
        session,
        claim,
        {
            Row.state: RowState.LOADED,
            Row.asset_id: asset_id,
            Row.pin_enc: None,
            Row.loaded_at: now,
            Row.lease_until: None,
            Row.not_before: None,
            Row.error_code: None,
            Row.error_detail: None,
            Row.updated_at: now,
        },
    )


def mark_sent(
    session: Session, *, claim: Claim, transfer_id: str, transfer_status: str, now: datetime
) -> bool:
    """The transfer exists: the row is sent."""
    return _apply(
        session,
        claim,
        {
            Row.state: RowState.SENT,
            Row.transfer_id: transfer_id,
            Row.transfer_status: transfer_status,
            Row.sent_at: now,
            Row.lease_until: None,
            Row.not_before: None,
            Row.error_code: None,
            Row.error_detail: None,
            Row.updated_at: now,
        },
    )


def mark_failed(
    session: Session, *, claim: Claim, error_code: str, detail: str, retryable: bool, now: datetime
) -> bool:
    """The step failed for good (until an operator retries): the row gives its card key up."""
    return _apply(
        session,
        claim,
        {
            Row.state: RowState.FAILED,
            Row.error_code: error_code,
            Row.error_detail: detail,
            Row.retryable: retryable,
            Row.lease_until: None,
            Row.updated_at: now,
        },
    )


def release(
    session: Session,
    *,
    claim: Claim,
    not_before: datetime | None,
    now: datetime,
    counted: bool,
    error_code: str | None = None,
    detail: str | None = None,
) -> bool:
    """Hand the row back to the step's waiting state, to be taken again after ``not_before``.

    ``counted`` is false when no call reached Centrapay (no token, 429, 401): the attempt
    is taken back, so it neither counts nor makes the next attempt look for a lost answer.
    """
    ready = _STEP_STATES[claim.step][0]
    attempts = _ATTEMPTS[claim.step]
    values: dict[object, object] = {
        Row.state: ready,
        Row.lease_until: None,
        Row.not_before: not_before,
        Row.updated_at: now,
    }
    if not counted:
        values[attempts] = attempts - 1
    if error_code is not None:
        values[Row.error_code] = error_code
        values[Row.error_detail] = detail
    return _apply(session, claim, values)


def load_row(session: Session, row_id: int) -> Row:
    """The row, fresh from the database."""
    return session.execute(
        select(Row).where(Row.id == row_id).execution_options(populate_existing=True)
    ).scalar_one()
