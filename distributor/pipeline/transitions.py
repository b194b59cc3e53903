"""Every row state change, as a compare-and-set on Postgres (or SQLite).

Each function is one ``UPDATE ... WHERE id = :id AND state = :expected`` (plus the lease
token the caller holds, where it holds one), so a task delivered twice, or a worker whose lease
ran out and was taken over, finds the row already moved and changes nothing.

The statements run for every row, twice or more, so they are built once, with bound
parameters, and executed as Core: building them per call cost a worker more CPU than
everything else it does for a row (the throughput benchmark measured 12.9 ms against
8.5 ms per row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Table,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from distributor.constants import IN_FLIGHT_STATES, BatchState, RowState
from distributor.models import Batch, Row


@dataclass(frozen=True, kw_only=True)
class RowData:
    """What a step sends for a row, as the claim found it (returned by the claim itself, so
    a step costs no second read)."""

    card_number_enc: bytes | None
    pin_enc: bytes | None
    asset_type: str | None
    issuer: str | None
    asset_id: str | None
    recipient: str | None
    message: str | None
    sender_name: str | None
    description: str | None
    error_code: str | None
    """The last transient error recorded for the step, if any."""


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A row taken for one step: ``lease_token`` fences every later write (and call)."""

    row_id: int
    batch_id: int
    step: str
    lease_token: int
    step_attempts: int
    ambiguous: bool
    """An earlier call of this step may have been applied: look before sending again."""
    row: RowData


@dataclass(frozen=True, kw_only=True)
class SentMark:
    """What marking a row sent did: ``moved`` when this claim still held the row, and
    ``others_wait`` when another row of its batch waits for a step.

    A waiting row settles later and makes the batch's finish check then, so this one can
    skip its own (a transaction of its own): one transaction less per row for all of a
    batch but its last rows. Rows in flight do not count: two rows settling at once each
    see the other in flight, and both must check.
    """

    moved: bool
    others_wait: bool


LOAD = "load"
TRANSFER = "transfer"

_STEP_STATES = {
    LOAD: (RowState.PENDING, RowState.LOADING),
    TRANSFER: (RowState.LOADED, RowState.TRANSFERRING),
}
_rows = cast(Table, Row.__table__)
_batches = cast(Table, Batch.__table__)
_ATTEMPTS = {LOAD: _rows.c.load_attempts, TRANSFER: _rows.c.transfer_attempts}
_ROW_DATA = [_rows.c[name] for name in RowData.__dataclass_fields__]


def _row_data(taken: Any, start: int) -> RowData:
    return RowData(**dict(zip(RowData.__dataclass_fields__, taken[start:], strict=True)))


def _claim_statement(step: str, *, many: bool = False) -> Update:
    ready, in_flight = _STEP_STATES[step]
    attempts = _ATTEMPTS[step]
    now: BindParameter[datetime] = bindparam("now")
    running = exists().where(
        _batches.c.id == _rows.c.batch_id, _batches.c.state == BatchState.RUNNING
    )
    which = (
        _rows.c.id.in_(bindparam("row_ids", expanding=True))
        if many
        else _rows.c.id == bindparam("row_id")
    )
    returned = (_rows.c.id,) if many else ()
    return (
        update(_rows)
        .where(
            which,
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
                _rows.c.lease_token: _rows.c.lease_token + 1,
                # Taken over from a holder whose lease ran out: it may have been mid-call.
                _rows.c.ambiguous: or_(_rows.c.ambiguous, _rows.c.state == in_flight),
                _rows.c.updated_at: now,
                attempts: attempts + 1,
            }
        )
        .returning(
            _rows.c.batch_id,
            attempts,
            _rows.c.lease_token,
            _rows.c.ambiguous,
            *_ROW_DATA,
            *returned,
        )
    )


_CLAIM = {step: _claim_statement(step) for step in _STEP_STATES}
_CLAIM_MANY = {step: _claim_statement(step, many=True) for step in _STEP_STATES}


