"""How far batches have got: totals, rate, ETA, failures by error code; row gauges.

The rate is the batch's average since it started: rows sent divided by the wall time from
``started_at`` to ``finished_at`` (or now, while it has not finished). Pauses count as
time, so right after a long pause the rate (and the ETA built on it) is pessimistic; the
average was chosen over the ``sent_at`` span because a stalled batch then shows a falling
rate and a growing ETA instead of the speed of its last burst.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from distributor.constants import UNSETTLED_STATES, BatchState, RowState
from distributor.delivery import TRANSFER_ID_PENDING, delivery_column
from distributor.delivery import UNKNOWN as UNKNOWN_DELIVERY
from distributor.models import Batch, Row
from distributor.pipeline.clock import utcnow

NOT_SENDABLE_STATES = (RowState.INVALID, RowState.DUPLICATE)
"""Rows stored only to be reported: they are never sent and do not count towards the total."""

SETTLED_STATES = (RowState.SENT, RowState.FAILED, RowState.CANCELLED)
"""Rows with nothing left to do unless an operator retries them."""

UNKNOWN_ERROR_CODE = "UNKNOWN"
"""The group of failed rows that carry no error code."""


@dataclass(frozen=True, kw_only=True)
class Progress:
    """A batch's progress; rates in rows per second, times in seconds."""

    total: int
    """Rows to send: every row but invalid and duplicate ones."""
    sent: int
    failed: int
    settled: int
    """Sent, failed or cancelled."""
    unsettled: int
    """Pending, loading, loaded or transferring."""
    percent_done: float
    """Settled rows as a percentage of ``total`` (100 when there is nothing to send)."""
    rows_per_second: float | None
    """Rows sent over wall time since the start; None before the batch started."""
    eta_seconds: float | None
    """Unsettled rows at ``rows_per_second``; 0 when none is left, None when not running
    or when nothing has been sent yet."""
    failed_by_error_code: dict[str, int]
    """Failed rows by error code, most frequent first."""
    transfer_id_pending: int = 0
    """Sent rows whose transfer id was in a lost answer; the transfer-id sync finds it."""
    delivery_unknown: int = 0
    """Failed or cancelled rows whose last answer was lost and could not be checked."""


def progress_from(
    *,
    batch: Batch,
    counts: Mapping[str, int],
    failed_by_error_code: Mapping[str, int],
    now: datetime,
    deliveries: Mapping[str, int] | None = None,
) -> Progress:
    """The progress of ``batch`` whose rows by state are ``counts``, as of ``now``."""
    total = sum(count for state, count in counts.items() if state not in NOT_SENDABLE_STATES)
    settled = sum(counts.get(state, 0) for state in SETTLED_STATES)
    unsettled = sum(counts.get(state, 0) for state in UNSETTLED_STATES)
    sent = counts.get(RowState.SENT, 0)
    rate = _rate(batch, sent=sent, now=now)
    if unsettled == 0:
        eta: float | None = 0.0
    elif batch.state == BatchState.RUNNING and rate:
        eta = unsettled / rate
    else:
        eta = None
    return Progress(
        total=total,
        sent=sent,
        failed=counts.get(RowState.FAILED, 0),
        settled=settled,
        unsettled=unsettled,
        percent_done=100.0 * settled / total if total else 100.0,
        rows_per_second=rate,
        eta_seconds=eta,
        failed_by_error_code=dict(
            sorted(failed_by_error_code.items(), key=lambda item: (-item[1], item[0]))
        ),
        transfer_id_pending=(deliveries or {}).get(TRANSFER_ID_PENDING, 0),
        delivery_unknown=(deliveries or {}).get(UNKNOWN_DELIVERY, 0),
    )


def batch_progress(session: Session, batch: Batch, *, now: datetime | None = None) -> Progress:
    """The progress of one batch."""
    return batches_progress(session, [batch], now=now)[batch.id]


def batches_progress(
    session: Session, batches: Sequence[Batch], *, now: datetime | None = None
) -> dict[int, Progress]:
    """The progress of each of ``batches`` by batch id, in three queries whatever their number."""
    ids = [batch.id for batch in batches]
    counts = _by_batch(session, ids, Row.state)
    failed = _by_batch(session, ids, func.coalesce(Row.error_code, UNKNOWN_ERROR_CODE), failed=True)
    deliveries = _by_batch(session, ids, delivery_column())
    moment = now or utcnow()
    return {
        batch.id: progress_from(
            batch=batch,
            counts=counts.get(batch.id, {}),
            failed_by_error_code=failed.get(batch.id, {}),
            now=moment,
            deliveries=deliveries.get(batch.id, {}),
        )
        for batch in batches
    }


def progress_view(progress: Progress) -> dict[str, Any]:
    """Progress as the API shows it: JSON-ready, rate and times rounded."""
    view = asdict(progress)
    view["percent_done"] = round(progress.percent_done, 1)
    if progress.rows_per_second is not None:
        view["rows_per_second"] = round(progress.rows_per_second, 3)
    if progress.eta_seconds is not None:
        view["eta_seconds"] = round(progress.eta_seconds, 1)
    return view


def rows_by_state(session: Session) -> dict[str, int]:
    """Rows of every batch by state, every state present (0 when none)."""
    counts = dict.fromkeys((str(state) for state in RowState), 0)
    query = select(Row.state, func.count()).group_by(Row.state)
    counts.update(session.execute(query).tuples().all())
    return counts


def running_rows_by_state(session: Session) -> dict[int, dict[str, int]]:
    """Rows of each running batch by state (only states the batch has rows in)."""
    running = select(Batch.id).where(Batch.state == BatchState.RUNNING)
    return _by_batch(session, running, Row.state)


def batches_by_state(session: Session) -> dict[str, int]:
    """Batches by state, every state present (0 when none)."""
    counts = dict.fromkeys((str(state) for state in BatchState), 0)
    query = select(Batch.state, func.count()).group_by(Batch.state)
    counts.update(session.execute(query).tuples().all())
    return counts


def _by_batch(
    session: Session,
    batch_ids: Sequence[int] | Select[tuple[int]],
    key: ColumnElement[str] | InstrumentedAttribute[str],
    *,
    failed: bool = False,
) -> dict[int, dict[str, int]]:
    """Row counts grouped by batch and ``key``, for the batches in ``batch_ids``."""
    query = select(Row.batch_id, key, func.count()).where(Row.batch_id.in_(batch_ids))
    if failed:
        query = query.where(Row.state == RowState.FAILED)
    grouped: dict[int, dict[str, int]] = {}
    for batch_id, value, count in session.execute(query.group_by(Row.batch_id, key)).tuples():
        grouped.setdefault(batch_id, {})[value] = count
    return grouped


def _rate(batch: Batch, *, sent: int, now: datetime) -> float | None:
    if batch.started_at is None:
        return None
    end = batch.finished_at or now
    elapsed = (_aware(end) - _aware(batch.started_at)).total_seconds()
    return sent / elapsed if elapsed > 0 else None


def _aware(moment: datetime) -> datetime:
    # SQLite (the standalone mode) hands timestamps back without their zone; they are UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
