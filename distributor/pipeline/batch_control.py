"""Batch-level state changes: start, pause, resume, cancel, retry, finish.

Like the row transitions, each is a compare-and-set, so two operators (or an operator and
a worker) acting at once cannot leave a batch in a state neither asked for. A change to
done, paused or cancelled records its notification (``outbox``) in the same transaction:
one per change, whoever made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Update, and_, bindparam, case, exists, not_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor import outbox
from distributor.batches import get_batch
from distributor.constants import LIVE_STATES, UNSETTLED_STATES, BatchEvent, BatchState, RowState
from distributor.errors import Conflict, NotFound, SecretUnreadable
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow
from distributor.vault import Vault

RETRY_CHUNK_ROWS = 1_000
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
    (``rows_to_check``): its card may have been delivered. A failed row keeps its flag,
    so a cancelled row whose delivery is unknown says so.
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


@dataclass(frozen=True, kw_only=True)
class RetryResult:
    """Rows put back to work; rows refused because another live row holds their card; rows
    whose card cannot be read under any configured secret."""

    retried: list[int]
    refused: list[int]
    unreadable: list[int]


def retry(
    session: Session,
    *,
    batch_id: int,
    vault: Vault,
    error_codes: Sequence[str] = (),
    row_ids: Sequence[int] = (),
    now: datetime,
) -> RetryResult:
    """Failed rows go back to the step that failed: a loaded card is never loaded again.

    The step gets a fresh automatic-retry budget (``MAX_AUTO_RETRIES``); a row whose last
    call was ambiguous keeps its flag, so its next attempt looks before it sends.

    A row's card may have gone live in another row since it failed, possibly keyed under
    another secret during a rotation: so each card is looked up under every configured
    secret, like an upload does, and a row put back to work is keyed under the current one.
    """
    # Locked until commit: a finish of the batch meanwhile waits, then sees these rows back
    # at work, instead of closing the batch over them.
    if locked_state(session, batch_id) == BatchState.CANCELLED:
        raise Conflict(f"batch {batch_id} is cancelled")
    chosen = [Row.batch_id == batch_id, Row.state == RowState.FAILED]
    if error_codes:
        chosen.append(Row.error_code.in_(error_codes))
    if row_ids:
        chosen.append(Row.id.in_(row_ids))
    failed = session.execute(
        select(Row.id, Row.card_number_enc, Row.issuer, Row.asset_type).where(*chosen)
    ).all()
    result = RetryResult(retried=[], refused=[], unreadable=[])
    for start in range(0, len(failed), RETRY_CHUNK_ROWS):
        _retry_chunk(session, failed[start : start + RETRY_CHUNK_ROWS], vault, now, result)
    if result.retried:
        reopen(session, batch_id=batch_id)
    return result


def reopen(session: Session, *, batch_id: int) -> None:
    """done -> running: rows were put back to work (the worker closes it again)."""
    _set_state(
        session,
        batch_id=batch_id,
        expected=[BatchState.DONE],
        state=BatchState.RUNNING,
        values={"finished_at": None},
    )


def _retry_chunk(
    session: Session,
    rows: Sequence[Any],
    vault: Vault,
    now: datetime,
    result: RetryResult,
) -> None:
    keys: dict[int, tuple[str, ...]] = {}
    for row_id, card_number_enc, issuer, asset_type in rows:
        try:
            card_number = vault.decrypt(card_number_enc)
        except SecretUnreadable:
            result.unreadable.append(row_id)
            continue
        keys[row_id] = vault.card_keys(
            issuer=issuer, asset_type=asset_type, card_number=card_number
        )
    every_key = [key for row_keys in keys.values() for key in row_keys]
    live = set(
        session.scalars(
            select(Row.card_key).where(Row.card_key.in_(every_key), Row.state.in_(LIVE_STATES))
        )
    )
    for row_id, row_keys in keys.items():
        if live.intersection(row_keys):
            result.refused.append(row_id)
            continue
        back_to = update(Row).where(Row.id == row_id, Row.state == RowState.FAILED)
        try:
            # A savepoint per row: an upload that takes the card meanwhile trips the
            # live-card index, and only this row is refused.
            with session.begin_nested():
                moved = session.execute(
                    back_to.values(
                        state=case(
                            (Row.asset_id.is_(None), RowState.PENDING), else_=RowState.LOADED
                        ),
                        card_key=row_keys[0],
                        # A fresh automatic-retry budget for the step it goes back to.
                        load_attempts=case((Row.asset_id.is_(None), 0), else_=Row.load_attempts),
                        transfer_attempts=case(
                            (Row.asset_id.is_(None), Row.transfer_attempts), else_=0
                        ),
                        not_before=None,
                        retryable=False,
                        error_code=None,
                        error_detail=None,
                        enqueued_at=None,
                        updated_at=now,
                    ).execution_options(synchronize_session=False)
                )
        except IntegrityError:
            result.refused.append(row_id)
            continue
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            result.retried.append(row_id)
            live.update(row_keys)


def _has_rows(session: Session, batch_id: int, states: Sequence[str]) -> bool:
    query = select(Row.id).where(Row.batch_id == batch_id, Row.state.in_(states)).limit(1)
    return session.execute(query).first() is not None


def ready_row_ids(
    session: Session,
    *,
    batch_id: int | None,
    now: datetime,
    after_id: int,
    limit: int,
    enqueued_before: datetime | None = None,
    lock: bool = False,
    expired_only: bool = False,
) -> list[tuple[int, int]]:
    """(row id, batch id) of rows of running batches that a task could take now, by id.

    In-flight rows whose lease ran out and that were not enqueued since; and waiting rows
    whose wait is over, all of them, or with ``enqueued_before`` only those never
    enqueued or last enqueued before then (which also takes expired rows again). With
    ``lock``, the rows are locked until commit and rows another transaction holds are
    skipped (Postgres; SQLite has one writer anyway). ``expired_only``: only in-flight
    rows whose lease ran out.
    """
    waiting = and_(
        Row.state.in_([RowState.PENDING, RowState.LOADED]),
        or_(Row.not_before.is_(None), Row.not_before <= now),
    )
    if enqueued_before is not None:
        waiting = and_(waiting, or_(Row.enqueued_at.is_(None), Row.enqueued_at < enqueued_before))
    # An expired row is sent once per expiry (not enqueued since its lease was taken); and,
    # like a waiting row, again when its last message is older than ``enqueued_before``:
    # that message was lost (a Redis restart right after the sweep requeued the row).
    not_enqueued_since = or_(Row.enqueued_at.is_(None), Row.enqueued_at < Row.lease_until)
    if enqueued_before is not None:
        not_enqueued_since = or_(not_enqueued_since, Row.enqueued_at < enqueued_before)
    expired = and_(
        Row.state.in_([RowState.LOADING, RowState.TRANSFERRING]),
        Row.lease_until < now,
        not_enqueued_since,
    )
    query = (
        select(Row.id, Row.batch_id)
        .join(Batch, Batch.id == Row.batch_id)
        .where(
            Batch.state == BatchState.RUNNING,
            Row.id > after_id,
            expired if expired_only else or_(waiting, expired),
        )
        .order_by(Row.id)
        .limit(limit)
    )
    if batch_id is not None:
        query = query.where(Row.batch_id == batch_id)
    if lock:
        query = query.with_for_update(skip_locked=True, of=Row)
    return [(row_id, row_batch) for row_id, row_batch in session.execute(query)]


def mark_enqueued(session: Session, *, row_ids: Sequence[int], now: datetime) -> None:
    """Remember when these rows were last handed to the queue."""
    session.execute(
        update(Row)
        .where(Row.id.in_(row_ids))
        .values(enqueued_at=now)
        .execution_options(synchronize_session=False)
    )


def forget_enqueued(session: Session) -> int:
    """Forget when unsettled rows were last enqueued: the queue lost those messages.

    The sweeper then sends each again as soon as it is ready (a row waiting out a backoff,
    once the wait is over; a row in flight, once its lease runs out). Returns the rows.
    """
    statement = (
        update(Row)
        .where(Row.state.in_(UNSETTLED_STATES), Row.enqueued_at.is_not(None))
        .values(enqueued_at=None)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def rows_to_check(
    session: Session, *, now: datetime, limit: int, sent_again_after: timedelta
) -> list[tuple[int, int]]:
    """(row id, batch id) of rows of cancelled batches to look up before they end.

    Waiting rows whose last call was ambiguous, and in-flight rows whose worker died; each
    once per change, and again when its message is older than ``sent_again_after``.
    """
    unsure = or_(
        and_(
            Row.state.in_([RowState.PENDING, RowState.LOADED]),
            Row.ambiguous,
            or_(Row.not_before.is_(None), Row.not_before <= now),
        ),
        and_(Row.state.in_([RowState.LOADING, RowState.TRANSFERRING]), Row.lease_until < now),
    )
    not_sent = or_(
        Row.enqueued_at.is_(None),
        Row.enqueued_at < Row.updated_at,
        Row.enqueued_at < now - sent_again_after,
    )
    query = (
        select(Row.id, Row.batch_id)
        .join(Batch, Batch.id == Row.batch_id)
        .where(Batch.state == BatchState.CANCELLED, unsure, not_sent)
        .order_by(Row.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Row)
    )
    return [(row_id, batch_id) for row_id, batch_id in session.execute(query)]
