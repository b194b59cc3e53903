"""Batch-level state changes: start, pause, resume, cancel, finish, reopen.

Like the row transitions, each is a compare-and-set, so two operators (or an operator and
a worker) acting at once cannot leave a batch in a state neither asked for. A change to
done, paused or cancelled records its notification (``outbox``) in the same transaction:
one per change, whoever made it. Putting failed rows back to work is ``pipeline.retry``;
picking the rows to queue is ``pipeline.ready_rows``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, Update, and_, bindparam, exists, not_, or_, select, update
from sqlalchemy.orm import Session

from distributor import outbox
from distributor.batches import get_batch
from distributor.constants import UNSETTLED_STATES, BatchEvent, BatchState, RowState
from distributor.errors import Conflict, NotFound
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow

CANCEL_ATTEMPTS = 3
"""Reads of the batch's state a cancel makes before it gives up on a batch that keeps moving."""


def locked_state(session: Session, batch_id: int) -> str:
    """The batch's state, its row locked until the transaction ends; NotFound if none.

    Retry, resend and finish all take this lock, so a finish waits for a retry or a resend
    that is putting rows back to work and then sees them (see ``finish_if_settled``).
    """
    state = session.execute(
        select(Batch.state).where(Batch.id == batch_id).with_for_update()
    ).scalar_one_or_none()
    if state is None:
        raise NotFound(f"batch {batch_id} does not exist")
    return state


