"""Batch queries shared by the API, the CLI and the pipeline, and the views they show.

The views hold masked data only: never ``card_number_enc``, ``pin_enc`` or the recipient
in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.constants import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, RowState
from distributor.delivery import delivery_of
from distributor.errors import NotFound
from distributor.models import Batch, Row


def _page(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(limit, PAGE_SIZE_MAX)), max(0, offset)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def get_batch(session: Session, batch_id: int) -> Batch:
    """The batch with ``batch_id``; NotFound when there is none."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"batch {batch_id} does not exist")
    return batch


def batch_counts(session: Session, batch_id: int) -> dict[str, int]:
    """The batch's rows by state, every state present (0 when it has none)."""
    counts = dict.fromkeys((str(state) for state in RowState), 0)
    query = select(Row.state, func.count()).where(Row.batch_id == batch_id).group_by(Row.state)
    for state, count in session.execute(query):
        counts[state] = count
    return counts


def list_batches(
    session: Session, *, limit: int = PAGE_SIZE_DEFAULT, offset: int = 0
) -> list[Batch]:
    """One page of batches, newest first."""
    limit, offset = _page(limit, offset)
    query = select(Batch).order_by(Batch.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def list_rows(
    session: Session,
    *,
    batch_id: int,
    state: str | None = None,
    error_code: str | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
    offset: int = 0,
) -> list[Row]:
    """One page of a batch's rows in file order, optionally only one state or error code."""
    limit, offset = _page(limit, offset)
    query = select(Row).where(Row.batch_id == batch_id)
    if state is not None:
        query = query.where(Row.state == state)
    if error_code is not None:
        query = query.where(Row.error_code == error_code)
    query = query.order_by(Row.line_no, Row.id).limit(limit).offset(offset)
    return list(session.scalars(query))


def row_view(row: Row) -> dict[str, Any]:
    """A row as the API and CLI show it: masked, JSON-ready."""
    return {
        "id": row.id,
        "batch_id": row.batch_id,
        "line_no": row.line_no,
        "state": row.state,
        "delivery": delivery_of(row),
        "recipient_masked": row.recipient_masked,
        "card_masked": row.card_masked,
        "message": row.message,
        "asset_id": row.asset_id,
        "transfer_id": row.transfer_id,
        "transfer_status": row.transfer_status,
        "attempts": row.attempts,
        "error_code": row.error_code,
        "error_detail": row.error_detail,
        "retryable": row.retryable,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "loaded_at": _iso(row.loaded_at),
        "sent_at": _iso(row.sent_at),
    }


def batch_view(batch: Batch, counts: dict[str, int]) -> dict[str, Any]:
    """A batch and its rows by state as the API and CLI show it: JSON-ready."""
    return {
        "id": batch.id,
        "name": batch.name,
        "state": batch.state,
        "pause_reason": batch.pause_reason,
        "notice": batch.notice,
        "asset_type": batch.asset_type,
        "issuer": batch.issuer,
        "sender_name": batch.sender_name,
        "description": batch.description,
        "total_rows": batch.total_rows,
        "counts": counts,
        "created_at": _iso(batch.created_at),
        "updated_at": _iso(batch.updated_at),
        "start_at": _iso(batch.start_at),
        "started_at": _iso(batch.started_at),
        "finished_at": _iso(batch.finished_at),
    }