def claim(
    session: Session, *, row_id: int, step: str, now: datetime, lease: timedelta
) -> Claim | None:
    """Take the row for ``step`` if it is waiting for it, or its earlier lease ran out."""
    taken = (
        session.connection()
        .execute(_CLAIM[step], {"row_id": row_id, "now": now, "lease_until": now + lease})
        .one_or_none()
    )
    if taken is None:
        return None
    return _claim_of(taken, row_id=row_id, step=step)


def claim_many(
    session: Session, *, row_ids: Sequence[int], step: str, now: datetime, lease: timedelta
) -> dict[int, Claim]:
    """``claim`` of each row of ``row_ids`` in one statement: the claims made, by row id."""
    params = {"row_ids": list(row_ids), "now": now, "lease_until": now + lease}
    taken = session.connection().execute(_CLAIM_MANY[step], params).all()
    return {row[-1]: _claim_of(row[:-1], row_id=row[-1], step=step) for row in taken}


def _claim_of(taken: Any, *, row_id: int, step: str) -> Claim:
    return Claim(
        row_id=row_id,
        batch_id=taken[0],
        step=step,
        step_attempts=taken[1],
        lease_token=taken[2],
        ambiguous=bool(taken[3]),
        row=_row_data(taken, 4),
    )


def lease_held_until(session: Session, *, row_id: int, now: datetime) -> datetime | None:
    """When the lease held on the row runs out, if it is in flight and the lease has not
    (the claim a row task could not make, because another attempt holds the row)."""
    query = select(_rows.c.lease_until).where(
        _rows.c.id == row_id,
        _rows.c.state.in_(IN_FLIGHT_STATES),
        _rows.c.lease_until > now,
    )
    until: datetime | None = session.connection().execute(query).scalar_one_or_none()
    return until


def _check_claim_statement() -> Update:
    """Take a row of a cancelled batch whose card's fate is unknown, to look it up.

    An idle row whose last call was ambiguous, or an in-flight row whose worker died: it
    goes to the in-flight state of its step (loading without an asset, transferring with
    one), ambiguous, under a new token.
    """
    now: BindParameter[datetime] = bindparam("now")
    cancelled = exists().where(
        _batches.c.id == _rows.c.batch_id, _batches.c.state == BatchState.CANCELLED
    )
    idle_unsure = and_(
        _rows.c.state.in_([RowState.PENDING, RowState.LOADED]),
        _rows.c.ambiguous,
        or_(_rows.c.not_before.is_(None), _rows.c.not_before <= now),
    )
    abandoned = and_(_rows.c.state.in_(IN_FLIGHT_STATES), _rows.c.lease_until < now)
    return (
        update(_rows)
        .where(_rows.c.id == bindparam("row_id"), cancelled, or_(idle_unsure, abandoned))
        .values(
            {
                _rows.c.state: case(
                    (_rows.c.state.in_([RowState.PENDING, RowState.LOADING]), RowState.LOADING),
                    else_=RowState.TRANSFERRING,
                ),
                _rows.c.lease_until: bindparam("lease_until"),
                _rows.c.lease_token: _rows.c.lease_token + 1,
                _rows.c.ambiguous: True,
                _rows.c.updated_at: now,
            }
        )
        .returning(_rows.c.batch_id, _rows.c.state, _rows.c.lease_token, *_ROW_DATA)
    )


_CHECK_CLAIM = _check_claim_statement()


def claim_check(session: Session, *, row_id: int, now: datetime, lease: timedelta) -> Claim | None:
    """Take a row of a cancelled batch whose card may have gone, to find out before it ends."""
    taken = (
        session.connection()
        .execute(_CHECK_CLAIM, {"row_id": row_id, "now": now, "lease_until": now + lease})
        .one_or_none()
    )
    if taken is None:
        return None
    return Claim(
        row_id=row_id,
        batch_id=taken[0],
        step=LOAD if taken[1] == RowState.LOADING else TRANSFER,
        step_attempts=0,
        lease_token=taken[2],
        ambiguous=True,
        row=_row_data(taken, 3),
    )


