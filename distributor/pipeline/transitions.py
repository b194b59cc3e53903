"""Every row state change, as a compare-and-set on Postgres (or SQLite).

Each function is one ``UPDATE ... WHERE id = :id AND state = :expected`` (plus the lease
the caller holds, where it holds one), so a task delivered twice, or a worker whose lease
ran out and was taken over, finds the row already moved and changes nothing.

The statements run for every row, twice or more, so they are built once, with bound
parameters, and executed as Core: building them per call cost a worker more CPU than
everything else it does for a row (the throughput benchmark measured 12.9 ms against
8.5 ms per row).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import BindParameter, Table, Update, and_, bindparam, exists, or_, select, update
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
_rows = cast(Table, Row.__table__)
_batches = cast(Table, Batch.__table__)
_ATTEMPTS = {LOAD: _rows.c.load_attempts, TRANSFER: _rows.c.transfer_attempts}


def _claim_statement(step: str) -> Update:
    ready, in_flight = _STEP_STATES[step]
    attempts = _ATTEMPTS[step]
    now: BindParameter[datetime] = bindparam("now")
    running = exists().where(
        _batches.c.id == _rows.c.batch_id, _batches.c.state == BatchState.RUNNING
    )
    return (
        update(_rows)
        .where(
            _rows.c.id == bindparam("row_id"),
            running,
            or_(
                and_(
                    _rows.c.state == ready,
                    or_(_rows.c.not_before.is_(None), _rows.c.not_before <= now),
                ),
                and_(_rows.c.state == in_flight, _rows.c.lease_until < now),
            ),
        )
        .values(
            {
                _rows.c.state: in_flight,
                _rows.c.lease_until: bindparam("lease_until"),
                _rows.c.updated_at: now,
                attempts: attempts + 1,
            }
        )
        .returning(_rows.c.batch_id, attempts)
    )


_CLAIM = {step: _claim_statement(step) for step in _STEP_STATES}


def claim(
    session: Session, *, row_id: int, step: str, now: datetime, lease: timedelta
) -> Claim | None:
    """Take the row for ``step`` if it is waiting for it, or its earlier lease ran out."""
    lease_until = now + lease
    taken = (
        session.connection()
        .execute(_CLAIM[step], {"row_id": row_id, "now": now, "lease_until": lease_until})
        .one_or_none()
    )
    if taken is None:
        return None
    return Claim(
        row_id=row_id,
        batch_id=taken[0],
        step=step,
        lease_until=lease_until,
        step_attempts=taken[1],
    )


def _held_update(step: str) -> Update:
    """UPDATE of the row this claim holds: the step's in-flight state and our lease."""
    return update(_rows).where(
        _rows.c.id == bindparam("row_id"),
        _rows.c.state == _STEP_STATES[step][1],
        _rows.c.lease_until == bindparam("held_lease"),
    )


_MARK_LOADED = _held_update(LOAD).values(
    {
        _rows.c.state: RowState.LOADED,
        _rows.c.asset_id: bindparam("asset_id"),
        _rows.c.pin_enc: None,
        _rows.c.loaded_at: bindparam("now"),
        _rows.c.lease_until: None,
        _rows.c.not_before: None,
        _rows.c.error_code: None,
        _rows.c.error_detail: None,
        _rows.c.updated_at: bindparam("now"),
    }
)
_MARK_SENT = _held_update(TRANSFER).values(
    {
        _rows.c.state: RowState.SENT,
        _rows.c.transfer_id: bindparam("transfer_id"),
        _rows.c.transfer_status: bindparam("transfer_status"),
        _rows.c.sent_at: bindparam("now"),
        _rows.c.lease_until: None,
        _rows.c.not_before: None,
        _rows.c.error_code: None,
        _rows.c.error_detail: None,
        _rows.c.updated_at: bindparam("now"),
    }
)
_MARK_FAILED = {
    step: _held_update(step).values(
        {
            _rows.c.state: RowState.FAILED,
            _rows.c.error_code: bindparam("error_code"),
            _rows.c.error_detail: bindparam("detail"),
            _rows.c.retryable: bindparam("retryable"),
            _rows.c.lease_until: None,
            _rows.c.updated_at: bindparam("now"),
        }
    )
    for step in _STEP_STATES
}


@cache
def _release_statement(step: str, *, counted: bool, with_error: bool) -> Update:
    values: dict[Any, Any] = {
        _rows.c.state: _STEP_STATES[step][0],
        _rows.c.lease_until: None,
        _rows.c.not_before: bindparam("not_before"),
        _rows.c.updated_at: bindparam("now"),
    }
    if not counted:
        values[_ATTEMPTS[step]] = _ATTEMPTS[step] - 1
    if with_error:
        values[_rows.c.error_code] = bindparam("error_code")
        values[_rows.c.error_detail] = bindparam("detail")
    return _held_update(step).values(values)


def _apply(session: Session, statement: Update, claim: Claim, **params: Any) -> bool:
    params |= {"row_id": claim.row_id, "held_lease": claim.lease_until}
    return session.connection().execute(statement, params).rowcount == 1


def mark_loaded(session: Session, *, claim: Claim, asset_id: str, now: datetime) -> bool:
    """Loading succeeded: record the asset and wipe the PIN."""
    return _apply(session, _MARK_LOADED, claim, asset_id=asset_id, now=now)


def mark_sent(
    session: Session, *, claim: Claim, transfer_id: str, transfer_status: str, now: datetime
) -> bool:
    """The transfer exists: the row is sent."""
    return _apply(
        session,
        _MARK_SENT,
        claim,
        transfer_id=transfer_id,
        transfer_status=transfer_status,
        now=now,
    )


def mark_failed(
    session: Session, *, claim: Claim, error_code: str, detail: str, retryable: bool, now: datetime
) -> bool:
    """The step failed for good (until an operator retries): the row gives its card key up."""
    return _apply(
        session,
        _MARK_FAILED[claim.step],
        claim,
        error_code=error_code,
        detail=detail,
        retryable=retryable,
        now=now,
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
    with_error = error_code is not None
    statement = _release_statement(claim.step, counted=counted, with_error=with_error)
    params: dict[str, Any] = {"not_before": not_before, "now": now}
    if with_error:
        params |= {"error_code": error_code, "detail": detail}
    return _apply(session, statement, claim, **params)


_LOAD_ROW = (
    select(Row).where(Row.id == bindparam("row_id")).execution_options(populate_existing=True)
)


def load_row(session: Session, row_id: int) -> Row:
    """The row, fresh from the database."""
    return session.execute(_LOAD_ROW, {"row_id": row_id}).scalar_one()
