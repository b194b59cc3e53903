"""Four-eyes approval: a batch over APPROVAL_REQUIRED_ABOVE_ROWS waits as
``awaiting_approval`` until an approver other than its uploader approves or rejects it.

No worker touches such a batch: rows are only ever dispatched for running batches, and
``batch_control.start`` and the scheduler take only queued or scheduled ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from distributor import outbox
from distributor.batches import batch_counts, get_batch
from distributor.constants import BatchEvent, BatchState, RowState
from distributor.errors import Conflict, Forbidden
from distributor.models import Batch, BatchApproval, Row
from distributor.pipeline import batch_control


def needs_approval(threshold: int | None, rows_to_send: int) -> bool:
    """True when a batch with ``rows_to_send`` must wait for an approver."""
    return threshold is not None and rows_to_send > threshold


def hold(session: Session, *, batch_id: int, uploaded_by: str, start_when_approved: bool) -> None:
    """queued or scheduled -> awaiting_approval, remembering who uploaded it."""
    moved = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.state.in_([BatchState.QUEUED, BatchState.SCHEDULED]))
        .values(state=BatchState.AWAITING_APPROVAL)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"batch {batch_id} is not queued or scheduled")
    session.add(
        BatchApproval(
            batch_id=batch_id, uploaded_by=uploaded_by, start_when_approved=start_when_approved
        )
    )
    session.flush()


def _pending(session: Session, batch_id: int, decider: str) -> BatchApproval:
    batch = get_batch(session, batch_id)
    record = session.get(BatchApproval, batch_id, with_for_update=True)
    if batch.state != BatchState.AWAITING_APPROVAL or record is None:
        raise Conflict(f"batch {batch_id} is {batch.state}, not awaiting approval")
    if record.uploaded_by == decider:
        raise Forbidden(
            f"{decider} uploaded batch {batch_id}: another approver must approve or reject it"
        )
    return record


def _leave_awaiting(
    session: Session, batch_id: int, state: BatchState, values: dict[str, object]
) -> None:
    moved = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.state == BatchState.AWAITING_APPROVAL)
        .values(state=state, **values)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"batch {batch_id} is no longer awaiting approval")


def approve(session: Session, *, batch_id: int, approver: str, now: datetime) -> BatchState:
    """awaiting_approval -> what the uploader asked for: running, scheduled or queued.

    Returns that state; the caller dispatches a running batch once committed.
    """
    record = _pending(session, batch_id, approver)
    batch = get_batch(session, batch_id)
    values: dict[str, object] = {}
    if not record.start_when_approved:
        state = BatchState.QUEUED
    elif batch.start_at is not None and batch.start_at > now:
        state = BatchState.SCHEDULED
    else:
        state, values = BatchState.RUNNING, {"started_at": now}
    _leave_awaiting(session, batch_id, state, values)
    record.decided_by, record.decided_at, record.approved = approver, now, True
    return state


def reject(session: Session, *, batch_id: int, approver: str, reason: str, now: datetime) -> int:
    """awaiting_approval -> cancelled, with the reason; returns the rows cancelled."""
    record = _pending(session, batch_id, approver)
    notice = f"rejected by {approver}: {reason}"
    _leave_awaiting(session, batch_id, BatchState.CANCELLED, {"finished_at": now, "notice": notice})
    record.decided_by, record.decided_at, record.approved = approver, now, False
    record.reason = reason
    cancelled = batch_control.cancel_idle_rows(session, batch_id=batch_id, now=now)
    outbox.record(session, batch_id=batch_id, event=BatchEvent.CANCELLED, reason=notice, now=now)
    return cancelled


@dataclass(frozen=True, kw_only=True)
class ApprovalSummary:
    """What an approver sees before deciding: never a card or a recipient."""

    batch_id: int
    state: str
    uploaded_by: str | None
    sender_name: str | None
    asset_type: str
    counts: dict[str, int]
    problems: dict[str, int]
    """Invalid and duplicate rows by error code."""
    decided_by: str | None
    approved: bool | None
    reason: str | None


def summary(session: Session, batch_id: int) -> ApprovalSummary:
    """The batch's approval summary; NotFound if the batch does not exist."""
    batch = get_batch(session, batch_id)
    record = session.get(BatchApproval, batch_id)
    problems = session.execute(
        select(Row.error_code, func.count())
        .where(
            Row.batch_id == batch_id,
            Row.state.in_([RowState.INVALID, RowState.DUPLICATE]),
            Row.error_code.is_not(None),
        )
        .group_by(Row.error_code)
        .order_by(Row.error_code)
    ).all()
    return ApprovalSummary(
        batch_id=batch_id,
        state=batch.state,
        uploaded_by=record.uploaded_by if record else None,
        sender_name=batch.sender_name,
        asset_type=batch.asset_type,
        counts=batch_counts(session, batch_id),
        problems={str(code): count for code, count in problems},
        decided_by=record.decided_by if record else None,
        approved=record.approved if record else None,
        reason=record.reason if record else None,
    )


def uploader(session: Session, batch_id: int) -> str | None:
    """Who uploaded a batch that had to be approved; None for any other batch."""
    record = session.get(BatchApproval, batch_id)
    return record.uploaded_by if record is not None else None