def _held_update(step: str) -> Update:
    """UPDATE of the row this claim holds: the step's in-flight state and our token."""
    return update(_rows).where(
        _rows.c.id == bindparam("row_id"),
        _rows.c.state == _STEP_STATES[step][1],
        _rows.c.lease_token == bindparam("held_token"),
    )


_SETTLED: dict[Any, Any] = {
    _rows.c.lease_until: None,
    _rows.c.not_before: None,
    _rows.c.ambiguous: False,
    _rows.c.error_code: None,
    _rows.c.error_detail: None,
    _rows.c.updated_at: bindparam("now"),
}
"""What every step that ends with a known outcome resets."""

_MARK_LOADED = _held_update(LOAD).values(
    {
        _rows.c.state: RowState.LOADED,
        _rows.c.asset_id: bindparam("asset_id"),
        _rows.c.pin_enc: None,
        _rows.c.loaded_at: bindparam("now"),
        **_SETTLED,
    }
)
_others = _rows.alias("others")
_OTHERS_WAIT = exists().where(
    _others.c.batch_id == _rows.c.batch_id,
    _others.c.state.in_([RowState.PENDING, RowState.LOADED]),
)
"""Another row of the batch waits for a step (pending or loaded, as this statement sees
the table): that row settles later and makes the batch's finish check then."""
_MARK_SENT = {
    step: _held_update(step)
    .values(
        {
            _rows.c.state: RowState.SENT,
            _rows.c.asset_id: func.coalesce(bindparam("asset_id"), _rows.c.asset_id),
            _rows.c.pin_enc: None,
            _rows.c.loaded_at: func.coalesce(_rows.c.loaded_at, bindparam("now")),
            _rows.c.transfer_id: bindparam("transfer_id"),
            _rows.c.transfer_status: bindparam("transfer_status"),
            _rows.c.sent_at: bindparam("now"),
            **_SETTLED,
        }
    )
    .returning(_OTHERS_WAIT)
    for step in _STEP_STATES
}
_MARK_FAILED = {
    step: _held_update(step).values(
        {
            _rows.c.state: RowState.FAILED,
            _rows.c.asset_id: func.coalesce(bindparam("asset_id"), _rows.c.asset_id),
            _rows.c.error_code: bindparam("error_code"),
            _rows.c.error_detail: bindparam("detail"),
            _rows.c.retryable: bindparam("retryable"),
            _rows.c.ambiguous: bindparam("ambiguous"),
            _rows.c.lease_until: None,
            _rows.c.updated_at: bindparam("now"),
        }
    )
    for step in _STEP_STATES
}
_MARK_CANCELLED = {
    step: _held_update(step).values(
        {
            _rows.c.state: RowState.CANCELLED,
            _rows.c.asset_id: func.coalesce(bindparam("asset_id"), _rows.c.asset_id),
            _rows.c.pin_enc: None,
            **_SETTLED,
        }
    )
    for step in _STEP_STATES
}
_RENEW = (
    update(_rows)
    .where(
        _rows.c.id == bindparam("row_id"),
        _rows.c.lease_token == bindparam("held_token"),
        _rows.c.state.in_(IN_FLIGHT_STATES),
    )
    .values({_rows.c.lease_until: bindparam("lease_until")})
)


@cache
def _release_statement(step: str, *, counted: bool, with_error: bool) -> Update:
    values: dict[Any, Any] = {
        _rows.c.state: _STEP_STATES[step][0],
        _rows.c.lease_until: None,
        _rows.c.not_before: bindparam("not_before"),
        _rows.c.ambiguous: bindparam("ambiguous"),
        _rows.c.updated_at: bindparam("now"),
    }
    if not counted:
        values[_ATTEMPTS[step]] = _ATTEMPTS[step] - 1
    if with_error:
        values[_rows.c.error_code] = bindparam("error_code")
        values[_rows.c.error_detail] = bindparam("detail")
    return _held_update(step).values(values)


