"""Send later: a batch uploaded with a start time waits as ``scheduled`` until beat starts it.

``start_due`` runs on the control queue every ``START_CHECK_SECONDS``; each batch moves
by compare-and-set, so of two runs at once (or a run and an operator's early start) one
starts it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.batches import get_batch
from distributor.constants import BatchState
from distributor.errors import Conflict, UploadRejected
from distributor.models import Batch

START_CHECK_SECONDS = 2.0
"""How often beat looks for scheduled batches whose time has come: how late one starts."""
START_DUE_LIMIT = 100
"""Batches started per run at most; the rest at the next run."""


def parse_start_at(raw: str, *, now: datetime, field: str) -> datetime:
    """The start time of ``raw`` (ISO 8601 with a UTC offset), in the future; UploadRejected
    naming ``field`` otherwise."""
    text = raw.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UploadRejected(
            f"{field}: {raw!r} is not a date and time; write it in ISO 8601 with its UTC "
            "offset, e.g. 2026-12-24T09:00+13:00"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UploadRejected(
            f"{field}: {raw!r} has no UTC offset; add one, e.g. {text}+13:00 or {text}Z"
        )
    if moment <= now:
        raise UploadRejected(f"{field}: {raw!r} is in the past; give a time still to come")
    return moment


def schedule(session: Session, *, batch_id: int, start_at: datetime) -> None:
    """queued -> scheduled, to start at ``start_at``; Conflict if the batch is not queued."""
    batch = get_batch(session, batch_id)
    moved = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.state == BatchState.QUEUED)
        .values(state=BatchState.SCHEDULED, start_at=start_at)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"batch {batch_id} is {batch.state}, not queued")


def start_due(session: Session, *, now: datetime) -> list[int]:
    """Start every scheduled batch whose start time has come; their ids."""
    due = session.scalars(
        select(Batch.id)
        .where(Batch.state == BatchState.SCHEDULED, Batch.start_at <= now)
        .order_by(Batch.start_at, Batch.id)
        .limit(START_DUE_LIMIT)
    ).all()
    started = []
    for batch_id in due:
        moved = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.state == BatchState.SCHEDULED)
            .values(state=BatchState.RUNNING, started_at=now)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            started.append(batch_id)
    return started
