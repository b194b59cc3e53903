"""Batches: upload, list, inspect, list rows, approve / reject, and start / pause / resume /
cancel / retry, each through ``operator_actions`` (role check and audit entry)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile, status
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session

from distributor import batches, operator_actions
from distributor.api.deps import (
    ID_MAX,
    ActorDep,
    Authorized,
    BatchId,
    DispatchDep,
    SessionDep,
    SettingsDep,
)
from distributor.constants import (
    ASSET_TYPES,
    ISSUERS,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    BatchState,
    RowState,
)
from distributor.errors import UploadRejected
from distributor.ingest import BatchOptions
from distributor.pipeline import approval, scheduling
from distributor.pipeline.clock import utcnow
from distributor.pipeline.transfer_status import transfer_summary
from distributor.progress import batch_progress, progress_view
from distributor.vault import vault_from_settings

router = APIRouter(prefix="/batches", tags=["batches"], dependencies=[Authorized])

ERROR_CODE_MAX_CHARS = 64  # the width of rows.error_code
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no control characters: Postgres refuses NUL in text
RETRY_CHOICES_MAX = PAGE_SIZE_MAX  # error codes or row ids one retry may name

Limit = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)]
Offset = Annotated[int, Query(ge=0, le=ID_MAX)]
ErrorCodeFilter = Annotated[str | None, Query(max_length=ERROR_CODE_MAX_CHARS, pattern=PRINTABLE)]
ErrorCode = Annotated[str, StringConstraints(max_length=ERROR_CODE_MAX_CHARS, pattern=PRINTABLE)]
RowId = Annotated[int, Field(ge=1, le=ID_MAX)]


REASON_MAX_CHARS = 500


class RejectRequest(BaseModel):
    """Why a batch awaiting approval is rejected."""

    reason: Annotated[
        str,
        StringConstraints(
            min_length=1, max_length=REASON_MAX_CHARS, strip_whitespace=True, pattern=PRINTABLE
        ),
    ]


class RetryRequest(BaseModel):
    """Which failed rows to retry: all of them, or those with these codes or ids."""

    error_codes: list[ErrorCode] = Field(default_factory=list, max_length=RETRY_CHOICES_MAX)
    row_ids: list[RowId] = Field(default_factory=list, max_length=RETRY_CHOICES_MAX)


def _choice(value: str | None, default: str, allowed: tuple[str, ...], name: str) -> str:
    chosen = value or default
    if chosen not in allowed:
        raise UploadRejected(f"{name} must be one of {', '.join(allowed)}, not {chosen!r}")
    return chosen


def _shown(session: Session, batch_id: int) -> dict[str, Any]:
    batch = batches.get_batch(session, batch_id)
    shown = batches.batch_view(batch, batches.batch_counts(session, batch_id))
    shown["progress"] = progress_view(batch_progress(session, batch))
    shown["transfers"] = transfer_summary(session, batch_id)
    return shown


def _sent(session: Session, dispatch: Callable[[int], None], batch_id: int) -> dict[str, Any]:
    """Commit the action that set the batch running, then send its rows and show it."""
    session.commit()
    dispatch(batch_id)
    return _shown(session, batch_id)


@router.post("", status_code=status.HTTP_201_CREATED)
def upload_batch(
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    file: Annotated[UploadFile, File(description="CSV: recipientAlias,cardNumber,pin,message")],
    asset_type: Annotated[str | None, Form(alias="type")] = None,
    issuer: Annotated[str | None, Form()] = None,
    sender_name: Annotated[str | None, Form(alias="senderName")] = None,
    description: Annotated[str | None, Form()] = None,
    start: Annotated[bool, Form(description="start sending at once")] = True,
    start_at: Annotated[
        str | None,
        Form(
            alias="startAt",
            description="send later: ISO 8601 with a UTC offset, e.g. 2026-12-24T09:00+13:00",
        ),
    ] = None,
) -> dict[str, Any]:
    """Store a CSV as a batch (rejected whole, nothing stored, if no row is valid)."""
    when = None
    if start_at:
        when = scheduling.parse_start_at(start_at, now=utcnow(), field="startAt")
    if file.size is not None and file.size > settings.upload_max_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"the file is larger than UPLOAD_MAX_BYTES ({settings.upload_max_bytes} bytes)",
        )
    options = BatchOptions(
        name=file.filename or "upload.csv",
        asset_type=_choice(asset_type, settings.default_asset_type, ASSET_TYPES, "type"),
        issuer=_choice(issuer, settings.default_issuer, ISSUERS, "issuer"),
        sender_name=sender_name,
        description=description,
    )
    uploaded = operator_actions.upload(
        session,
        actor,
        stream=file.file,
        vault=vault_from_settings(settings),
        options=options,
        settings=settings,
        start=start,
        start_at=when,
        now=utcnow(),
    )
    session.commit()
    if uploaded.dispatch:
        dispatch(uploaded.result.batch_id)
    result = uploaded.result
    return {
        "id": result.batch_id,
        "state": uploaded.state,
        "start_at": when.isoformat() if when is not None else None,
        "counts": result.counts,
        "problems": [problem.__dict__ for problem in result.problems],
    }


@router.get("")
def list_all(
    session: SessionDep, limit: Limit = PAGE_SIZE_DEFAULT, offset: Offset = 0
) -> dict[str, Any]:
    """Batches, newest first, with counts by state."""
    found = batches.list_batches(session, limit=limit, offset=offset)
    return {"items": [batches.batch_view(b, batches.batch_counts(session, b.id)) for b in found]}


@router.get("/{batch_id}")
def show(session: SessionDep, batch_id: BatchId) -> dict[str, Any]:
    """One batch: state, counts by state, progress."""
    return _shown(session, batch_id)


@router.get("/{batch_id}/rows")
def rows(
    session: SessionDep,
    batch_id: BatchId,
    state: RowState | None = None,
    error_code: ErrorCodeFilter = None,
    limit: Limit = PAGE_SIZE_DEFAULT,
    offset: Offset = 0,
) -> dict[str, Any]:
    """The batch's rows, masked, filtered by state and error code."""
    batches.get_batch(session, batch_id)
    found = batches.list_rows(
        session, batch_id=batch_id, state=state, error_code=error_code, limit=limit, offset=offset
    )
    return {"items": [batches.row_view(row) for row in found], "limit": limit, "offset": offset}