def _held_params(claim: Claim, **params: Any) -> dict[str, Any]:
    """``params`` for a statement of ``_held_update``: with the row and the token held."""
    return params | {"row_id": claim.row_id, "held_token": claim.lease_token}


def _apply(session: Session, statement: Update, claim: Claim, **params: Any) -> bool:
    return session.connection().execute(statement, _held_params(claim, **params)).rowcount == 1


def mark_loaded(session: Session, *, claim: Claim, asset_id: str, now: datetime) -> bool:
    """Loading succeeded (or the card was found loaded): record the asset, wipe the PIN."""
    return _apply(session, _MARK_LOADED, claim, asset_id=asset_id, now=now)


def mark_sent(
    session: Session,
    *,
    claim: Claim,
    asset_id: str | None,
    transfer_id: str | None,
    transfer_status: str | None,
    now: datetime,
) -> SentMark:
    """The card is transferred: the row is sent, from either step.

    ``transfer_id`` None: the card is known to be transferred but the answer holding the
    id was lost; the transfer-id sync fills it in (``Row.transfer_id_pending``).
    """
    params = _held_params(
        claim,
        asset_id=asset_id,
        transfer_id=transfer_id,
        transfer_status=transfer_status,
        now=now,
    )
    found = session.connection().execute(_MARK_SENT[claim.step], params).one_or_none()
    return SentMark(moved=found is not None, others_wait=found is not None and bool(found[0]))


def mark_failed(
    session: Session,
    *,
    claim: Claim,
    error_code: str,
    detail: str,
    retryable: bool,
    now: datetime,
    ambiguous: bool = False,
    asset_id: str | None = None,
) -> bool:
    """The step failed for good (until an operator retries): the row gives its card key up.

    ``ambiguous``: the last call's outcome is unknown (the card may have been delivered);
    ``asset_id``: the card is in our account although the step failed.
    """
    return _apply(
        session,
        _MARK_FAILED[claim.step],
        claim,
        error_code=error_code,
        detail=detail,
        retryable=retryable,
        ambiguous=ambiguous,
        asset_id=asset_id,
        now=now,
    )


def release(
    session: Session,
    *,
    claim: Claim,
    not_before: datetime | None,
    now: datetime,
    counted: bool,
    ambiguous: bool = False,
    error_code: str | None = None,
    detail: str | None = None,
) -> bool:
    """Hand the row back to the step's waiting state, to be taken again after ``not_before``.

    ``counted`` is false when no call reached Centrapay (no token, 429, 401): the attempt
    is taken back. ``ambiguous`` when a call may have been applied: the next attempt looks
    before it sends. An earlier ambiguity is kept until an outcome is known.
    """
    with_error = error_code is not None
    statement = _release_statement(claim.step, counted=counted, with_error=with_error)
    params: dict[str, Any] = {
        "not_before": not_before,
        "now": now,
        "ambiguous": ambiguous or claim.ambiguous,
    }
    if with_error:
        params |= {"error_code": error_code, "detail": detail}
    return _apply(session, statement, claim, **params)


def mark_cancelled(session: Session, *, claim: Claim, asset_id: str | None, now: datetime) -> bool:
    """A row of a cancelled batch found not transferred: cancelled, its card's asset kept
    when the card is in our account."""
    return _apply(session, _MARK_CANCELLED[claim.step], claim, asset_id=asset_id, now=now)


def renew(session: Session, *, claims: Sequence[Claim], lease_until: datetime) -> set[int]:
    """Extend the leases of ``claims`` to ``lease_until``; the row ids still held."""
    if not claims:
        return set()
    connection = session.connection()
    held = set()
    for claim in claims:
        params = {"row_id": claim.row_id, "held_token": claim.lease_token}
        if connection.execute(_RENEW, params | {"lease_until": lease_until}).rowcount == 1:
            held.add(claim.row_id)
    return held