def _set_state(
    session: Session,
    *,
    batch_id: int,
    expected: Sequence[str],
    state: BatchState,
    values: dict[str, object] | None = None,
) -> bool:
    statement = (
        update(Batch)
        .where(Batch.id == batch_id, Batch.state.in_(expected))
        .values(state=state, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined, no-any-return]


def start(session: Session, *, batch_id: int, now: datetime) -> None:
    """queued or scheduled (early) -> running; Conflict otherwise."""
    batch = get_batch(session, batch_id)
    if batch.state == BatchState.AWAITING_APPROVAL:
        raise Conflict(
            f"batch {batch_id} is awaiting approval: an approver other than its uploader "
            "must approve it before it can start"
        )
    if not _set_state(
        session,
        batch_id=batch_id,
        expected=[BatchState.QUEUED, BatchState.SCHEDULED],
        state=BatchState.RUNNING,
        values={"started_at": now},
    ):
        raise Conflict(f"batch {batch_id} is {batch.state}, not queued or scheduled")


def pause(session: Session, *, batch_id: int, reason: str, now: datetime | None = None) -> bool:
    """running/queued -> paused, with the reason shown to operators."""
    paused = _set_state(
        session,
        batch_id=batch_id,
        expected=[BatchState.RUNNING, BatchState.QUEUED],
        state=BatchState.PAUSED,
        values={"pause_reason": reason},
    )
    if paused:
        outbox.record(
            session, batch_id=batch_id, event=BatchEvent.PAUSED, reason=reason, now=now or utcnow()
        )
    return paused


def resume(session: Session, *, batch_id: int) -> None:
    """paused -> running; Conflict otherwise."""
    batch = get_batch(session, batch_id)
    if not _set_state(
        session,
        batch_id=batch_id,
        expected=[BatchState.PAUSED],
        state=BatchState.RUNNING,
        values={"pause_reason": None},
    ):
        raise Conflict(f"batch {batch_id} is {batch.state}, not paused")


def cancel(session: Session, *, batch_id: int, now: datetime) -> int:
    """Stop a batch for good: rows not yet sent and not in flight are cancelled.

    A row in flight finishes its current step and then stops (the sweeper cancels it);
    a card already loaded stays in the account, reported with its asset id. The batch
    moves by compare-and-set from the state this read, so a batch that completes
    meanwhile stays done (and the cancel is a Conflict) rather than showing cancelled.
    """
    for _ in range(CANCEL_ATTEMPTS):
        state = locked_state(session, batch_id)
        if state == BatchState.CANCELLED:
            return 0
        if state == BatchState.DONE and not _has_rows(session, batch_id, [RowState.FAILED]):
            raise Conflict(f"batch {batch_id} is done; there is nothing to cancel")
        if _set_state(
            session,
            batch_id=batch_id,
            expected=[state],
            state=BatchState.CANCELLED,
            values={"finished_at": now},
        ):
            cancelled = cancel_idle_rows(session, batch_id=batch_id, now=now)
            outbox.record(
                session, batch_id=batch_id, event=BatchEvent.CANCELLED, reason=None, now=now
            )
            return cancelled
    raise Conflict(f"batch {batch_id} keeps changing state; try again")


def cancel_idle_rows(session: Session, *, batch_id: int, now: datetime) -> int:
    """Cancel the rows of a cancelled batch that are not in flight and not sent.

    A waiting row whose last call was ambiguous is left to be looked up first
    (``ready_rows.rows_to_check``): its card may have been delivered. A failed row keeps
    its flag, so a cancelled row whose delivery is unknown says so.
    """
    statement = (
        update(Row)
        .where(
            Row.batch_id == batch_id,
            or_(
                Row.state == RowState.FAILED,
                and_(Row.state.in_([RowState.PENDING, RowState.LOADED]), not_(Row.ambiguous)),
            ),
        )
        .values(state=RowState.CANCELLED, pin_enc=None, not_before=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def _finish_statement() -> Update:
    batches, rows = cast(Table, Batch.__table__), cast(Table, Row.__table__)
    unsettled = exists().where(rows.c.batch_id == batches.c.id, rows.c.state.in_(UNSETTLED_STATES))
    return (
        update(batches)
        .where(
            batches.c.id == bindparam("batch_id"),
            batches.c.state == BatchState.RUNNING,
            not_(unsettled),
        )
        .values(state=BatchState.DONE, finished_at=bindparam("now"))
    )


_FINISH = _finish_statement()
"""Built once: every row that settles runs it (see transitions' docstring)."""
_UNSETTLED = select(
    exists().where(
        cast(Table, Row.__table__).c.batch_id == bindparam("batch_id"),
        cast(Table, Row.__table__).c.state.in_(UNSETTLED_STATES),
    )
)
_LOCK_BATCH = (
    select(cast(Table, Batch.__table__).c.id)
    .where(cast(Table, Batch.__table__).c.id == bindparam("batch_id"))
    .with_for_update()
)


def finish_if_settled(session: Session, *, batch_id: int, now: datetime) -> bool:
    """running -> done once no row is left to work on.

    A batch with rows left (the usual answer, asked once per settled row) costs one read
    and no lock. Otherwise the batch row is locked first and the check made again in a
    statement of its own: under READ COMMITTED that statement sees a retry that held the
    lock meanwhile and put rows back to work, where a single UPDATE would re-check only
    the batch row and close the batch over them.
    """
    connection = session.connection()
    params = {"batch_id": batch_id, "now": now}
    if connection.execute(_UNSETTLED, params).scalar():
        return False
    connection.execute(_LOCK_BATCH, params)
    if connection.execute(_FINISH, params).rowcount != 1:
        return False
    outbox.record(session, batch_id=batch_id, event=BatchEvent.DONE, reason=None, now=now)
    return True


def reopen(session: Session, *, batch_id: int) -> None:
    """done -> running: rows were put back to work (the worker closes it again)."""
    _set_state(
        session,
        batch_id=batch_id,
        expected=[BatchState.DONE],
        state=BatchState.RUNNING,
        values={"finished_at": None},
    )


def _has_rows(session: Session, batch_id: int, states: Sequence[str]) -> bool:
    query = select(Row.id).where(Row.batch_id == batch_id, Row.state.in_(states)).limit(1)
    return session.execute(query).first() is not None