@router.get("/{batch_id}/approval")
def approval_summary(session: SessionDep, batch_id: BatchId) -> dict[str, Any]:
    """What an approver decides on: rows by state, problems by code, sender, asset type."""
    return approval.summary(session, batch_id).__dict__


@router.post("/{batch_id}/approve")
def approve(
    session: SessionDep, actor: ActorDep, dispatch: DispatchDep, batch_id: BatchId
) -> dict[str, Any]:
    """Approve a batch awaiting approval (an approver other than its uploader)."""
    state = operator_actions.approve(session, actor, batch_id=batch_id, now=utcnow())
    session.commit()
    if state == BatchState.RUNNING:
        dispatch(batch_id)
    return _shown(session, batch_id)


@router.post("/{batch_id}/reject")
def reject(
    session: SessionDep, actor: ActorDep, batch_id: BatchId, request: RejectRequest
) -> dict[str, Any]:
    """Reject a batch awaiting approval, with a reason: it is cancelled, nothing sent."""
    operator_actions.reject(session, actor, batch_id=batch_id, reason=request.reason, now=utcnow())
    return _shown(session, batch_id)


@router.post("/{batch_id}/start")
def start(
    session: SessionDep, actor: ActorDep, dispatch: DispatchDep, batch_id: BatchId
) -> dict[str, Any]:
    """Start sending a queued batch, or a scheduled one before its time."""
    operator_actions.start(session, actor, batch_id=batch_id, now=utcnow())
    return _sent(session, dispatch, batch_id)


@router.post("/{batch_id}/pause")
def pause(session: SessionDep, actor: ActorDep, batch_id: BatchId) -> dict[str, Any]:
    """Stop taking new rows; rows in flight finish their step."""
    operator_actions.pause(
        session, actor, batch_id=batch_id, reason=f"paused by {actor.name}", now=utcnow()
    )
    return _shown(session, batch_id)


@router.post("/{batch_id}/resume")
def resume(
    session: SessionDep, actor: ActorDep, dispatch: DispatchDep, batch_id: BatchId
) -> dict[str, Any]:
    """Go on with a paused batch."""
    operator_actions.resume(session, actor, batch_id=batch_id, now=utcnow())
    return _sent(session, dispatch, batch_id)


@router.post("/{batch_id}/cancel")
def cancel(session: SessionDep, actor: ActorDep, batch_id: BatchId) -> dict[str, Any]:
    """Stop the batch for good; rows not yet sent are cancelled."""
    operator_actions.cancel(session, actor, batch_id=batch_id, now=utcnow())
    return _shown(session, batch_id)


@router.post("/{batch_id}/retry")
def retry(
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    dispatch: DispatchDep,
    batch_id: BatchId,
    request: RetryRequest | None = None,
) -> dict[str, Any]:
    """Failed rows go back to the step that failed (a loaded card is not loaded again)."""
    chosen = request or RetryRequest()
    result = operator_actions.retry(
        session,
        actor,
        batch_id=batch_id,
        vault=vault_from_settings(settings),
        error_codes=chosen.error_codes,
        row_ids=chosen.row_ids,
        now=utcnow(),
    )
    session.commit()
    if result.retried:
        dispatch(batch_id)
    return {
        "retried": len(result.retried),
        "refused": [
            {"row_id": row_id, "reason": "another live row holds this card"}
            for row_id in result.refused
        ]
        + [
            {"row_id": row_id, "reason": "its card cannot be read under any configured secret"}
            for row_id in result.unreadable
        ],
    }
